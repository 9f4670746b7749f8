// Fused log-softmax cross-entropy over the last axis of logits [N, V]: loss_i = lse_i − x_i[t_i], the gradient
// dx_ij = dloss_i·(exp(x_ij − lse_i) − [j = t_i]). Targets are class indices stored as float32 (exact below
// 2^24); a negative target marks an ignored row (loss 0, gradient 0). A target >= V is never read past the row:
// its loss is NaN (the CPU backend throws instead; checking here would need a host round trip). A warp per row.
// Reference: src/TransformerLS/Ops/CrossEntropy/CrossEntropy.cs.
#include "prelude.cuh"

struct CrossEntropyParams
{
    const void* x;         // logits [N, V]
    const float* target;   // [N]
    float* loss;           // forward: [N]
    float* lse;            // forward output, backward input: [N]
    const float* dloss;    // backward: [N]
    void* dx;              // backward: [N, V]
    i64 rows;
    int vocab;
};

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
