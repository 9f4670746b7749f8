// Optimizer family: the squared norm of gradients (summed over tensors for global-norm clipping) and the fused
// Adam / AdamW step with the clipping factor read on the device, so a step never waits for the host.
// Reference: src/TransformerLS/Ops/Optimizer/Optimizer.cs.
#include "optimizer/optimizer.cuh"

// Per-block double sums, one float atomic per block.
template <typename T> __device__ void sum_of_squares(OptimizerParams p)
{
    __shared__ double part[32];
    double a = 0.0;
    GRID_STRIDE(i, p.n)
    {
        double g = load<T>(p.grad, i);
        a += g * g;
    }
    a = warp_sum(a);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = a;
    __syncthreads();
    if (threadIdx.x >= 32) return;
    a = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.0;
    a = warp_sum(a);
    if (threadIdx.x == 0) atomicAdd(p.sumsq, (float)a);
}

// torch.optim.Adam / AdamW (non-amsgrad, non-foreach) on g·clip, clip = min(1, max_norm / (‖g‖ + 1e-6)) as
// torch.nn.utils.clip_grad_norm_ computes it (max_norm = +∞: no clipping). A step whose Σ g² is not finite changes
// nothing (weights and moments stay those of the last good step) and records its number in bad, if none is yet:
// the host reads it when it logs, so a diverged run is caught on the device with no extra synchronization.
template <typename T> __device__ void adam_step(OptimizerParams p)
{
    if (p.sumsq && !(*p.sumsq <= 3.402823466e38f))
    {
        if (p.bad && blockIdx.x == 0 && threadIdx.x == 0 && *p.bad == 0.f) *p.bad = (float)p.step;
        return;
    }
    const float clip = p.sumsq ? fminf(1.f, p.max_norm / (sqrtf(*p.sumsq) + 1e-6f)) : 1.f;
    const float step = p.lr / p.bias1, root2 = sqrtf(p.bias2);
    GRID_STRIDE(i, p.n)
    {
        float w = p.param[i], g = clip * load<T>(p.grad, i);
        if (p.decoupled) w *= 1.f - p.lr * p.weight_decay;
        else g += p.weight_decay * w;
        float m = p.beta1 * p.m[i] + (1.f - p.beta1) * g;
        float v = p.beta2 * p.v[i] + (1.f - p.beta2) * g * g;
        p.m[i] = m;
        p.v[i] = v;
        w -= step * m / (sqrtf(v) / root2 + p.eps);
        p.param[i] = w;
        if (p.copy) store<bf16>(p.copy, i, w);
    }
}

TLS_INSTANTIATE(sum_of_squares, OptimizerParams)
TLS_INSTANTIATE(adam_step, OptimizerParams)

// ---- Multi-tensor Adam: Σ g² of every gradient in a fixed order, then the step of every tensor, two launches. ----

TLS_DEVICE float grad_at(const AdamTensorParams& t, i64 i) { return t.grad_bf16 ? load<bf16>(t.grad, i) : ((const float*)t.grad)[i]; }

// A block's sum in a fixed order: each warp's lanes by the butterfly, then the warps in order by thread 0 (the others
// get 0). s is the caller's __shared__ double[32].
TLS_DEVICE double block_sum_fixed(double a, double* s)
{
    a = warp_sum(a);
    if (threadIdx.x % 32 == 0) s[threadIdx.x / 32] = a;
    __syncthreads();
    double t = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < (int)blockDim.x / 32; ++w) t += s[w];
    return t;
}

// Stage 1, one block a chunk: partial[c] = Σ g² over the chunk, in fp64. No atomics: the same bits every run.
extern "C" __global__ void adam_multi_sum_of_squares(AdamMultiParams p)
{
    __shared__ double s[32];
    const AdamTensorParams t = p.tensors[p.chunk_tensor[blockIdx.x]];
    const i64 begin = (i64)(blockIdx.x - t.first_chunk) * p.chunk, end = begin + p.chunk < t.n ? begin + p.chunk : t.n;
    double a = 0.0;
    for (i64 i = begin + threadIdx.x; i < end; i += blockDim.x)
    {
        const double g = grad_at(t, i);
        a += g * g;
    }
    a = block_sum_fixed(a, s);
    if (threadIdx.x == 0) p.partial[blockIdx.x] = a;
}

// Stage 2, one block a chunk: every block adds the chunks' partials in the same order (so all agree on the clip to the
// bit), then steps its chunk exactly as adam_step does. A non-finite total changes nothing and is recorded once.
extern "C" __global__ void adam_multi_step(AdamMultiParams p)
{
    __shared__ double s[32];
    __shared__ float total;
    double a = 0.0;
    for (int c = threadIdx.x; c < p.chunks; c += blockDim.x) a += p.partial[c];
    a = block_sum_fixed(a, s);
    if (threadIdx.x == 0) total = (float)a;
    __syncthreads();
    const float sumsq = total;
    const float lr = p.hyper ? p.hyper[0] : p.lr, bias1 = p.hyper ? p.hyper[1] : p.bias1, bias2 = p.hyper ? p.hyper[2] : p.bias2;
    if (blockIdx.x == 0 && threadIdx.x == 0 && p.sumsq) *p.sumsq = sumsq;
    if (!(sumsq <= 3.402823466e38f))
    {
        if (p.bad && blockIdx.x == 0 && threadIdx.x == 0 && *p.bad == 0.f) *p.bad = p.hyper ? p.hyper[3] : (float)p.step;
        return;
    }
    const float clip = fminf(1.f, p.max_norm / (sqrtf(sumsq) + 1e-6f));
    const float step = lr / bias1, root2 = sqrtf(bias2);
    const AdamTensorParams t = p.tensors[p.chunk_tensor[blockIdx.x]];
    const i64 begin = (i64)(blockIdx.x - t.first_chunk) * p.chunk, end = begin + p.chunk < t.n ? begin + p.chunk : t.n;
    for (i64 i = begin + threadIdx.x; i < end; i += blockDim.x)
    {
        float w = t.param[i], g = clip * grad_at(t, i);
        if (p.decoupled) w *= 1.f - lr * p.weight_decay;
        else g += p.weight_decay * w;
        float m = p.beta1 * t.m[i] + (1.f - p.beta1) * g;
        float v = p.beta2 * t.v[i] + (1.f - p.beta2) * g * g;
        t.m[i] = m;
        t.v[i] = v;
        w -= step * m / (sqrtf(v) / root2 + p.eps);
        t.param[i] = w;
        if (t.copy) store<bf16>(t.copy, i, w);
    }
}
