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

// The multi-tensor step (adam_multi_*): all parameters of a model in two launches. The tensors' table and the map of
// chunks to tensors live in device memory, written once by the launcher (OptimizerCuda.WriteTable, for an AdamGroup) while the tensors stay put.
// Chunk c covers elements [(c − first_chunk)·chunk, +chunk) of tensor chunk_tensor[c]; one block a chunk.
struct AdamTensorParams
{
    float* param;        // fp32 weights (the master under mixed precision)
    const void* grad;    // gradient, fp32 or bf16 (grad_bf16)
    float* m;
    float* v;
    void* copy;          // optional bf16 model weights
    i64 n;
    int first_chunk;     // the tensor's first chunk
    int grad_bf16;
};

struct AdamMultiParams
{
    const AdamTensorParams* tensors;
    const int* chunk_tensor;   // [chunks]
    double* partial;           // [chunks]: Σ g² of each chunk (fp64, summed in a fixed order)
    float* sumsq;              // optional: the total Σ g², written by block 0 of the step
    float* bad;                // the first step whose Σ g² was not finite (0: none yet), or null
    const float* hyper;        // null, or [lr, bias1, bias2, step] in device memory, read in place of the fields below
                               // (a step recorded in a CUDA graph: the host rewrites them before each replay)
    i64 chunk;                 // elements a chunk
    int chunks;
    float lr, beta1, beta2, eps, weight_decay, max_norm;  // max_norm = +∞: no clipping
    float bias1, bias2;
    int decoupled, step;
};

TLS_PARAMS_LAYOUT(AdamTensorParams, grad_bf16, 56, 52)
TLS_PARAMS_LAYOUT(AdamMultiParams, step, 104, 96)
