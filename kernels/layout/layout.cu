// Layout ops of the attention modules: split/merge heads ([B, T, H, d] <-> [B, H, T, d], a swap of axes 1 and 2)
// and copies of a range along one axis (concatenation and slicing: the CLS landmark, cache ++ block).
// Reference: src/TransformerLS/Ops/Layout/Layout.cs.
#include "layout/layout.cuh"

// dst[o, j, i, c] = src[o, i, j, c]; indexed by the destination so writes are contiguous.
template <typename T> __device__ void swap_axes12(LayoutParams p)
{
    GRID_STRIDE(idx, p.outer * p.a * p.b * p.inner)
    {
        i64 c = idx % p.inner, r = idx / p.inner;
        i64 i = r % p.a; r /= p.a;
        i64 j = r % p.b, o = r / p.b;
        ((T*)p.dst)[idx] = ((const T*)p.src)[((o * p.a + i) * p.b + j) * p.inner + c];
    }
}

template <typename T> __device__ void copy_slice(LayoutParams p)
{
    GRID_STRIDE(idx, p.outer * p.length * p.inner)
    {
        i64 c = idx % p.inner, r = idx / p.inner;
        i64 j = r % p.length, o = r / p.length;
        i64 from = (o * p.src_len + p.src_off + j) * p.inner + c, to = (o * p.dst_len + p.dst_off + j) * p.inner + c;
        float v = load<T>(p.src, from);
        if (p.accumulate) v += load<T>(p.dst, to);
        store<T>(p.dst, to, v);
    }
}

TLS_INSTANTIATE(swap_axes12, LayoutParams)
TLS_INSTANTIATE(copy_slice, LayoutParams)
