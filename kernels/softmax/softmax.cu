// Softmax along one axis of a tensor viewed as [outer, dim, inner]: forward y = softmax(x) and backward
// dx = y * (dy - sum(dy * y)). inner == 1 (last axis): a warp per row; otherwise a thread per column,
// coalesced across inner (e.g. the projection's softmax over the sequence axis). Reference: Ops/Softmax.
#include "softmax/softmax.cuh"

template <typename T> TLS_DEVICE void softmax_line(const SoftmaxParams& p, i64 base, i64 stride, int start, int step, bool warp)
{
    float m = -TLS_INF;
    for (int j = start; j < p.dim; j += step) m = fmaxf(m, load<T>(p.x, base + j * stride));
    if (warp) m = warp_max(m);
    float s = 0.f;
    for (int j = start; j < p.dim; j += step) s += expf(load<T>(p.x, base + j * stride) - m);
    if (warp) s = warp_sum(s);
    // A division, not a multiply by 1/s: one rounding per element, as the reference.
    for (int j = start; j < p.dim; j += step) store<T>(p.out, base + j * stride, expf(load<T>(p.x, base + j * stride) - m) / s);
}

template <typename T> TLS_DEVICE void softmax_bwd_line(const SoftmaxParams& p, i64 base, i64 stride, int start, int step, bool warp)
{
    float s = 0.f;
    for (int j = start; j < p.dim; j += step) s += load<T>(p.x, base + j * stride) * load<T>(p.dy, base + j * stride);
    if (warp) s = warp_sum(s);
    for (int j = start; j < p.dim; j += step)
    {
        i64 k = base + j * stride;
        store<T>(p.out, k, load<T>(p.x, k) * (load<T>(p.dy, k) - s));
    }
}

template <typename T> __device__ void softmax_rows_fwd(SoftmaxParams p)
{
    i64 row = blockIdx.x * (i64)(blockDim.x / 32) + threadIdx.x / 32;
    if (row < p.outer) softmax_line<T>(p, row * p.dim, 1, threadIdx.x % 32, 32, true);
}

template <typename T> __device__ void softmax_rows_bwd(SoftmaxParams p)
{
    i64 row = blockIdx.x * (i64)(blockDim.x / 32) + threadIdx.x / 32;
    if (row < p.outer) softmax_bwd_line<T>(p, row * p.dim, 1, threadIdx.x % 32, 32, true);
}

template <typename T> __device__ void softmax_cols_fwd(SoftmaxParams p)
{
    i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x;
    if (i < p.inner)
        for (i64 o = blockIdx.y; o < p.outer; o += gridDim.y) softmax_line<T>(p, o * p.dim * p.inner + i, p.inner, 0, 1, false);
}

template <typename T> __device__ void softmax_cols_bwd(SoftmaxParams p)
{
    i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x;
    if (i < p.inner)
        for (i64 o = blockIdx.y; o < p.outer; o += gridDim.y) softmax_bwd_line<T>(p, o * p.dim * p.inner + i, p.inner, 0, 1, false);
}

TLS_INSTANTIATE(softmax_rows_fwd, SoftmaxParams)
TLS_INSTANTIATE(softmax_rows_bwd, SoftmaxParams)
TLS_INSTANTIATE(softmax_cols_fwd, SoftmaxParams)
TLS_INSTANTIATE(softmax_cols_bwd, SoftmaxParams)
