// The Linear maps of one decode step (few rows, weights read once): y_j (+)= act(n(x)·W_jᵀ + b_j) for up to four
// weight matrices W_j that share the input x [rows <= DECODE_LINEAR_MAX_ROWS, K], with n = LayerNorm or identity.
// Reference: src/TransformerLS/Ops/DecodeLinear/DecodeLinear.Reference.cs (the rounding chain of the unfused ops it
// replaces: LayerNorm → Linear → GELU, each stored in T).
//
// Tile ownership: block = WARPS output columns (over all outputs, W_0's rows first), warp = one column o of one W_j.
//   1. The warp loads W_j's row o into registers (lane l holds the 16-byte vectors l, l + 32, …: VPL of them), so the
//      weight loads are in flight while
//   2. the block copies x's rows to shared memory (in T, 16-byte pieces over all threads), then normalizes them in place
//      where asked (a warp a row: mean, centred variance, 1/sqrtf as the LayerNorm kernels; the result rounded to T;
//      block 0 also writes it to xn);
//   3. each row's dot product: the lane's vectors against the row, then a warp sum (a fixed tree); lane r adds row r's
//      bias (loaded with the weights) and old y (loaded before step 2, after the dependency wait), applies GELU to the
//      rounded sum where asked, and stores y_j[r, o].
// No atomics: the same bits every run. The weights are the traffic (rows·K staged per block is small), so a launch
// costs one pass over Σ n_j·K elements. Launched as a dependent launch (common/dependent_launch.cuh): step 1's weight
// loads overlap the previous kernel's tail.
#include "decode_linear/decode_linear.cuh"
#include "elementwise/elementwise.cuh"
#include "common/row_vectors.cuh"
#include "common/dependent_launch.cuh"

#define DECODE_LINEAR_THREADS 128
#define DECODE_LINEAR_MAX_ROWS 16  // <= 32: lane r holds row r's result
TLS_EXPORT(decode_linear_threads, DECODE_LINEAR_THREADS)
TLS_EXPORT(decode_linear_max_rows, DECODE_LINEAR_MAX_ROWS)

template <typename T> TLS_DEVICE float round_to(float v) { return to_float(from_float<T>(v)); }

