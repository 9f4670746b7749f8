// Rows held in registers as 16-byte vectors, for the memory-bound row kernels (LayerNorm, DualLN): a warp owns a
// row, lane l holds the columns (k·32 + l)·N … + N − 1 for k < VPL (N = 8 bf16 or 4 fp32 per vector), so one
// warp-wide load moves 512 contiguous bytes. The caller guarantees cols % N == 0 and 16-byte aligned rows; a
// vector past the row's end (k·32 + l)·N >= cols is neither loaded nor stored and reads as 0.
#pragma once
#include "common/prelude.cuh"

template <typename T> struct RowVec;

template <> struct RowVec<float>
{
    static constexpr int N = 4;
    static TLS_DEVICE void load(const void* p, i64 i, float* v)
    {
        float4 q = *(const float4*)((const float*)p + i);
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
    }
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
    static TLS_DEVICE void load(const void* p, i64 i, float* v)
    {
        uint4 q = *(const uint4*)((const unsigned short*)p + i);
        unsigned w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int k = 0; k < 4; ++k) { v[2 * k] = __uint_as_float(w[k] << 16); v[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u); }
    }
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

// Column of lane `lane`'s k-th vector.
TLS_DEVICE int row_vec_col(int k, int lane, int n) { return (k * 32 + lane) * n; }

// Per-block column sums in a fixed order: warp 0's values, then warp 1's added, … (one __syncthreads per warp),
// into red[cols]; each lane owns its columns, so no two threads touch one slot. All threads of the block call it.
template <int E>
TLS_DEVICE void block_ordered_sum(float* red, const float (&acc)[E], const int (&col)[E], int cols)
{
    int warp = threadIdx.x / 32, warps = blockDim.x / 32;
    for (int w = 0; w < warps; ++w)
    {
        if (warp == w)
#pragma unroll
            for (int e = 0; e < E; ++e)
                if (col[e] < cols) red[col[e]] = w == 0 ? acc[e] : red[col[e]] + acc[e];
        __syncthreads();
    }
}

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
