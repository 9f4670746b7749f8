// DualLN of the LS attention (reference sections 1.2, 1.3, 3.2, 3.3): LayerNorm over all D = H·d channels of
// a token, for K and V in one launch (same weights), writing the head-split layout [B, H, T, d] the attention
// kernels read. The input is token-major [B, T, D] (straight from a Linear: LN_A / LN_W) or already head-split
// [B, H, T, d] (the landmarks: LN_B / LN_P). Statistics and weights in fp32.
// Reference: src/TransformerLS/Ops/DualLayerNorm/DualLayerNorm.cs.
#include "dual_layer_norm/dual_layer_norm.cuh"
#include "common/row_vectors.cuh"

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

// Stage 2, block (32, 8) of 32 channels: the groups' partial sums added in a fixed order (ordered_group_sum).
template <typename T> __device__ void dual_layer_norm_bwd_params_sum(DualLayerNormParams p)
{
    __shared__ float sg[8][33], sb[8][33];
    int D = p.H * p.d;
    i64 c = blockIdx.x * 32 + threadIdx.x;
    float tg = ordered_group_sum(sg, p.partial, D, p.groups, c);
    float tb = ordered_group_sum(sb, p.partial + (i64)p.groups * D, D, p.groups, c);
    if (threadIdx.y != 0 || c >= D) return;
    p.dgamma[c] = tg;
    p.dbeta[c] = tb;
}

// The row-in-registers forms (row_vectors.cuh; the launcher checks D % N == 0, d % N == 0, D <= VPL·32·N and
// alignment, so a vector never straddles two heads). A lane's vector k sits at column c_k of every row; its offset
// in the head-split layout is (b·H·T + t)·d + [h(c_k)·T·d + c_k mod d], the bracket fixed per lane.
template <typename T, int VPL> struct DualRowOffsets
{
    i64 split[VPL];
    int col[VPL];
    TLS_DEVICE DualRowOffsets(const DualLayerNormParams& p, int lane)
    {
#pragma unroll
        for (int k = 0; k < VPL; ++k)
        {
            col[k] = row_vec_col(k, lane, RowVec<T>::N);
            split[k] = (i64)(col[k] / p.d) * p.T * p.d + col[k] % p.d;
        }
    }
    TLS_DEVICE i64 y(const DualLayerNormParams& p, const Row& w, int k) const { return ((i64)w.b * p.H * p.T + w.t) * p.d + split[k]; }
    TLS_DEVICE i64 x(const DualLayerNormParams& p, const Row& w, int k) const { return p.token_major ? w.bt * p.H * p.d + col[k] : y(p, w, k); }
};

// Warp w of block b takes the rows b·W + w, then on by the grid's G·W warps (as layer_norm_fwd_rows), with its channels'
// γ, β loaded once.
template <typename T, int VPL> __device__ void dual_layer_norm_fwd_rows(DualLayerNormParams p)
{
    constexpr int N = RowVec<T>::N;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32, D = p.H * p.d;
    const DualRowOffsets<T, VPL> o(p, lane);
    float gamma[VPL][N], beta[VPL][N];
#pragma unroll
    for (int k = 0; k < VPL; ++k)
        if (o.col[k] < D) { load_f32_vec<N>(p.gamma, o.col[k], gamma[k]); load_f32_vec<N>(p.beta, o.col[k], beta[k]); }
    for (int r = blockIdx.x * warps + warp; r < p.S * p.B * p.T; r += gridDim.x * warps)
    {
        const Row w = row_of(p, r);
        const void* xs = w.s ? p.x1 : p.x0;
        void* ys = w.s ? p.y1 : p.y0;
        float x[VPL][N], mean, rstd;
#pragma unroll
        for (int k = 0; k < VPL; ++k)
        {
            if (o.col[k] < D) RowVec<T>::load(xs, o.x(p, w, k), x[k]);
            else
#pragma unroll
                for (int e = 0; e < N; ++e) x[k][e] = 0.f;
        }
        layer_norm_row_stats<VPL, N>(x, D, p.eps, mean, rstd);
#pragma unroll
        for (int k = 0; k < VPL; ++k)
        {
            if (o.col[k] >= D) continue;
            float y[N];
#pragma unroll
            for (int e = 0; e < N; ++e) y[e] = (x[k][e] - mean) * rstd * gamma[k][e] + beta[k][e];
            RowVec<T>::store(ys, o.y(p, w, k), y);
        }
        if (lane == 0) { p.mean[r] = mean; p.rstd[r] = rstd; }
    }
}

