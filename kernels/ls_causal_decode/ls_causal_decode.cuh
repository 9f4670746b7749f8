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
    int* arrived;         // [B·H], zero at launch: the vector kernel's count of splits done (the last one combines; it
                          // leaves the count at zero again)
    // The step's append (kraw null: none; the vector kernel only): this position's raw keys and values kraw, vraw
    // [B, H·d] and LN_W's γ, β [H·d] (fp32), eps. The block holding window age 0 normalizes them over all H·d channels,
    // uses its head's slice as the age-0 key and value and writes it into kw, vw's slot rows_w[b]; it writes its head's
    // slices of h, kraw, vraw [B, H·d] and s [B, H·r] into row rows_chunk[b] of hbuf, krbuf, vrbuf [B, l, H·d] and
    // sbuf [B, l, H·r]. A row < 0 writes nothing (float32 rows, as WriteRows).
    const void *kraw, *vraw;
    const float *gamma, *beta, *rows_w, *rows_chunk;
    const void *h_in, *s_in;
    void *hbuf, *sbuf, *krbuf, *vrbuf;
    int l;
    float eps;
};

TLS_PARAMS_LAYOUT(LsDecodeParams, eps, 272, 268)
