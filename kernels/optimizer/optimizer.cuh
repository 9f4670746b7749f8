// Params of kernels/optimizer/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct OptimizerParams
{
    float* param;        // fp32 weights (the master copy under mixed precision), updated in place
    const void* grad;    // gradient (T)
    float* m;            // fp32 moments, updated in place
    float* v;
    void* copy;          // optional bf16 model weights, rewritten from the master
    float* sumsq;        // sum_squares: accumulated into; adam_step: Σ g² of all gradients, or null (no clipping)
    float* bad;          // adam_step: the first step whose Σ g² was not finite (0: none yet), or null
    i64 n;
    float lr, beta1, beta2, eps, weight_decay, max_norm;
    float bias1, bias2;  // 1 − β1^t and 1 − β2^t
    int decoupled;       // 1: AdamW (decay on the weights); 0: Adam (decay added to the gradient)
    int step;            // the step being taken (recorded in bad)
};

TLS_PARAMS_LAYOUT(OptimizerParams, step, 104, 100)
