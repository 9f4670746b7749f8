// Params of kernels/elementwise/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct ElementwiseParams
{
    const void* a;   // input (x for GELU, the matrix for bias/column ops)
    const void* b;   // second input (dy for GELU backward, bias for bias add); may be null for axpby
    void* y;         // output
    i64 n;           // elements of a / y
    i64 cols;        // row length for bias add and column sums
    float alpha, beta;
};

struct DropoutParams
{
    const void* x;
    void* y;
    const unsigned long long* run_seed;  // null, or the run's seed in device memory (graph replays)
    i64 n;
    unsigned long long seed;             // the mask's seed (added to run_seed·φ64 when run_seed is set)
    float p;                             // drop probability
};

// Fused bias + GELU of the MLP: y = GELU(x + bias[c]) with the sum kept in fp32; backward dx = dy·GELU'(x + bias[c]).
struct BiasGeluParams
{
    const void* x;      // [rows, cols]
    const void* bias;   // [cols], x's dtype
    const void* dy;     // backward only
    void* y;            // forward: y; backward: dx
    i64 n;              // rows·cols
    i64 cols;
};

// Column sums (bias gradients) in two fixed-order stages: G row groups into fp32 partials [G, cols], then the groups in order.
struct ColumnSumParams
{
    const void* x;      // [rows, cols]
    void* y;            // [cols]: y = beta·y + Σ_rows x
    float* partial;     // [groups, cols] fp32 scratch
    i64 rows, cols;
    int groups;
    float beta;
};

// GELU (erf form, as PyTorch's default) and its derivative: here so the fused GEMV epilogues (decode_linear) share them.
TLS_DEVICE float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
TLS_DEVICE float gelu_grad(float x)
{
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

TLS_PARAMS_LAYOUT(ElementwiseParams, beta, 48, 44)
TLS_PARAMS_LAYOUT(ColumnSumParams, beta, 48, 44)
TLS_PARAMS_LAYOUT(DropoutParams, p, 48, 40)
TLS_PARAMS_LAYOUT(BiasGeluParams, cols, 48, 40)
