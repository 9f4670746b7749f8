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
    int S, B, H, T, d, token_major;
    float eps;
};

TLS_PARAMS_LAYOUT(DualLayerNormParams, eps, 144, 136)
