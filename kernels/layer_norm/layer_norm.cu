// LayerNorm over the last axis: y = (x - mean) * rstd * gamma + beta. Data in T, gamma/beta and the
// saved statistics in fp32 (as autocast keeps LayerNorm in fp32). Reference: src/TransformerLS/Ops/LayerNorm.
#include "layer_norm/layer_norm.cuh"

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

// Stage 2: one thread per column adds the groups' partial sums in group order.
template <typename T> __device__ void layer_norm_bwd_params_sum(LayerNormParams p)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= p.cols) return;
    float tg = 0.f, tb = 0.f;
    for (int g = 0; g < p.groups; ++g) { tg += p.partial[(i64)g * p.cols + c]; tb += p.partial[((i64)p.groups + g) * p.cols + c]; }
    p.dgamma[c] = p.accumulate ? p.dgamma[c] + tg : tg;
    p.dbeta[c] = p.accumulate ? p.dbeta[c] + tb : tb;
}

TLS_INSTANTIATE(layer_norm_fwd, LayerNormParams)
TLS_INSTANTIATE(layer_norm_bwd_input, LayerNormParams)
TLS_INSTANTIATE(layer_norm_bwd_params, LayerNormParams)
TLS_INSTANTIATE(layer_norm_bwd_params_sum, LayerNormParams)
