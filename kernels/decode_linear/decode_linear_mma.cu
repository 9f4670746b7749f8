// The Linear maps of one decode step on the tensor cores (bf16, 4 to 16 rows: a batch where a warp a weight row
// repeats its reduction per row, too small for cuBLAS to read the weights once; fewer rows stay on decode_linear.cu,
// more than 16 go to cuBLAS, as measured on an H100: bench/results/2026-12-07-h100): y_j (+)= act(n(x)·W_jᵀ + b_j)
// for up to four W_j [n_j, K] sharing x [rows, K], n = LayerNorm or identity. The same math and rounding chain as
// decode_linear.cu (LayerNorm → Linear → GELU, each stored in T); reference:
// src/TransformerLS/Ops/DecodeLinear/DecodeLinear.Reference.cs.
//
// Tile ownership: block = one n-tile of 8 output columns of one W_j (W_0's tiles first), all rows (up to 4 m-tiles of
// 16); warp w = the k-chunks w, w + WARPS, … of 32 (split-K inside the block).
//   1. Each lane loads, for each of its warp's chunks, 16 bytes of W_j's row n0 + g (g = lane / 4, t = lane % 4): the
//      8 elements k = 32·chunk + 8t … + 7, all of them before anything waits (the weights are the traffic).
//   2. After the dependency wait, the LayerNorm statistics of every row (warp a row: mean, then the centred variance;
//      1/sqrtf as the LayerNorm kernels); block 0 writes n(x) rounded to T to xn.
//   3. The mmas (m16n8k16, fp32 accumulators): a lane's 8 elements feed two of them. Within a chunk the k order is
//      permuted the same way for both operands — logical k (2t, 2t+1 | 2t+8, 2t+9) of the first mma is physical
//      8t + (0, 1 | 2, 3), of the second 8t + (4, 5 | 6, 7) — so each lane reads 16 contiguous bytes of W and of the two
//      x rows g, g + 8 it feeds (x from L2, normalized on the fly and rounded to T as LayerNorm stores it).
//   4. The warps' partial tiles go to shared memory and are summed in warp order (no atomics: the same bits every run);
//      thread (row, column) adds the bias and the old y, applies GELU to the rounded sum where asked and stores y_j.
// Launched as a dependent launch (common/dependent_launch.cuh): step 1 overlaps the previous kernel's tail.
#include "decode_linear/decode_linear.cuh"
#include "elementwise/elementwise.cuh"
#include "common/row_vectors.cuh"
#include "common/dependent_launch.cuh"

#define DECODE_LINEAR_MMA_WARPS 8
#define DECODE_LINEAR_MMA_MT 4          // m-tiles of 16 rows the kernel holds: up to 64 rows
#define DECODE_LINEAR_MMA_MAX_ROWS 16   // the launcher's range ends here: at 64 rows cuBLAS's chain was faster (1.62 vs 1.99 ms a step)
#define DECODE_LINEAR_MMA_MIN_ROWS 4    // fewer: decode_linear.cu's warp a weight row (a step at 2 rows 0.351 vs 0.364 ms; at 4, 0.427 vs 0.409)
TLS_EXPORT(decode_linear_mma_threads, DECODE_LINEAR_MMA_WARPS * 32)
TLS_EXPORT(decode_linear_mma_min_rows, DECODE_LINEAR_MMA_MIN_ROWS)
TLS_EXPORT(decode_linear_mma_max_rows, DECODE_LINEAR_MMA_MAX_ROWS)
static_assert(DECODE_LINEAR_MMA_MAX_ROWS <= DECODE_LINEAR_MMA_MT * 16, "the m-tiles hold the rows");
TLS_EXPORT(decode_linear_mma_warps, DECODE_LINEAR_MMA_WARPS)

TLS_DEVICE float round_bf16(float v) { return to_float(from_float<bf16>(v)); }

// 8 elements k … k + 7 of row r of n(x) as 4 bf16 pairs (zeros past the last row).
TLS_DEVICE uint4 mma_x_frag(const DecodeLinearParams& p, int r, int k, const float* mean, const float* rstd, const float (&g)[8], const float (&b)[8])
{
    if (r >= p.rows) return u4(0u, 0u, 0u, 0u);
    const uint4 u = ((const uint4*)p.x)[((i64)r * p.K + k) / 8];
    if (!p.gamma) return u;
    float v[8];
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
    bf16x8_unpack(w, v);
    const float m = mean[r], s = rstd[r];
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = (v[e] - m) * s * g[e] + b[e];
    return u4(pack_bf16x2(v[0], v[1]), pack_bf16x2(v[2], v[3]), pack_bf16x2(v[4], v[5]), pack_bf16x2(v[6], v[7]));
}

