// Params of kernels/embedding/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct EmbeddingParams
{
    const void* weight;   // [V, D]
    const float* tokens;  // [N]
    void* y;              // forward: [N, D]
    const void* dy;       // backward: [N, D]
    float* dweight;       // backward: float32 [V, D], added to
    i64 n;
    int vocab, dim;
};

TLS_PARAMS_LAYOUT(EmbeddingParams, dim, 56, 52)
