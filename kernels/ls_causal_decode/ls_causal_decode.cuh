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
    float* part;          // [B·H, splits, D + 2]: per split of the key list, the unnormalized p·v sums, the max and the sum
    int splits, split_keys;
    int* arrived;         // [B·H], zero at launch: the vector kernel's count of splits done (the last one combines)
};

TLS_PARAMS_LAYOUT(LsDecodeParams, arrived, 168, 160)
