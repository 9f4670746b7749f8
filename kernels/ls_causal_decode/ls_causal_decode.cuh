// Params of kernels/ls_causal_decode/, mirrored field for field in src/TransformerLS/Ops/LsCausalDecode/LsCausalDecodeCuda.cs.
// The layout line below is the contract (LayoutContractTests).
#pragma once
#include "common/prelude.cuh"

struct LsDecodeParams
{
    const void *q, *kw, *vw, *u, *vb, *rel, *kring, *vring, *kblock, *vblock, *relc;
    const float* state;   // [B, 4]: window slot, nw, first cache ring slot, qi
    void* o;
    int B, H, D, W, R, Mc, C, Lb, Nr;
    float scale;
};

TLS_PARAMS_LAYOUT(LsDecodeParams, scale, 144, 140)
