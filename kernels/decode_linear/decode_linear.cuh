// Params of kernels/decode_linear/, mirrored field for field in src/TransformerLS/Ops/DecodeLinear/DecodeLinearCuda.cs.
// The layout line below is the contract: sizeof and the offset of the last field, checked here at compile time and
// against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

#define DECODE_LINEAR_OUTS 4  // weight matrices that share one input in one launch

// y_j (+)= act(n(x)·W_jᵀ + b_j) for j < outs, x [rows, K] with few rows (one decode step's sequences).
struct DecodeLinearParams
{
    const void* x;                       // [rows, K] in T
    const float* gamma;                  // n = LayerNorm(γ, β, eps) of each row (fp32 γ, β [K]), or null: n(x) = x
    const float* beta;
    void* xn;                            // n(x) [rows, K] in T (written by block 0), or null
    const void* w[DECODE_LINEAR_OUTS];   // W_j [n_j, K] in T (PyTorch's [out, in])
    const void* b[DECODE_LINEAR_OUTS];   // b_j [n_j] in T, or null
    void* y[DECODE_LINEAR_OUTS];         // y_j [rows, n_j] in T
    int n[DECODE_LINEAR_OUTS];           // n_j (0 for j >= outs)
    int rows, K, cols;                   // cols = Σ n_j
    float eps;
    int gelu;                            // act = GELU of the rounded sum (as Linear then Gelu store it)
    int accumulate;                      // y_j += …: the old value joins the fp32 sum, one rounding
};

TLS_PARAMS_LAYOUT(DecodeLinearParams, accumulate, 168, 164)