template <typename T, int VPL> __device__ void decode_linear(DecodeLinearParams p)
{
    constexpr int N = RowVec<T>::N, WARPS = DECODE_LINEAR_THREADS / 32;
    extern __shared__ __align__(16) unsigned char xs_raw[];
    T* xs = (T*)xs_raw;  // [rows, K]: n(x)
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, K = p.K;
    const int col = blockIdx.x * WARPS + warp;
    const bool live = col < p.cols;
    grid_dependents_launch(); // the next dependent launch may start its parameter loads while this kernel runs

    // 1. Which output and row this warp owns, and that row of W_j in registers.
    int j = 0, o = col;
    while (j < DECODE_LINEAR_OUTS - 1 && o >= p.n[j]) { o -= p.n[j]; ++j; }
    const void* wj = j == 0 ? p.w[0] : j == 1 ? p.w[1] : j == 2 ? p.w[2] : p.w[3];
    float w[VPL][N];
#pragma unroll
    for (int v = 0; v < VPL; ++v)
    {
        const int c = row_vec_col(v, lane, N);
        if (live && c < K) RowVec<T>::load(wj, (i64)o * K + c, w[v]);
        else
#pragma unroll
            for (int e = 0; e < N; ++e) w[v][e] = 0.f;
    }

    // Lane r's epilogue inputs for row r (bias, the old y), loaded before the staging.
    const void* bj = j == 0 ? p.b[0] : j == 1 ? p.b[1] : j == 2 ? p.b[2] : p.b[3];
    void* yj = j == 0 ? p.y[0] : j == 1 ? p.y[1] : j == 2 ? p.y[2] : p.y[3];
    const int nj = j == 0 ? p.n[0] : j == 1 ? p.n[1] : j == 2 ? p.n[2] : p.n[3];
    const bool mine = live && lane < p.rows;
    const i64 at = (i64)lane * nj + o;
    float z = mine && bj ? load<T>(bj, o) : 0.f;
    // Everything above reads parameters only; x and the old y may be the previous kernel's (a dependent launch starts
    // before it ends).
    grid_dependency_wait();
    if (mine && p.accumulate) z += load<T>(yj, at);

    // 2. x into shared memory (every thread, 16-byte pieces: one round trip), then normalized in place where asked.
    const int pieces = p.rows * K / N;
    for (int i = threadIdx.x; i < pieces; i += DECODE_LINEAR_THREADS) ((uint4*)xs)[i] = ((const uint4*)p.x)[i];
    __syncthreads();
    if (p.gamma)
        for (int r = warp; r < p.rows; r += WARPS)
        {
            float x[VPL][N];
            float s = 0.f;
#pragma unroll
            for (int v = 0; v < VPL; ++v)
            {
                const int c = row_vec_col(v, lane, N);
                if (c < K) RowVec<T>::load(xs, (i64)r * K + c, x[v]);
                else
#pragma unroll
                    for (int e = 0; e < N; ++e) x[v][e] = 0.f;
#pragma unroll
                for (int e = 0; e < N; ++e) s += x[v][e];
            }
            const float mean = warp_sum(s) / K;
            float q = 0.f;
#pragma unroll
            for (int v = 0; v < VPL; ++v)
                if (row_vec_col(v, lane, N) < K)
#pragma unroll
                    for (int e = 0; e < N; ++e) { const float d = x[v][e] - mean; q += d * d; }
            const float rstd = 1.f / sqrtf(warp_sum(q) / K + p.eps);
#pragma unroll
            for (int v = 0; v < VPL; ++v)
            {
                const int c = row_vec_col(v, lane, N);
                if (c >= K) continue;
                float g[N], b[N];
                load_f32_vec<N>(p.gamma, c, g);
                load_f32_vec<N>(p.beta, c, b);
#pragma unroll
                for (int e = 0; e < N; ++e) x[v][e] = (x[v][e] - mean) * rstd * g[e] + b[e];
                RowVec<T>::store(xs, (i64)r * K + c, x[v]); // rounds to T, as LayerNorm stores it
                if (blockIdx.x == 0 && p.xn) RowVec<T>::store(p.xn, (i64)r * K + c, x[v]);
            }
        }
    __syncthreads();
    if (!live) return;

    // 3. Row r's sum (every lane has it after the xor tree), its epilogue on lane r.
    for (int r = 0; r < p.rows; ++r)
    {
        float a = 0.f;
#pragma unroll
        for (int v = 0; v < VPL; ++v)
        {
            const int c = row_vec_col(v, lane, N);
            if (c >= K) continue;
            float x[N];
            RowVec<T>::load(xs, (i64)r * K + c, x);
#pragma unroll
            for (int e = 0; e < N; ++e) a += w[v][e] * x[e];
        }
        a = warp_sum(a);
        if (lane == r) z = a + z;
    }
    if (mine) store<T>(yj, at, p.gelu ? gelu(round_to<T>(z)) : z);
}

// VPL = 16-byte vectors a lane holds of a K row: K <= VPL·32·N (N = 8 bf16, 4 fp32), the launcher's smallest fit.
#define DECODE_LINEAR(VPL)                                                                                                   \
    extern "C" __global__ void decode_linear_v##VPL##_f32(DecodeLinearParams p) { decode_linear<float, VPL>(p); }        \
    extern "C" __global__ void decode_linear_v##VPL##_bf16(DecodeLinearParams p) { decode_linear<bf16, VPL>(p); }
DECODE_LINEAR(1)
DECODE_LINEAR(2)
DECODE_LINEAR(4)
DECODE_LINEAR(8)
DECODE_LINEAR(16)
