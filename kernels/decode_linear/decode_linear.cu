// The Linear maps of one decode step (few rows, weights read once): y_j (+)= act(n(x)·W_jᵀ + b_j) for up to four
// weight matrices W_j that share the input x [rows <= DECODE_LINEAR_MAX_ROWS, K], with n = LayerNorm or identity.
// Reference: src/TransformerLS/Ops/DecodeLinear/DecodeLinear.Reference.cs (the rounding chain of the unfused ops it
// replaces: LayerNorm → Linear → GELU, each stored in T).
//
// Tile ownership: block = WARPS output columns (over all outputs, W_0's rows first), warp = one column o of one W_j.
//   1. The warp loads W_j's row o into registers (lane l holds the 16-byte vectors l, l + 32, …: VPL of them), so the
//      weight loads are in flight while the rest starts; then, tile by tile of DECODE_LINEAR_TILE rows of x:
//   2. the block copies the tile's rows to shared memory (in T, 16-byte pieces over all threads), then normalizes them
//      in place where asked (a warp a row: mean, centred variance, 1/sqrtf as the LayerNorm kernels; the result
//      rounded to T; block 0 also writes it to xn);
//   3. each row's dot product: the lane's vectors against the row; with few rows a warp sum per row (a fixed tree,
//      every lane gets it), else the lanes' TILE partial sums reduce-scattered (the half-warps folded, xor 16, then
//      halving exchanges, xor 8, 4, 2, 1: lane l ends with row l % TILE's sum, 31 shuffles instead of 5 a row); lane r
//      adds row r's bias (loaded with the weights) and old y, applies GELU to the rounded sum where asked, and stores
//      y_j[r, o].
// No atomics: the same bits every run. The weights are the traffic (a tile of x staged per block is small), so a
// launch costs one pass over Σ n_j·K elements. Launched as a dependent launch (common/dependent_launch.cuh): step 1's
// weight loads overlap the previous kernel's tail.
#include "decode_linear/decode_linear.cuh"
#include "elementwise/elementwise.cuh"
#include "common/row_vectors.cuh"
#include "common/dependent_launch.cuh"

#define DECODE_LINEAR_THREADS 128
#define DECODE_LINEAR_TILE 16       // rows of x staged at once (<= 16: lane r and r + 16 hold row r's result)
#define DECODE_LINEAR_MAX_ROWS 16   // more rows: the unfused chain (cuBLAS's tensor cores beat a warp a column there)
#define DECODE_LINEAR_FEW_ROWS 4    // at most this many rows in a tile: a warp sum per row, not the reduce-scatter
TLS_EXPORT(decode_linear_threads, DECODE_LINEAR_THREADS)
TLS_EXPORT(decode_linear_tile_rows, DECODE_LINEAR_TILE)
TLS_EXPORT(decode_linear_max_rows, DECODE_LINEAR_MAX_ROWS)

template <typename T> TLS_DEVICE float round_to(float v) { return to_float(from_float<T>(v)); }

// Lane's part of the dot product of the weight row it holds (w) with staged row r of xs.
template <typename T, int VPL> TLS_DEVICE float lane_dot(const T* xs, int r, const float (&w)[VPL][RowVec<T>::N], int lane, int K)
{
    constexpr int N = RowVec<T>::N;
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
    return a;
}

template <typename T, int VPL> __device__ void decode_linear(DecodeLinearParams p)
{
    constexpr int N = RowVec<T>::N, WARPS = DECODE_LINEAR_THREADS / 32, TILE = DECODE_LINEAR_TILE;
    extern __shared__ __align__(16) unsigned char xs_raw[];
    T* xs = (T*)xs_raw;  // [TILE, K]: n(x) of the tile's rows
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

    // The epilogue's bias, loaded before the wait.
    const void* bj = j == 0 ? p.b[0] : j == 1 ? p.b[1] : j == 2 ? p.b[2] : p.b[3];
    void* yj = j == 0 ? p.y[0] : j == 1 ? p.y[1] : j == 2 ? p.y[2] : p.y[3];
    const int nj = j == 0 ? p.n[0] : j == 1 ? p.n[1] : j == 2 ? p.n[2] : p.n[3];
    const float bias = live && bj ? load<T>(bj, o) : 0.f;
    // Everything above reads parameters only; x and the old y may be the previous kernel's (a dependent launch starts
    // before it ends).
    grid_dependency_wait();

    for (int r0 = 0; r0 < p.rows; r0 += TILE)
    {
        const int rows = min(TILE, p.rows - r0);
        const bool mine = live && lane < rows;
        const i64 at = (i64)(r0 + lane) * nj + o;
        float z = bias;
        if (mine && p.accumulate) z += load<T>(yj, at);  // lane r's old y of row r0 + r, before the staging

        // 2. The tile into shared memory (every thread, 16-byte pieces: one round trip), then normalized in place where asked.
        if (r0 > 0) __syncthreads();  // every warp is done with the last tile
        const int pieces = rows * K / N;
        const uint4* src = (const uint4*)p.x + (i64)r0 * K / N;
        for (int i = threadIdx.x; i < pieces; i += DECODE_LINEAR_THREADS) ((uint4*)xs)[i] = src[i];
        __syncthreads();
        if (p.gamma)
        {
            for (int r = warp; r < rows; r += WARPS)
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
                    if (blockIdx.x == 0 && p.xn) RowVec<T>::store(p.xn, (i64)(r0 + r) * K + c, x[v]);
                }
            }
            __syncthreads();
        }
        if (!live) continue;  // (uniform over the warp) still at the next tile's barriers

        // 3. Row r's sum on lane r (and r + 16), then its epilogue there.
        float sum = 0.f;
        if (rows <= DECODE_LINEAR_FEW_ROWS)
            for (int r = 0; r < rows; ++r)
            {
                const float a = warp_sum(lane_dot<T, VPL>(xs, r, w, lane, K));
                if (lane == r) sum = a;
            }
        else
        {
            float a[TILE];
#pragma unroll
            for (int r = 0; r < TILE; ++r) a[r] = r < rows ? lane_dot<T, VPL>(xs, r, w, lane, K) : 0.f;
#pragma unroll
            for (int r = 0; r < TILE; ++r) a[r] += __shfl_xor_sync(0xffffffffu, a[r], 16);
#pragma unroll
            for (int h = TILE / 2; h >= 1; h /= 2)
            {
                const bool up = (lane & h) != 0;  // keeps rows [h, 2h) of its current 2h, sends [0, h)
#pragma unroll
                for (int i = 0; i < h; ++i)
                {
                    const float send = up ? a[i] : a[i + h], keep = up ? a[i + h] : a[i];
                    a[i] = keep + __shfl_xor_sync(0xffffffffu, send, h);
                }
            }
            sum = a[0];  // row lane % 16
        }
        z += sum;
        if (mine) store<T>(yj, at, p.gelu ? gelu(round_to<T>(z)) : z);
    }
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
