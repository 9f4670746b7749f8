// DualLN of the LS attention (reference sections 1.2, 1.3, 3.2, 3.3): LayerNorm over all D = H·d channels of
// a token, for K and V in one launch (same weights), writing the head-split layout [B, H, T, d] the attention
// kernels read. The input is token-major [B, T, D] (straight from a Linear: LN_A / LN_W) or already head-split
// [B, H, T, d] (the landmarks: LN_B / LN_P). Statistics and weights in fp32.
// Reference: src/TransformerLS/Ops/DualLayerNorm/DualLayerNorm.cs.
#include "dual_layer_norm/dual_layer_norm.cuh"

struct Row { int s, b, t; i64 bt; };

TLS_DEVICE Row row_of(const DualLayerNormParams& p, int r)
{
    Row w;
    w.s = r / (p.B * p.T);
    w.bt = r % (p.B * p.T);
    w.b = (int)(w.bt / p.T);
    w.t = (int)(w.bt % p.T);
    return w;
}

TLS_DEVICE i64 head_split(const DualLayerNormParams& p, const Row& w, int col)
{
    return (((i64)w.b * p.H + col / p.d) * p.T + w.t) * p.d + col % p.d;
}

TLS_DEVICE i64 in_offset(const DualLayerNormParams& p, const Row& w, int col)
{
    return p.token_major ? w.bt * p.H * p.d + col : head_split(p, w, col);
}

template <typename T> __device__ void dual_layer_norm_fwd(DualLayerNormParams p)
{
    int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32, D = p.H * p.d;
    if (r >= p.S * p.B * p.T) return;
    const Row w = row_of(p, r);
    const void* x = w.s ? p.x1 : p.x0;
    void* y = w.s ? p.y1 : p.y0;
    float s = 0.f;
    for (int c = lane; c < D; c += 32) s += load<T>(x, in_offset(p, w, c));
    float mean = warp_sum(s) / D;
    float v = 0.f;
    for (int c = lane; c < D; c += 32) { float e = load<T>(x, in_offset(p, w, c)) - mean; v += e * e; }
    float rstd = 1.f / sqrtf(warp_sum(v) / D + p.eps);
    for (int c = lane; c < D; c += 32)
        store<T>(y, head_split(p, w, c), (load<T>(x, in_offset(p, w, c)) - mean) * rstd * p.gamma[c] + p.beta[c]);
    if (lane == 0) { p.mean[r] = mean; p.rstd[r] = rstd; }
}

// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·gamma; dy is head-split, dx in x's layout.
template <typename T> __device__ void dual_layer_norm_bwd_input(DualLayerNormParams p)
{
    int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32, D = p.H * p.d;
    if (r >= p.S * p.B * p.T) return;
    const Row w = row_of(p, r);
    const void* x = w.s ? p.x1 : p.x0;
    const void* dy = w.s ? p.dy1 : p.dy0;
    void* dx = w.s ? p.dx1 : p.dx0;
    float mean = p.mean[r], rstd = p.rstd[r], sg = 0.f, sgx = 0.f;
    for (int c = lane; c < D; c += 32)
    {
        float g = load<T>(dy, head_split(p, w, c)) * p.gamma[c];
        sg += g; sgx += g * (load<T>(x, in_offset(p, w, c)) - mean) * rstd;
    }
    sg = warp_sum(sg) / D;
    sgx = warp_sum(sgx) / D;
    for (int c = lane; c < D; c += 32)
    {
        float g = load<T>(dy, head_split(p, w, c)) * p.gamma[c];
        float xhat = (load<T>(x, in_offset(p, w, c)) - mean) * rstd;
        store<T>(dx, in_offset(p, w, c), rstd * (g - sg - xhat * sgx));
    }
}

// dgamma = Σ dy·x̂, dbeta = Σ dy over the rows of K and V together, in two stages with a fixed order (no atomics):
// stage 1, block (32, 8) of 32 channels and row group g = blockIdx.y of G = gridDim.y, sums the rows
// g·8 + threadIdx.y + k·8·G into partial[0|1][g][c]; stage 2 (dual_layer_norm_bwd_params_sum) adds the groups in order.
template <typename T> __device__ void dual_layer_norm_bwd_params(DualLayerNormParams p)
{
    __shared__ float pg[8][33], pb[8][33];
    int c = blockIdx.x * 32 + threadIdx.x, D = p.H * p.d, rows = p.S * p.B * p.T;
    float sg = 0.f, sb = 0.f;
    if (c < D)
        for (int r = blockIdx.y * 8 + threadIdx.y; r < rows; r += 8 * gridDim.y)
        {
            const Row w = row_of(p, r);
            float dy = load<T>(w.s ? p.dy1 : p.dy0, head_split(p, w, c));
            sg += dy * (load<T>(w.s ? p.x1 : p.x0, in_offset(p, w, c)) - p.mean[r]) * p.rstd[r];
            sb += dy;
        }
    pg[threadIdx.y][threadIdx.x] = sg;
    pb[threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && c < D)
    {
        float tg = 0.f, tb = 0.f;
        for (int k = 0; k < 8; ++k) { tg += pg[k][threadIdx.x]; tb += pb[k][threadIdx.x]; }
        p.partial[(i64)blockIdx.y * D + c] = tg;
        p.partial[((i64)p.groups + blockIdx.y) * D + c] = tb;
    }
}

// Stage 2: one thread per channel adds the groups' partial sums in group order.
template <typename T> __device__ void dual_layer_norm_bwd_params_sum(DualLayerNormParams p)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, D = p.H * p.d;
    if (c >= D) return;
    float tg = 0.f, tb = 0.f;
    for (int g = 0; g < p.groups; ++g) { tg += p.partial[(i64)g * D + c]; tb += p.partial[((i64)p.groups + g) * D + c]; }
    p.dgamma[c] = tg;
    p.dbeta[c] = tb;
}

TLS_INSTANTIATE(dual_layer_norm_fwd, DualLayerNormParams)
TLS_INSTANTIATE(dual_layer_norm_bwd_input, DualLayerNormParams)
TLS_INSTANTIATE(dual_layer_norm_bwd_params, DualLayerNormParams)
TLS_INSTANTIATE(dual_layer_norm_bwd_params_sum, DualLayerNormParams)
