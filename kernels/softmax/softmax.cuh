// Params of kernels/softmax/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct SoftmaxParams
{
    const void* x;   // forward input, or y in backward
    const void* dy;  // backward only
    void* out;       // y in forward, dx in backward
    i64 outer, inner;
    int dim;
};

TLS_PARAMS_LAYOUT(SoftmaxParams, dim, 48, 40)
