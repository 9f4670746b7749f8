// Elementwise family: y = alpha*a + beta*b, dtype casts, GELU (erf form, as torch.nn.GELU) and ReLU with their
// gradients, dropout, row-broadcast bias add, and column sums (bias gradients). Reference: src/TransformerLS/Ops/Elementwise.
#include "elementwise/elementwise.cuh"

template <typename T> __device__ void axpby(ElementwiseParams p)
{
    GRID_STRIDE(i, p.n)
    {
        float v = p.alpha * load<T>(p.a, i);
        if (p.b) v += p.beta * load<T>(p.b, i);
        store<T>(p.y, i, v);
    }
}

TLS_DEVICE float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
TLS_DEVICE float gelu_grad(float x)
{
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

template <typename T> __device__ void gelu_fwd(ElementwiseParams p)
{
    GRID_STRIDE(i, p.n) store<T>(p.y, i, gelu(load<T>(p.a, i)));
}

// a = x, b = dy, y = dx
template <typename T> __device__ void gelu_bwd(ElementwiseParams p)
{
    GRID_STRIDE(i, p.n) store<T>(p.y, i, load<T>(p.b, i) * gelu_grad(load<T>(p.a, i)));
}

// y = GELU(x + bias[i % cols]); the sum is not rounded to T before the GELU (one rounding, of y).
template <typename T> __device__ void bias_gelu_fwd(BiasGeluParams p)
{
    GRID_STRIDE(i, p.n) store<T>(p.y, i, gelu(load<T>(p.x, i) + load<T>(p.bias, i % p.cols)));
}

// dx = dy·GELU'(x + bias[i % cols]); the bias gradient is Σ_rows dx (column_sum).
template <typename T> __device__ void bias_gelu_bwd(BiasGeluParams p)
{
    GRID_STRIDE(i, p.n) store<T>(p.y, i, load<T>(p.dy, i) * gelu_grad(load<T>(p.x, i) + load<T>(p.bias, i % p.cols)));
}

// a = x (forward: y = max(x, 0)); backward: b = dy, y = dx = dy·[x > 0].
template <typename T> __device__ void relu_fwd(ElementwiseParams p)
{
    GRID_STRIDE(i, p.n) store<T>(p.y, i, fmaxf(load<T>(p.a, i), 0.f));
}

template <typename T> __device__ void relu_bwd(ElementwiseParams p)
{
    GRID_STRIDE(i, p.n) store<T>(p.y, i, load<T>(p.a, i) > 0.f ? load<T>(p.b, i) : 0.f);
}

// Counter-based dropout: element i is kept when hash(seed, i) / 2^24 >= p, so the mask is a pure function of
// (seed, index) — recomputed in the backward, reproducible by seed, identical on the CPU (Elementwise.KeepMask).
// Forward and backward are the same map: y = x·keep/(1 − p).
TLS_DEVICE unsigned mix32(unsigned x)
{
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    return x ^ (x >> 16);
}

TLS_DEVICE bool keep(unsigned long long seed, i64 i, float p)
{
    unsigned h = mix32((unsigned)i ^ mix32((unsigned)((unsigned long long)i >> 32) ^ mix32((unsigned)seed ^ mix32((unsigned)(seed >> 32)))));
    return (float)(h >> 8) * (1.f / 16777216.f) >= p;
}

// In a captured CUDA graph the run's seed changes between replays, so it is read from device memory: run_seed, when
// set, points at it, and the mask's seed is run_seed·φ64 + seed, the same mix DropoutNode computes on the host otherwise.
template <typename T> __device__ void dropout(DropoutParams p)
{
    const float scale = 1.f / (1.f - p.p);
    unsigned long long seed = p.seed;
    if (p.run_seed) seed += *p.run_seed * 0x9E3779B97F4A7C15ull;
    GRID_STRIDE(i, p.n) store<T>(p.y, i, keep(seed, i, p.p) ? load<T>(p.x, i) * scale : 0.f);
}

// y[r, c] = a[r, c] + b[c]
template <typename T> __device__ void bias_add(ElementwiseParams p)
{
    GRID_STRIDE(i, p.n) store<T>(p.y, i, load<T>(p.a, i) + load<T>(p.b, i % p.cols));
}

// y[c] = beta·y[c] + Σ_r x[r, c] in two stages with a fixed order (no atomics: the same bits every run), as LayerNorm's
// dγ, dβ. Stage 1: block (32, 8) of 32 columns and row group g = blockIdx.y sums the rows g·8 + threadIdx.y + k·8·G
// into partial[g][c]. Stage 2 (column_sum_groups) adds the G groups in order. TY is y's type: T, or float for bf16
// bias gradients summed into fp32 parameter gradients.
template <typename T> __device__ void column_sum(ColumnSumParams p)
{
    __shared__ float part[8][33];
    const i64 c = blockIdx.x * 32 + threadIdx.x;
    float s = 0.f;
    if (c < p.cols)
        for (i64 r = (i64)blockIdx.y * 8 + threadIdx.y; r < p.rows; r += 8 * (i64)gridDim.y) s += load<T>(p.x, r * p.cols + c);
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || c >= p.cols) return;
    float t = 0.f;
    for (int k = 0; k < 8; ++k) t += part[k][threadIdx.x];
    p.partial[(i64)blockIdx.y * p.cols + c] = t;
}

// Stage 2, block (32, 8) of 32 columns: the groups added in a fixed order (ordered_group_sum).
template <typename TY> __device__ void column_sum_groups(ColumnSumParams p)
{
    __shared__ float s[8][33];
    const i64 c = blockIdx.x * 32 + threadIdx.x;
    float t = ordered_group_sum(s, p.partial, p.cols, p.groups, c);
    if (threadIdx.y != 0 || c >= p.cols) return;
    store<TY>(p.y, c, p.beta != 0.f ? p.beta * load<TY>(p.y, c) + t : t);
}

// y = a read as fp32 (fp32 accumulators -> a tensor's dtype): a is float whatever T is.
template <typename T> __device__ void convert_from_f32(ElementwiseParams p)
{
    GRID_STRIDE(i, p.n) store<T>(p.y, i, ((const float*)p.a)[i]);
}

// y (fp32) = a (bf16): exact.
extern "C" __global__ void cast_bf16(ElementwiseParams p)
{
    GRID_STRIDE(i, p.n) ((float*)p.y)[i] = to_float(((const bf16*)p.a)[i]);
}

// y (fp32) += a (bf16): gradient contributions in the activations' dtype added to fp32 parameter gradients.
extern "C" __global__ void add_to_bf16(ElementwiseParams p)
{
    GRID_STRIDE(i, p.n) ((float*)p.y)[i] += to_float(((const bf16*)p.a)[i]);
}

TLS_INSTANTIATE(axpby, ElementwiseParams)
TLS_INSTANTIATE(convert_from_f32, ElementwiseParams)
TLS_INSTANTIATE(gelu_fwd, ElementwiseParams)
TLS_INSTANTIATE(gelu_bwd, ElementwiseParams)
TLS_INSTANTIATE(bias_gelu_fwd, BiasGeluParams)
TLS_INSTANTIATE(bias_gelu_bwd, BiasGeluParams)
TLS_INSTANTIATE(relu_fwd, ElementwiseParams)
TLS_INSTANTIATE(relu_bwd, ElementwiseParams)
TLS_INSTANTIATE(dropout, DropoutParams)
TLS_INSTANTIATE(bias_add, ElementwiseParams)
TLS_INSTANTIATE(column_sum, ColumnSumParams)
TLS_INSTANTIATE(column_sum_groups, ColumnSumParams)
