// Params of kernels/cross_entropy/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct CrossEntropyParams
{
    const void* x;         // logits [N, V]
    const float* target;   // [N]
    float* loss;           // forward: [N]
    float* lse;            // forward output, backward input: [N]
    const float* dloss;    // backward: [N]
    void* dx;              // backward: [N, V]
    i64 rows;
    int vocab;
};

struct LossMeanParams
{
    const float* loss;     // [N] per-row losses
    const float* target;   // [N]; negative = ignored
    float* mean;           // forward: [1]
    float* count;          // forward output, backward input: [1] rows with a target
    const float* dmean;    // backward: [1]
    float* dloss;          // backward: [N]
    i64 rows;
};

TLS_PARAMS_LAYOUT(CrossEntropyParams, vocab, 64, 56)
TLS_PARAMS_LAYOUT(LossMeanParams, rows, 56, 48)
