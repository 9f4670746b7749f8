// Params of kernels/dual_layer_norm/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct DualLayerNormParams
{
    const void* x0; const void* x1;     // K and V inputs (x1 null when S = 1)
    void* y0; void* y1;                 // [B, H, T, d]
    const void* dy0; const void* dy1;
    void* dx0; void* dx1;               // layout of x
    const float* gamma; const float* beta;
    float* mean; float* rstd;           // [S, B, T]
    float* dgamma; float* dbeta;        // [D]
    float* partial;                     // backward: [2][groups][D] fp32 column sums per row group (launcher's scratch)
    int S, B, H, T, d, token_major;
    float eps;
    int groups;                         // row groups of the parameter-gradient reduction (= gridDim.y of its first stage)
};

TLS_PARAMS_LAYOUT(DualLayerNormParams, groups, 152, 148)