// Backward in one pass over x and dy, K and V rows together: block g of G = gridDim.x = p.groups owns the rows
// [g·R, (g+1)·R) of the S·B·T rows, R = ceil(rows / G), warp w of W the rows g·R + w + k·W; dx per row as in
// dual_layer_norm_bwd_input, each lane's dy·x̂ and dy summed in registers, the warps' sums added in warp order into
// partial[0|1][g][c]; dual_layer_norm_bwd_params_sum adds the groups in order. Software-pipelined: a warp's next row
// (x, dy as raw vectors, mean, rstd) is loaded while its current row is computed and stored.
template <typename T, int VPL> __device__ void dual_layer_norm_bwd_rows(DualLayerNormParams p)
{
    constexpr int N = RowVec<T>::N, E = VPL * N;
    __shared__ float red[2][VPL * 32 * N];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32, D = p.H * p.d;
    i64 rows = (i64)p.S * p.B * p.T, per = (rows + p.groups - 1) / p.groups, r0 = blockIdx.x * per, r1 = min(rows, r0 + per);
    const DualRowOffsets<T, VPL> o(p, lane);
    float ag[E], ab[E], gamma[VPL][N];
#pragma unroll
    for (int e = 0; e < E; ++e) { ag[e] = 0.f; ab[e] = 0.f; }
#pragma unroll
    for (int k = 0; k < VPL; ++k)
        if (o.col[k] < D) load_f32_vec<N>(p.gamma, o.col[k], gamma[k]);
    typename RowVec<T>::Raw xn[VPL], dyn[VPL];
    float mn = 0.f, rn = 0.f;
    auto issue = [&](i64 r) {
        const Row w = row_of(p, (int)r);
#pragma unroll
        for (int k = 0; k < VPL; ++k)
        {
            if (o.col[k] >= D) continue;
            xn[k] = RowVec<T>::load_raw(w.s ? p.x1 : p.x0, o.x(p, w, k));
            dyn[k] = RowVec<T>::load_raw(w.s ? p.dy1 : p.dy0, o.y(p, w, k));
        }
        mn = p.mean[r];
        rn = p.rstd[r];
    };
    if (r0 + warp < r1) issue(r0 + warp);
    for (i64 r = r0 + warp; r < r1; r += warps)
    {
        const Row w = row_of(p, (int)r);
        float x[VPL][N], dy[VPL][N];
#pragma unroll
        for (int k = 0; k < VPL; ++k)
        {
            if (o.col[k] >= D) continue;
            RowVec<T>::unpack(xn[k], x[k]);
            RowVec<T>::unpack(dyn[k], dy[k]);
        }
        const float mean = mn, rstd = rn;
        if (r + warps < r1) issue(r + warps);
        layer_norm_row_grad<VPL, N>(x, dy, gamma, mean, rstd, D, ag, ab);
#pragma unroll
        for (int k = 0; k < VPL; ++k)
            if (o.col[k] < D) RowVec<T>::store(w.s ? p.dx1 : p.dx0, o.x(p, w, k), dy[k]);
    }
    block_ordered_sum<VPL, N>(red[0], ag, D);
    block_ordered_sum<VPL, N>(red[1], ab, D);
    for (int c = threadIdx.x; c < D; c += blockDim.x)
    {
        p.partial[(i64)blockIdx.x * D + c] = red[0][c];
        p.partial[((i64)p.groups + blockIdx.x) * D + c] = red[1][c];
    }
}

TLS_INSTANTIATE(dual_layer_norm_fwd, DualLayerNormParams)
TLS_INSTANTIATE(dual_layer_norm_bwd_input, DualLayerNormParams)
TLS_INSTANTIATE(dual_layer_norm_bwd_params, DualLayerNormParams)
TLS_INSTANTIATE(dual_layer_norm_bwd_params_sum, DualLayerNormParams)
TLS_INSTANTIATE_ROWS(dual_layer_norm_fwd_rows, DualLayerNormParams)
TLS_INSTANTIATE_ROWS_BWD(dual_layer_norm_bwd_rows, DualLayerNormParams)
