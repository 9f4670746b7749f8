// LayerNorm over the last axis: y = (x - mean) * rstd * gamma + beta. Data in T, gamma/beta and the
// saved statistics in fp32 (as autocast keeps LayerNorm in fp32). Reference: src/TransformerLS/Ops/LayerNorm.
#include "layer_norm/layer_norm.cuh"
#include "common/row_vectors.cuh"

// One warp per row; two passes over the row (mean, then centred variance) for accuracy.
template <typename T> __device__ void layer_norm_fwd(LayerNormParams p)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= p.rows) return;
    i64 base = (i64)row * p.cols;
    float s = 0.f;
    for (int c = lane; c < p.cols; c += 32) s += load<T>(p.x, base + c);
    float mean = warp_sum(s) / p.cols;
    float v = 0.f;
    for (int c = lane; c < p.cols; c += 32) { float d = load<T>(p.x, base + c) - mean; v += d * d; }
    // 1/sqrtf, both IEEE-rounded: rsqrtf's 2-ulp error showed in dgamma of short rows.
    float rstd = 1.f / sqrtf(warp_sum(v) / p.cols + p.eps);
    for (int c = lane; c < p.cols; c += 32)
        store<T>(p.y, base + c, (load<T>(p.x, base + c) - mean) * rstd * p.gamma[c] + p.beta[c]);
    if (lane == 0 && p.mean) { p.mean[row] = mean; p.rstd[row] = rstd; }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.
template <typename T> __device__ void layer_norm_bwd_input(LayerNormParams p)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= p.rows) return;
    i64 base = (i64)row * p.cols;
    float mean = p.mean[row], rstd = p.rstd[row];
    float sg = 0.f, sgx = 0.f;
    for (int c = lane; c < p.cols; c += 32)
    {
        float g = load<T>(p.dy, base + c) * p.gamma[c];
        float xhat = (load<T>(p.x, base + c) - mean) * rstd;
        sg += g; sgx += g * xhat;
    }
    sg = warp_sum(sg) / p.cols;
    sgx = warp_sum(sgx) / p.cols;
    for (int c = lane; c < p.cols; c += 32)
    {
        float g = load<T>(p.dy, base + c) * p.gamma[c];
        float xhat = (load<T>(p.x, base + c) - mean) * rstd;
        store<T>(p.dx, base + c, rstd * (g - sg - xhat * sgx));
    }
}