// CPW = chunks of 32 a warp holds at most: K <= CPW·32·WARPS (the launcher's smallest fit).
template <int CPW> __device__ void decode_linear_mma(DecodeLinearParams p)
{
    constexpr int WARPS = DECODE_LINEAR_MMA_WARPS, MT = DECODE_LINEAR_MMA_MT, ROWS = MT * 16;
    __shared__ float red[WARPS][ROWS][9];  // the warps' partial tiles (9: rows apart by a bank)
    __shared__ float mean[ROWS], rstd[ROWS];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4, K = p.K, chunks = K / 32;
    grid_dependents_launch();

    // 1. This block's output j and n-tile, and the lane's slices of W_j's row n0 + g.
    int j = 0, tile = blockIdx.x;
    while (j < DECODE_LINEAR_OUTS - 1 && tile >= (p.n[j] + 7) / 8) { tile -= (p.n[j] + 7) / 8; ++j; }
    const void* wj = j == 0 ? p.w[0] : j == 1 ? p.w[1] : j == 2 ? p.w[2] : p.w[3];
    const void* bj = j == 0 ? p.b[0] : j == 1 ? p.b[1] : j == 2 ? p.b[2] : p.b[3];
    void* yj = j == 0 ? p.y[0] : j == 1 ? p.y[1] : j == 2 ? p.y[2] : p.y[3];
    const int nj = j == 0 ? p.n[0] : j == 1 ? p.n[1] : j == 2 ? p.n[2] : p.n[3];
    const int n0 = tile * 8;
    uint4 w[CPW];
#pragma unroll
    for (int c = 0; c < CPW; ++c)
    {
        const int ch = warp + c * WARPS;
        w[c] = ch < chunks && n0 + g < nj ? ((const uint4*)wj)[((i64)(n0 + g) * K + ch * 32 + t * 8) / 8] : u4(0u, 0u, 0u, 0u);
    }
    const int ec = threadIdx.x % 8, er = threadIdx.x / 8;  // the epilogue's column n0 + ec and first row
    const bool col_ok = n0 + ec < nj;
    const float bias = bj && col_ok ? load<bf16>(bj, n0 + ec) : 0.f;
    grid_dependency_wait(); // x and the old y may be the previous kernel's

    // 2. LayerNorm statistics (warp a row), and n(x) to xn by block 0.
    const int rows = p.rows, mtiles = (rows + 15) / 16;
    if (p.gamma)
    {
        for (int r = warp; r < rows; r += WARPS)
        {
            float s = 0.f;
            for (int c = lane * 8; c < K; c += 256)
            {
                float v[8];
                load8<bf16>(p.x, (i64)r * K + c, v);
#pragma unroll
                for (int e = 0; e < 8; ++e) s += v[e];
            }
            const float m = warp_sum(s) / K;
            float q = 0.f;
            for (int c = lane * 8; c < K; c += 256)
            {
                float v[8];
                load8<bf16>(p.x, (i64)r * K + c, v);
#pragma unroll
                for (int e = 0; e < 8; ++e) { const float d = v[e] - m; q += d * d; }
            }
            const float rs = 1.f / sqrtf(warp_sum(q) / K + p.eps);
            if (lane == 0) { mean[r] = m; rstd[r] = rs; }
        }
        __syncthreads();
        if (blockIdx.x == 0 && p.xn)
            for (int i = threadIdx.x; i < rows * (K / 8); i += WARPS * 32)
            {
                const int r = i / (K / 8), k = i % (K / 8) * 8;
                float gv[8], bv[8];
                load_f32_vec<8>(p.gamma, k, gv);
                load_f32_vec<8>(p.beta, k, bv);
                ((uint4*)p.xn)[i] = mma_x_frag(p, r, k, mean, rstd, gv, bv);
            }
    }

    // 3. The warp's chunks against every m-tile.
    float acc[MT][4];
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[m][0] = acc[m][1] = acc[m][2] = acc[m][3] = 0.f;
#pragma unroll
    for (int c = 0; c < CPW; ++c)
    {
        const int ch = warp + c * WARPS;
        if (ch >= chunks) break; // uniform over the warp
        const int k = ch * 32 + t * 8;
        float gv[8] = {}, bv[8] = {};
        if (p.gamma) { load_f32_vec<8>(p.gamma, k, gv); load_f32_vec<8>(p.beta, k, bv); }
        const unsigned b0[2] = {w[c].x, w[c].y}, b1[2] = {w[c].z, w[c].w};
#pragma unroll
        for (int m = 0; m < MT; ++m)
        {
            if (m >= mtiles) break;
            const uint4 x0 = mma_x_frag(p, m * 16 + g, k, mean, rstd, gv, bv), x1 = mma_x_frag(p, m * 16 + g + 8, k, mean, rstd, gv, bv);
            const unsigned a0[4] = {x0.x, x1.x, x0.y, x1.y}, a1[4] = {x0.z, x1.z, x0.w, x1.w};
            mma_bf16_16816(acc[m], a0, b0, acc[m]);
            mma_bf16_16816(acc[m], a1, b1, acc[m]);
        }
    }

    // 4. The partial tiles summed in warp order, then the epilogue.
#pragma unroll
    for (int m = 0; m < MT; ++m)
    {
        if (m >= mtiles) break;
        red[warp][m * 16 + g][2 * t] = acc[m][0];
        red[warp][m * 16 + g][2 * t + 1] = acc[m][1];
        red[warp][m * 16 + g + 8][2 * t] = acc[m][2];
        red[warp][m * 16 + g + 8][2 * t + 1] = acc[m][3];
    }
    __syncthreads();
    if (!col_ok) return;
    for (int r = er; r < rows; r += WARPS * 32 / 8)
    {
        const i64 at = (i64)r * nj + n0 + ec;
        float z = bias;
        if (p.accumulate) z += load<bf16>(yj, at);
        float s = 0.f;
#pragma unroll
        for (int q = 0; q < WARPS; ++q) s += red[q][r][ec];
        z += s;
        store<bf16>(yj, at, p.gelu ? gelu(round_bf16(z)) : z);
    }
}

#define DECODE_LINEAR_MMA(CPW) \
    extern "C" __global__ void __launch_bounds__(DECODE_LINEAR_MMA_WARPS * 32) decode_linear_mma_c##CPW##_bf16(DecodeLinearParams p) { decode_linear_mma<CPW>(p); }
DECODE_LINEAR_MMA(1)
DECODE_LINEAR_MMA(2)
DECODE_LINEAR_MMA(4)
DECODE_LINEAR_MMA(8)
DECODE_LINEAR_MMA(16)
