// Elementwise family: y = alpha*a + beta*b, dtype casts, GELU (erf form, as torch.nn.GELU) and ReLU with their
// gradients, dropout, row-broadcast bias add, and column sums (bias gradients). Reference: src/TransformerLS/Ops/Elementwise.
#include "elementwise/elementwise.cuh"

// The flat kernels move 8 elements a thread (GRID_STRIDE8: 16-byte accesses where every pointer is aligned, see
// prelude.cuh); `vec` is that test, made once per thread. The value of each element is computed exactly as one element a
// thread would: the same expression, the same single rounding of y.
#define SPAN_M(i, n) const int m = (int)((n) - (i) < 8 ? (n) - (i) : 8)

template <typename T> __device__ void axpby(ElementwiseParams p)
{
    const bool vec = aligned16(p.a) && aligned16(p.b) && aligned16(p.y);
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float a[8], b[8];
        load_span8<T>(p.a, i, m, vec, a);
        if (p.b) load_span8<T>(p.b, i, m, vec, b);
#pragma unroll
        for (int k = 0; k < 8; ++k)
        {
            float v = p.alpha * a[k];
            if (p.b) v += p.beta * b[k];
            a[k] = v;
        }
        store_span8<T>(p.y, i, m, vec, a);
    }
}

template <typename T> __device__ void gelu_fwd(ElementwiseParams p)
{
    const bool vec = aligned16(p.a) && aligned16(p.y);
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float x[8];
        load_span8<T>(p.a, i, m, vec, x);
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] = gelu(x[k]);
        store_span8<T>(p.y, i, m, vec, x);
    }
}

// a = x, b = dy, y = dx
template <typename T> __device__ void gelu_bwd(ElementwiseParams p)
{
    const bool vec = aligned16(p.a) && aligned16(p.b) && aligned16(p.y);
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float x[8], dy[8];
        load_span8<T>(p.a, i, m, vec, x);
        load_span8<T>(p.b, i, m, vec, dy);
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] = dy[k] * gelu_grad(x[k]);
        store_span8<T>(p.y, i, m, vec, x);
    }
}

// The bias's 8 values for elements i..i+7 of rows of `cols`: one vector load where the row holds whole groups of 8
// (vec includes cols % 8 == 0, so a group never crosses a row), else element by element.
template <typename T> TLS_DEVICE void load_bias8(const void* bias, i64 i, i64 cols, int m, bool vec, float v[8])
{
    if (vec && m == 8) { load8<T>(bias, i % cols, v); return; }
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = k < m ? load<T>(bias, (i + k) % cols) : 0.f;
}

// y = GELU(x + bias[i % cols]); the sum is not rounded to T before the GELU (one rounding, of y).
template <typename T> __device__ void bias_gelu_fwd(BiasGeluParams p)
{
    const bool vec = aligned16(p.x) && aligned16(p.bias) && aligned16(p.y) && p.cols % 8 == 0;
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float x[8], b[8];
        load_span8<T>(p.x, i, m, vec, x);
        load_bias8<T>(p.bias, i, p.cols, m, vec, b);
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] = gelu(x[k] + b[k]);
        store_span8<T>(p.y, i, m, vec, x);
    }
}

// dx = dy·GELU'(x + bias[i % cols]); the bias gradient is Σ_rows dx (column_sum).
template <typename T> __device__ void bias_gelu_bwd(BiasGeluParams p)
{
    const bool vec = aligned16(p.x) && aligned16(p.bias) && aligned16(p.dy) && aligned16(p.y) && p.cols % 8 == 0;
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float x[8], b[8], dy[8];
        load_span8<T>(p.x, i, m, vec, x);
        load_bias8<T>(p.bias, i, p.cols, m, vec, b);
        load_span8<T>(p.dy, i, m, vec, dy);
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] = dy[k] * gelu_grad(x[k] + b[k]);
        store_span8<T>(p.y, i, m, vec, x);
    }
}

// a = x (forward: y = max(x, 0)); backward: b = dy, y = dx = dy·[x > 0].
template <typename T> __device__ void relu_fwd(ElementwiseParams p)
{
    const bool vec = aligned16(p.a) && aligned16(p.y);
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float x[8];
        load_span8<T>(p.a, i, m, vec, x);
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] = fmaxf(x[k], 0.f);
        store_span8<T>(p.y, i, m, vec, x);
    }
}

template <typename T> __device__ void relu_bwd(ElementwiseParams p)
{
    const bool vec = aligned16(p.a) && aligned16(p.b) && aligned16(p.y);
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float x[8], dy[8];
        load_span8<T>(p.a, i, m, vec, x);
        load_span8<T>(p.b, i, m, vec, dy);
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] = x[k] > 0.f ? dy[k] : 0.f;
        store_span8<T>(p.y, i, m, vec, x);
    }
}

// Counter-based dropout: element i is kept when hash(seed, i) / 2^24 >= p, so the mask is a pure function of
// (seed, index) — recomputed in the backward, reproducible by seed, identical on the CPU (Elementwise.KeepMask).
// Forward and backward are the same map: y = x·keep/(1 − p). seed_hash = mix32((u32)seed ^ mix32(seed >> 32)) is the
// part of the hash that does not depend on i, computed once a thread.
TLS_DEVICE unsigned mix32(unsigned x)
{
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    return x ^ (x >> 16);
}

