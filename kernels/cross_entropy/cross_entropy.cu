// Fused log-softmax cross-entropy over the last axis of logits [N, V]: loss_i = lse_i − x_i[t_i], the gradient
// dx_ij = dloss_i·(exp(x_ij − lse_i) − [j = t_i]). Targets are class indices stored as float32 (exact below
// 2^24); a negative target marks an ignored row (loss 0, gradient 0). A target >= V is never read past the row:
// its loss is NaN (the CPU backend throws instead; checking here would need a host round trip). A warp per row.
// Reference: src/TransformerLS/Ops/CrossEntropy/CrossEntropy.cs.
#include "cross_entropy/cross_entropy.cuh"

template <typename T> __device__ void cross_entropy_fwd(CrossEntropyParams p)
{
    i64 row = blockIdx.x * (i64)(blockDim.x / 32) + threadIdx.x / 32;
    if (row >= p.rows) return;
    const int lane = threadIdx.x % 32;
    const i64 base = row * p.vocab;
    const int t = (int)p.target[row];
    float m = -TLS_INF;
    for (int j = lane; j < p.vocab; j += 32) m = fmaxf(m, load<T>(p.x, base + j));
    m = warp_max(m);
    double s = 0.0;  // V terms: the normalizer in double adds no error of its own
    for (int j = lane; j < p.vocab; j += 32) s += exp((double)(load<T>(p.x, base + j) - m));
    s = warp_sum(s);
    if (lane != 0) return;
    bool ignored = t < 0;
    float lse = m + (float)log(s);
    p.lse[row] = ignored ? 0.f : lse;
    p.loss[row] = ignored ? 0.f : t < p.vocab ? lse - load<T>(p.x, base + t) : __int_as_float(0x7fc00000);
}

template <typename T> __device__ void cross_entropy_bwd(CrossEntropyParams p)
{
    i64 row = blockIdx.x * (i64)(blockDim.x / 32) + threadIdx.x / 32;
    if (row >= p.rows) return;
    const int lane = threadIdx.x % 32;
    const i64 base = row * p.vocab;
    const int t = (int)p.target[row];
    const float g = t < 0 ? 0.f : p.dloss[row], lse = p.lse[row];
    for (int j = lane; j < p.vocab; j += 32)
        store<T>(p.dx, base + j, g == 0.f ? 0.f : g * (expf(load<T>(p.x, base + j) - lse) - (j == t ? 1.f : 0.f)));
}

TLS_INSTANTIATE(cross_entropy_fwd, CrossEntropyParams)
TLS_INSTANTIATE(cross_entropy_bwd, CrossEntropyParams)

// The batch loss as torch's CrossEntropyLoss(reduction='mean') takes it with ignored targets: the sum over rows
// that have a target divided by their count (0 when every row is ignored). The count is computed here, on the
// device, so no host round trip learns it; it is saved for the backward. One block of 1024 threads, double sums.
extern "C" __global__ void loss_mean_fwd(LossMeanParams p)
{
    __shared__ double sums[32], counts[32];
    double s = 0.0, c = 0.0;
    for (i64 i = threadIdx.x; i < p.rows; i += blockDim.x)
        if (p.target[i] >= 0.f) { s += p.loss[i]; c += 1.0; }
    s = warp_sum(s);
    c = warp_sum(c);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) { sums[warp] = s; counts[warp] = c; }
    __syncthreads();
    if (warp != 0) return;
    const int warps = blockDim.x / 32;
    s = warp_sum(lane < warps ? sums[lane] : 0.0);
    c = warp_sum(lane < warps ? counts[lane] : 0.0);
    if (lane != 0) return;
    p.count[0] = (float)c;
    p.mean[0] = c > 0.0 ? (float)(s / c) : 0.f;
}

extern "C" __global__ void loss_mean_bwd(LossMeanParams p)
{
    const float c = p.count[0], g = c > 0.f ? p.dmean[0] / c : 0.f;
    GRID_STRIDE(i, p.rows) p.dloss[i] = p.target[i] < 0.f ? 0.f : g;
}
