// Rows held in registers as 16-byte vectors, for the memory-bound row kernels (LayerNorm, DualLN): a warp owns a
// row, lane l holds the columns (k·32 + l)·N … + N − 1 for k < VPL (N = 8 bf16 or 4 fp32 per vector), so one
// warp-wide load moves 512 contiguous bytes. The caller guarantees cols % N == 0 and 16-byte aligned rows; a
// vector past the row's end (k·32 + l)·N >= cols is neither loaded nor stored and reads as 0.
#pragma once
#include "common/prelude.cuh"

template <typename T> struct RowVec;

// load = unpack(load_raw): a kernel that keeps the next row in flight holds it as Raw, 16 bytes, until it is needed.
template <> struct RowVec<float>
{
    static constexpr int N = 4;
    typedef float4 Raw;
    static TLS_DEVICE Raw load_raw(const void* p, i64 i) { return *(const float4*)((const float*)p + i); }
    static TLS_DEVICE void unpack(const Raw& q, float* v) { v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w; }
    static TLS_DEVICE void load(const void* p, i64 i, float* v) { unpack(load_raw(p, i), v); }
    static TLS_DEVICE void store(void* p, i64 i, const float* v)
    {
        float4 q;
        q.x = v[0]; q.y = v[1]; q.z = v[2]; q.w = v[3];
        *(float4*)((float*)p + i) = q;
    }
};

template <> struct RowVec<bf16>
{
    static constexpr int N = 8;
    typedef uint4 Raw;
    static TLS_DEVICE Raw load_raw(const void* p, i64 i) { return *(const uint4*)((const unsigned short*)p + i); }
    static TLS_DEVICE void unpack(const Raw& q, float* v)
    {
        unsigned w[4] = {q.x, q.y, q.z, q.w};
        bf16x8_unpack(w, v);
    }
    static TLS_DEVICE void load(const void* p, i64 i, float* v) { unpack(load_raw(p, i), v); }
    // from_float per element: the same rounding (and NaN bits) as the scalar kernels and the CPU backend.
    static TLS_DEVICE void store(void* p, i64 i, const float* v)
    {
        unsigned w[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) w[k] = (unsigned)from_float<bf16>(v[2 * k]).bits | ((unsigned)from_float<bf16>(v[2 * k + 1]).bits << 16);
        uint4 q;
        q.x = w[0]; q.y = w[1]; q.z = w[2]; q.w = w[3];
        *(uint4*)((unsigned short*)p + i) = q;
    }
};

// N fp32 values (γ, β) at p + c as 16-byte loads: one warp-wide load covers 512 contiguous bytes instead of N
// scattered ones.
template <int N> TLS_DEVICE void load_f32_vec(const float* p, int c, float* v)
{
#pragma unroll
    for (int q = 0; q < N / 4; ++q)
    {
        float4 t = *(const float4*)(p + c + 4 * q);
        v[4 * q] = t.x; v[4 * q + 1] = t.y; v[4 * q + 2] = t.z; v[4 * q + 3] = t.w;
    }
}

// Rows a warp of the forward row kernels normalizes in turn where the rows fill the GPU (RowVectors.Blocks: the grid is
// rows / (warps · ROWS_PER_WARP) blocks, but at least a few an SM while that leaves every warp a row).
#define ROWS_PER_WARP 8
TLS_EXPORT(tls_rows_per_warp, ROWS_PER_WARP)

// Column of lane `lane`'s k-th vector.
TLS_DEVICE int row_vec_col(int k, int lane, int n) { return (k * 32 + lane) * n; }

// Per-block column sums in a fixed order: warp 0's values, then warp 1's added, … (one __syncthreads per warp),
// into red[cols]; lane l's value e belongs to column row_vec_col(e / N, l, N) + e % N, so no two threads touch one
// slot. All threads of the block call it.
template <int VPL, int N>
TLS_DEVICE void block_ordered_sum(float* red, const float (&acc)[VPL * N], int cols)
{
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    for (int w = 0; w < warps; ++w)
    {
        if (warp == w)
#pragma unroll
            for (int e = 0; e < VPL * N; ++e)
            {
                int c = row_vec_col(e / N, lane, N) + e % N;
                if (c < cols) red[c] = w == 0 ? acc[e] : red[c] + acc[e];
            }
        __syncthreads();
    }
}