// dgamma[c] = sum_r dy * xhat, dbeta[c] = sum_r dy, in two stages with a fixed order (no atomics: the same bits
// every run). Stage 1: block (32, 8) of 32 columns and row group g = blockIdx.y of G = gridDim.y sums the rows
// g·8 + threadIdx.y + k·8·G into partial[0|1][g][c]. Stage 2 (layer_norm_bwd_params_sum) adds the G groups in order.
template <typename T> __device__ void layer_norm_bwd_params(LayerNormParams p)
{
    __shared__ float pg[8][33], pb[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float sg = 0.f, sb = 0.f;
    if (c < p.cols)
        for (i64 r = (i64)blockIdx.y * 8 + threadIdx.y; r < p.rows; r += 8 * (i64)gridDim.y)
        {
            float dy = load<T>(p.dy, r * p.cols + c);
            sg += dy * (load<T>(p.x, r * p.cols + c) - p.mean[r]) * p.rstd[r];
            sb += dy;
        }
    pg[threadIdx.y][threadIdx.x] = sg;
    pb[threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && c < p.cols)
    {
        float tg = 0.f, tb = 0.f;
        for (int k = 0; k < 8; ++k) { tg += pg[k][threadIdx.x]; tb += pb[k][threadIdx.x]; }
        p.partial[(i64)blockIdx.y * p.cols + c] = tg;
        p.partial[((i64)p.groups + blockIdx.y) * p.cols + c] = tb;
    }
}

// Stage 2, block (32, 8) of 32 columns: the G groups' partial sums added in a fixed order (ordered_group_sum).
template <typename T> __device__ void layer_norm_bwd_params_sum(LayerNormParams p)
{
    __shared__ float sg[8][33], sb[8][33];
    i64 c = blockIdx.x * 32 + threadIdx.x;
    float tg = ordered_group_sum(sg, p.partial, p.cols, p.groups, c);
    float tb = ordered_group_sum(sb, p.partial + (i64)p.groups * p.cols, p.cols, p.groups, c);
    if (threadIdx.y != 0 || c >= p.cols) return;
    p.dgamma[c] = p.accumulate ? p.dgamma[c] + tg : tg;
    p.dbeta[c] = p.accumulate ? p.dbeta[c] + tb : tb;
}

// The same forward with the row in registers as 16-byte vectors (row_vectors.cuh; the launcher checks
// cols % N == 0, cols <= VPL·32·N and alignment): one read of x, one write of y. Warp w of block b takes the rows
// b·W + w, then on by the grid's G·W warps (the launcher gives each warp ROWS_PER_WARP rows where there are rows enough to
// fill the GPU, fewer where not), with its columns' γ and β loaded once.
template <typename T, int VPL> __device__ void layer_norm_fwd_rows(LayerNormParams p)
{
    constexpr int N = RowVec<T>::N;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    float gamma[VPL][N], beta[VPL][N];
#pragma unroll
    for (int k = 0; k < VPL; ++k)
        if (row_vec_col(k, lane, N) < p.cols) { load_f32_vec<N>(p.gamma, row_vec_col(k, lane, N), gamma[k]); load_f32_vec<N>(p.beta, row_vec_col(k, lane, N), beta[k]); }
    for (i64 row = (i64)blockIdx.x * warps + warp; row < p.rows; row += (i64)gridDim.x * warps)
    {
        i64 base = row * p.cols;
        float x[VPL][N], mean, rstd;
#pragma unroll
        for (int k = 0; k < VPL; ++k)
        {
            int c = row_vec_col(k, lane, N);
            if (c < p.cols) RowVec<T>::load(p.x, base + c, x[k]);
            else
#pragma unroll
                for (int e = 0; e < N; ++e) x[k][e] = 0.f;
        }
        layer_norm_row_stats<VPL, N>(x, p.cols, p.eps, mean, rstd);
#pragma unroll
        for (int k = 0; k < VPL; ++k)
        {
            int c = row_vec_col(k, lane, N);
            if (c >= p.cols) continue;
            float y[N];
#pragma unroll
            for (int e = 0; e < N; ++e) y[e] = (x[k][e] - mean) * rstd * gamma[k][e] + beta[k][e];
            RowVec<T>::store(p.y, base + c, y);
        }
        if (lane == 0 && p.mean) { p.mean[row] = mean; p.rstd[row] = rstd; }
    }
}

// Backward in one pass over x and dy: block g of G = gridDim.x = p.groups owns the rows [g·R, (g+1)·R),
// R = ceil(rows / G), warp w of W the rows g·R + w + k·W in turn. Per row dx as in layer_norm_bwd_input; each lane
// sums dy·x̂ and dy of its columns over its rows in registers, the warps' sums are added in warp order
// (block_ordered_sum) into partial[0|1][g][c], and layer_norm_bwd_params_sum adds the groups in order: the same
// bits every run.
template <typename T, int VPL> __device__ void layer_norm_bwd_rows(LayerNormParams p)
{
    constexpr int N = RowVec<T>::N, E = VPL * N;
    __shared__ float red[2][VPL * 32 * N];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    i64 per = (p.rows + p.groups - 1) / p.groups, r0 = blockIdx.x * per, r1 = min((i64)p.rows, r0 + per);
    float ag[E], ab[E], gamma[VPL][N];
#pragma unroll
    for (int e = 0; e < E; ++e) { ag[e] = 0.f; ab[e] = 0.f; }
#pragma unroll
    for (int k = 0; k < VPL; ++k)
        if (row_vec_col(k, lane, N) < p.cols) load_f32_vec<N>(p.gamma, row_vec_col(k, lane, N), gamma[k]);
    // Software-pipelined: a warp's next row (x, dy as raw vectors, mean, rstd) is loaded while its current row is
    // computed.
    typename RowVec<T>::Raw xn[VPL], dyn[VPL];
    float mn = 0.f, rn = 0.f;
    auto issue = [&](i64 r) {
#pragma unroll
        for (int k = 0; k < VPL; ++k)
        {
            int c = row_vec_col(k, lane, N);
            if (c >= p.cols) continue;
            xn[k] = RowVec<T>::load_raw(p.x, r * p.cols + c);
            dyn[k] = RowVec<T>::load_raw(p.dy, r * p.cols + c);
        }
        mn = p.mean[r];
        rn = p.rstd[r];
    };
    if (r0 + warp < r1) issue(r0 + warp);
    for (i64 r = r0 + warp; r < r1; r += warps)
    {
        float x[VPL][N], dy[VPL][N];
#pragma unroll
        for (int k = 0; k < VPL; ++k)
        {
            if (row_vec_col(k, lane, N) >= p.cols) continue;
            RowVec<T>::unpack(xn[k], x[k]);
            RowVec<T>::unpack(dyn[k], dy[k]);
        }
        const float mean = mn, rstd = rn;
        if (r + warps < r1) issue(r + warps);
        layer_norm_row_grad<VPL, N>(x, dy, gamma, mean, rstd, p.cols, ag, ab);
#pragma unroll
        for (int k = 0; k < VPL; ++k)
            if (row_vec_col(k, lane, N) < p.cols) RowVec<T>::store(p.dx, r * p.cols + row_vec_col(k, lane, N), dy[k]);
    }
    block_ordered_sum<VPL, N>(red[0], ag, p.cols);
    block_ordered_sum<VPL, N>(red[1], ab, p.cols);
    for (int c = threadIdx.x; c < p.cols; c += blockDim.x)
    {
        p.partial[(i64)blockIdx.x * p.cols + c] = red[0][c];
        p.partial[((i64)p.groups + blockIdx.x) * p.cols + c] = red[1][c];
    }
}

TLS_INSTANTIATE(layer_norm_fwd, LayerNormParams)
TLS_INSTANTIATE(layer_norm_bwd_input, LayerNormParams)
TLS_INSTANTIATE(layer_norm_bwd_params, LayerNormParams)
TLS_INSTANTIATE(layer_norm_bwd_params_sum, LayerNormParams)
TLS_INSTANTIATE_ROWS(layer_norm_fwd_rows, LayerNormParams)
TLS_INSTANTIATE_ROWS_BWD(layer_norm_bwd_rows, LayerNormParams)
