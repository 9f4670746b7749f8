// Params of kernels/layer_norm/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct LayerNormParams
{
    const void* x;
    const float* gamma;
    const float* beta;
    void* y;
    float* mean;     // [rows], may be null in forward
    float* rstd;     // [rows], may be null in forward
    const void* dy;
    void* dx;
    float* dgamma;   // [cols]
    float* dbeta;    // [cols]
    float* partial;  // backward: [2][groups][cols] fp32 column sums of dγ and dβ per row group (launcher's scratch)
    int rows, cols;
    float eps;
    int accumulate;  // backward: add into dgamma/dbeta instead of overwriting
    int groups;      // row groups of the parameter-gradient reduction (= gridDim.y of its first stage)
};

TLS_PARAMS_LAYOUT(LayerNormParams, groups, 112, 104)
