// Params of kernels/layout/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct LayoutParams
{
    const void* src;
    void* dst;
    i64 outer, inner;             // swap: dims [outer, a, b, inner]; copy: [outer, axis, inner]
    int a, b;                     // swap: src axes 1 and 2
    int src_len, dst_len, src_off, dst_off, length, accumulate;  // copy along the axis
    int vec;                      // swap: rows move in 16-byte units (inner·size % 16 == 0, both pointers 16-aligned);
                                  // copy: in groups of 8 elements (inner % 8 == 0, both pointers 16-aligned)
};

TLS_PARAMS_LAYOUT(LayoutParams, vec, 72, 64)

// write_rows: dst[o, rows[o] + j, :] = src[o, j, :] for j < n, per outer index o = b·H + h (rows indexed by b); a
// negative row writes nothing for that sequence. The decoder's ring and buffer writes.
struct WriteRowsParams
{
    const void* src;
    void* dst;
    const float* rows;            // [B]
    i64 inner;
    int outer, heads, n, cap;     // outer = B·heads
};

TLS_PARAMS_LAYOUT(WriteRowsParams, cap, 48, 44)

// Up to WRITE_ROWS_BATCH independent row writes in one launch (blockIdx.y = the write): the decoder's per-layer ring writes.
#define WRITE_ROWS_BATCH 6
struct WriteRowsBatchParams
{
    WriteRowsParams i0, i1, i2, i3, i4, i5;
    int count;
};

TLS_PARAMS_LAYOUT(WriteRowsBatchParams, count, 296, 288)
