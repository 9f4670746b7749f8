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