TLS_DEVICE unsigned seed_hash(unsigned long long seed) { return mix32((unsigned)seed ^ mix32((unsigned)(seed >> 32))); }

TLS_DEVICE bool keep(unsigned seed_h, i64 i, float p)
{
    unsigned h = mix32((unsigned)i ^ mix32((unsigned)((unsigned long long)i >> 32) ^ seed_h));
    return (float)(h >> 8) * (1.f / 16777216.f) >= p;
}

// In a captured CUDA graph the run's seed changes between replays, so it is read from device memory: run_seed, when
// set, points at it, and the mask's seed is run_seed·φ64 + seed, the same mix DropoutNode computes on the host otherwise.
template <typename T> __device__ void dropout(DropoutParams p)
{
    const float scale = 1.f / (1.f - p.p);
    unsigned long long seed = p.seed;
    if (p.run_seed) seed += *p.run_seed * 0x9E3779B97F4A7C15ull;
    const unsigned sh = seed_hash(seed);
    const bool vec = aligned16(p.x) && aligned16(p.y);
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float x[8];
        load_span8<T>(p.x, i, m, vec, x);
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] = keep(sh, i + k, p.p) ? x[k] * scale : 0.f;
        store_span8<T>(p.y, i, m, vec, x);
    }
}

// y[r, c] = a[r, c] + b[c]
template <typename T> __device__ void bias_add(ElementwiseParams p)
{
    const bool vec = aligned16(p.a) && aligned16(p.b) && aligned16(p.y) && p.cols % 8 == 0;
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float a[8], b[8];
        load_span8<T>(p.a, i, m, vec, a);
        load_bias8<T>(p.b, i, p.cols, m, vec, b);
#pragma unroll
        for (int k = 0; k < 8; ++k) a[k] += b[k];
        store_span8<T>(p.y, i, m, vec, a);
    }
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

// column_sum with 8 consecutive columns a thread (16-byte loads; the launcher picks it when cols % 8 == 0 and x is
// 16-byte aligned): block (32, 8) owns 256 columns. Each column adds the same rows in the same order as column_sum
// (four rows' loads in flight at a time), so the bits are the same.
template <typename T> __device__ void column_sum8(ColumnSumParams p)
{
    __shared__ float part[8][257];
    const i64 c = blockIdx.x * 256 + threadIdx.x * 8, step = 8 * (i64)gridDim.y;
    float s[8] = {};
    if (c < p.cols)
    {
        i64 r = (i64)blockIdx.y * 8 + threadIdx.y;
        for (; r + 3 * step < p.rows; r += 4 * step)
        {
            float v[4][8];
            for (int u = 0; u < 4; ++u) load8<T>(p.x, (r + u * step) * p.cols + c, v[u]);
            for (int u = 0; u < 4; ++u)
                for (int k = 0; k < 8; ++k) s[k] += v[u][k];
        }
        for (; r < p.rows; r += step)
        {
            float v[8];
            load8<T>(p.x, r * p.cols + c, v);
            for (int k = 0; k < 8; ++k) s[k] += v[k];
        }
    }
    for (int k = 0; k < 8; ++k) part[threadIdx.y][threadIdx.x * 8 + k] = s[k];
    __syncthreads();
    if (threadIdx.y != 0 || c >= p.cols) return;
    for (int k = 0; k < 8; ++k)
    {
        float t = 0.f;
        for (int y = 0; y < 8; ++y) t += part[y][threadIdx.x * 8 + k];
        p.partial[(i64)blockIdx.y * p.cols + c + k] = t;
    }
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
    const bool vec = aligned16(p.a) && aligned16(p.y);
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float v[8];
        load_span8<float>(p.a, i, m, vec, v);
        store_span8<T>(p.y, i, m, vec, v);
    }
}

// y (fp32) = a (bf16): exact.
extern "C" __global__ void cast_bf16(ElementwiseParams p)
{
    const bool vec = aligned16(p.a) && aligned16(p.y);
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float v[8];
        load_span8<bf16>(p.a, i, m, vec, v);
        store_span8<float>(p.y, i, m, vec, v);
    }
}

// y (fp32) += a (bf16): gradient contributions in the activations' dtype added to fp32 parameter gradients.
extern "C" __global__ void add_to_bf16(ElementwiseParams p)
{
    const bool vec = aligned16(p.a) && aligned16(p.y);
    GRID_STRIDE8(i, p.n)
    {
        SPAN_M(i, p.n);
        float a[8], y[8];
        load_span8<bf16>(p.a, i, m, vec, a);
        load_span8<float>(p.y, i, m, vec, y);
#pragma unroll
        for (int k = 0; k < 8; ++k) y[k] += a[k];
        store_span8<float>(p.y, i, m, vec, y);
    }
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
TLS_INSTANTIATE(column_sum8, ColumnSumParams)
TLS_INSTANTIATE(column_sum_groups, ColumnSumParams)
