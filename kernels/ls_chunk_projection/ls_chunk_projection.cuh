// Params of kernels/ls_chunk_projection/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct LsChunkProjectionParams
{
    const void* s;       // [B, T, H·r]
    const void* x;       // [B, H, T, d]
    const float* mask;   // [B, T] or null
    void* y;             // [B, H, chunks·r, d]
    const void* dy;
    void* ds;            // [B, T, H·r]
    void* dx;            // [B, H, T, d]
    int B, H, T, d, r, l, chunks, accumulate;
};

TLS_PARAMS_LAYOUT(LsChunkProjectionParams, accumulate, 88, 84)
