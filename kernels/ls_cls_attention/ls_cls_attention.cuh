// Params of kernels/ls_cls_attention/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct LsClsAttentionParams
{
    const void* q; const void* k; const void* v;   // [B, H, d], q unscaled
    const void* c;                                 // [B, H, n, d]
    const float* mask;                             // [B, n] or null
    void* o; float* lse;                           // [B, H, d], [B, H]
    const void* dout;
    void* dq; void* dk; void* dv; void* dc;        // dc [B, H, n, d]
    int B, H, n, d, accumulate;                    // accumulate: add into dc
    float scale;
};

TLS_PARAMS_LAYOUT(LsClsAttentionParams, scale, 120, 116)