// Mean and rstd of one row held in registers (vectors past the row's end hold 0): two passes, the centred variance
// second, rstd = 1/sqrtf (IEEE-rounded). Warp-uniform: every lane calls it.
template <int VPL, int N>
TLS_DEVICE void layer_norm_row_stats(const float (&x)[VPL][N], int cols, float eps, float& mean, float& rstd)
{
    int lane = threadIdx.x % 32;
    float s = 0.f, v = 0.f;
#pragma unroll
    for (int k = 0; k < VPL; ++k)
#pragma unroll
        for (int e = 0; e < N; ++e) s += x[k][e];
    mean = warp_sum(s) / cols;
#pragma unroll
    for (int k = 0; k < VPL; ++k)
        if (row_vec_col(k, lane, N) < cols)
#pragma unroll
            for (int e = 0; e < N; ++e) { float d = x[k][e] - mean; v += d * d; }
    rstd = 1.f / sqrtf(warp_sum(v) / cols + eps);
}

// The LayerNorm gradient of one row held in registers (LayerNorm and DualLN): with x̂ = (x − mean)·rstd and
// g = dy·γ, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) over the row's cols channels; x is overwritten by x̂, dy by dx,
// and the lane's dy·x̂ and dy are added into ag, ab (dγ, dβ). Warp-uniform: every lane calls it.
template <int VPL, int N>
TLS_DEVICE void layer_norm_row_grad(float (&x)[VPL][N], float (&dy)[VPL][N], const float (&gamma)[VPL][N], float mean, float rstd,
                                    int cols, float (&ag)[VPL * N], float (&ab)[VPL * N])
{
    int lane = threadIdx.x % 32;
    float sg = 0.f, sgx = 0.f;
#pragma unroll
    for (int k = 0; k < VPL; ++k)
    {
        if (row_vec_col(k, lane, N) >= cols) continue;
#pragma unroll
        for (int e = 0; e < N; ++e)
        {
            float xh = (x[k][e] - mean) * rstd, g = dy[k][e] * gamma[k][e];
            ag[k * N + e] += dy[k][e] * xh;
            ab[k * N + e] += dy[k][e];
            x[k][e] = xh;
            dy[k][e] = g;
            sg += g; sgx += g * xh;
        }
    }
    sg = warp_sum(sg) / cols;
    sgx = warp_sum(sgx) / cols;
#pragma unroll
    for (int k = 0; k < VPL; ++k)
#pragma unroll
        for (int e = 0; e < N; ++e) dy[k][e] = rstd * (dy[k][e] - sg - x[k][e] * sgx);
}

// The backward row kernels' entry points (LayerNorm, DualLN): 8-warp blocks (ROWS_BWD_THREADS, exported as
// <name>_threads for the launcher), bounded so that two share an SM where a lane holds up to two vectors (D <= 512
// bf16, 256 fp32): a warp's next row in flight costs registers, not occupancy.
#define ROWS_BWD_THREADS 256
#define TLS_ROWS_BWD_ENTRY(name, Params, V, T, tn, blocks) \
    extern "C" __global__ void __launch_bounds__(ROWS_BWD_THREADS, blocks) name##_v##V##_##tn(Params p) { name<T, V>(p); }
#define TLS_INSTANTIATE_ROWS_BWD(name, Params)                \
    TLS_EXPORT(name##_threads, ROWS_BWD_THREADS)              \
    TLS_ROWS_BWD_ENTRY(name, Params, 1, float, f32, 2)        \
    TLS_ROWS_BWD_ENTRY(name, Params, 2, float, f32, 2)        \
    TLS_ROWS_BWD_ENTRY(name, Params, 3, float, f32, 1)        \
    TLS_ROWS_BWD_ENTRY(name, Params, 4, float, f32, 1)        \
    TLS_ROWS_BWD_ENTRY(name, Params, 1, bf16, bf16, 2)        \
    TLS_ROWS_BWD_ENTRY(name, Params, 2, bf16, bf16, 2)        \
    TLS_ROWS_BWD_ENTRY(name, Params, 3, bf16, bf16, 1)        \
    TLS_ROWS_BWD_ENTRY(name, Params, 4, bf16, bf16, 1)

// Entry points for VPL = 1 … 4 vectors per lane and both dtypes: name_v<VPL>_<dtype>.
#define TLS_INSTANTIATE_ROWS(name, Params)                                                        \
    extern "C" __global__ void name##_v1_f32(Params p) { name<float, 1>(p); }                    \
    extern "C" __global__ void name##_v2_f32(Params p) { name<float, 2>(p); }                    \
    extern "C" __global__ void name##_v3_f32(Params p) { name<float, 3>(p); }                    \
    extern "C" __global__ void name##_v4_f32(Params p) { name<float, 4>(p); }                    \
    extern "C" __global__ void name##_v1_bf16(Params p) { name<bf16, 1>(p); }                    \
    extern "C" __global__ void name##_v2_bf16(Params p) { name<bf16, 2>(p); }                    \
    extern "C" __global__ void name##_v3_bf16(Params p) { name<bf16, 3>(p); }                    \
    extern "C" __global__ void name##_v4_bf16(Params p) { name<bf16, 4>(p); }
