// Layout ops of the attention modules: split/merge heads ([B, T, H, d] <-> [B, H, T, d], a swap of axes 1 and 2)
// and copies of a range along one axis (concatenation and slicing: the CLS landmark, cache ++ block).
// Reference: src/TransformerLS/Ops/Layout/Layout.cs.
#include "layout/layout.cuh"

// dst[o, j, i, c] = src[o, i, j, c]: rows of `inner` elements move whole. A thread moves one 16-byte unit of a row
// when rows and pointers allow it (the launcher sets vec), else one element; indexed by the destination so writes
// are contiguous, and the row's source is found once per unit (32-bit division where the count allows it).
template <typename T> __device__ void swap_axes12(LayoutParams p)
{
    const int per = p.vec ? (int)(p.inner * sizeof(T) / 16) : (int)p.inner;  // units per row (inner fits an int)
    const i64 total = p.outer * p.a * p.b * per;
    GRID_STRIDE(idx, total)
    {
        i64 r, u, i, j, o;
        if (total <= 0x7fffffff)
        {
            unsigned x = (unsigned)idx, rr = x / (unsigned)per;
            u = x - rr * (unsigned)per;
            unsigned q = rr / (unsigned)p.a;
            i = rr - q * (unsigned)p.a;
            j = q % (unsigned)p.b;
            o = q / (unsigned)p.b;
            r = rr;
        }
        else
        {
            r = idx / per; u = idx % per;
            i = r % p.a; j = (r / p.a) % p.b; o = r / p.a / p.b;
        }
        const i64 from = ((o * p.a + i) * p.b + j) * p.inner, to = r * p.inner;
        if (p.vec) ((uint4*)((T*)p.dst + to))[u] = ((const uint4*)((const T*)p.src + from))[u];
        else ((T*)p.dst)[to + u] = ((const T*)p.src)[from + u];
    }
}

// dst[o, dst_off + j, c] (+)= src[o, src_off + j, c] for j < length. A thread moves 8 elements of a row where rows are
// whole groups of 8 and both pointers 16-byte aligned (the launcher sets vec), else one; the row's indices are found
// once per unit, in 32-bit arithmetic where the units number fewer than 2^30 (64-bit divisions cost tens of
// instructions an element).
template <typename T, typename I> TLS_DEVICE void copy_slice_in(const LayoutParams& p, I units)
{
    const int step = p.vec ? 8 : 1;
    const I per = (I)(p.inner / step), len = (I)p.length;
    for (I idx = (I)(blockIdx.x * blockDim.x + threadIdx.x); idx < units; idx += (I)(gridDim.x * blockDim.x))
    {
        const I u = idx % per, r = idx / per, j = r % len, o = r / len;
        const i64 from = ((i64)o * p.src_len + p.src_off + j) * p.inner + (i64)u * step;
        const i64 to = ((i64)o * p.dst_len + p.dst_off + j) * p.inner + (i64)u * step;
        if (p.vec)
        {
            float v[8], d[8];
            load8<T>(p.src, from, v);
            if (p.accumulate)
            {
                load8<T>(p.dst, to, d);
#pragma unroll
                for (int k = 0; k < 8; ++k) v[k] += d[k];
            }
            store8<T>(p.dst, to, v);
        }
        else
        {
            float v = load<T>(p.src, from);
            if (p.accumulate) v += load<T>(p.dst, to);
            store<T>(p.dst, to, v);
        }
    }
}

template <typename T> __device__ void copy_slice(LayoutParams p)
{
    const i64 units = p.outer * p.length * (p.inner / (p.vec ? 8 : 1));
    if (units < (1 << 30)) copy_slice_in<T, int>(p, (int)units);  // idx + the grid stride (< 2^28) stays below 2^31
    else copy_slice_in<T, i64>(p, units);
}

TLS_INSTANTIATE(swap_axes12, LayoutParams)
TLS_INSTANTIATE(copy_slice, LayoutParams)

// Index math in I (32-bit where the write has fewer than 2^30 elements: the decoder's case; 64-bit divisions cost
// tens of instructions an element).
template <typename T, typename I> TLS_DEVICE void write_rows_in(const WriteRowsParams& p, I total)
{
    const I inner = (I)p.inner;
    for (I idx = (I)(blockIdx.x * blockDim.x + threadIdx.x); idx < total; idx += (I)(gridDim.x * blockDim.x))
    {
        I c = idx % inner, r = idx / inner;
        int j = (int)(r % p.n), o = (int)(r / p.n);
        int at = (int)p.rows[o / p.heads];
        if (at < 0 || at + p.n > p.cap) continue;  // no row, or past the capacity (the CPU reference throws there)
        ((T*)p.dst)[((i64)o * p.cap + at + j) * p.inner + c] = ((const T*)p.src)[(i64)r * p.inner + c];
    }
}

template <typename T> TLS_DEVICE void write_rows_one(const WriteRowsParams& p)
{
    const i64 total = (i64)p.outer * p.n * p.inner;
    if (total < (1 << 30)) write_rows_in<T, int>(p, (int)total);  // idx + the grid stride (< 2^28) stays below 2^31
    else write_rows_in<T, i64>(p, total);
}

template <typename T> __device__ void write_rows(WriteRowsParams p) { write_rows_one<T>(p); }

template <typename T> __device__ void write_rows_batch(WriteRowsBatchParams p)
{
    static_assert(WRITE_ROWS_BATCH == 6, "one field per write");
    const WriteRowsParams* items[WRITE_ROWS_BATCH] = {&p.i0, &p.i1, &p.i2, &p.i3, &p.i4, &p.i5};
    if ((int)blockIdx.y < p.count) write_rows_one<T>(*items[blockIdx.y]);
}

TLS_INSTANTIATE(write_rows, WriteRowsParams)
TLS_INSTANTIATE(write_rows_batch, WriteRowsBatchParams)
// The same batch as a copy of 16-byte units (the launcher's choice where every row is whole units and every pointer
// 16-byte aligned; inner then counts units): one thread moves 8 bf16 or 4 fp32 values, not one.
extern "C" __global__ void write_rows_batch_v16(WriteRowsBatchParams p) { write_rows_batch<uint4>(p); }
