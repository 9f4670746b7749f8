// Sampling a token from each row of logits [N, V] on the device, with the reference's rule (Ops/Sampling/
// Sampling.Reference.cs, DrawRow): temperature 0 is the first maximum; otherwise p_k = exp((x_k − max)/T) over the
// row sorted by (x descending, index ascending), cut to the top k (0: no cut) and to the shortest prefix whose mass
// reaches top_p·Σp (1: no cut), and the token is the first sorted k whose running sum reaches u·(kept mass).
// One block of 256 threads a row; the row's V <= 1024 keys are bitonic-sorted in shared memory as 64-bit keys
// (order-flipped float bits, index), the running sums are an inclusive scan in a fixed order (so the same inputs
// draw the same token, run after run), and "the first k with" is an integer atomicMin (order-independent).
#include "sampling/sampling.cuh"

#define SAMPLE_THREADS 256
TLS_EXPORT(sample_rows_threads, SAMPLE_THREADS)

// Ascending order of the key = descending x, then ascending index (−0 is taken as +0, as the reference compares).
TLS_DEVICE unsigned long long sort_key(float x, int idx)
{
    unsigned u = __float_as_uint(x + 0.f);
    unsigned o = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // increasing with x
    return ((unsigned long long)~o << 32) | (unsigned)idx;
}

template <typename T> __device__ void sample_rows(SampleRowsParams p)
{
    __shared__ unsigned long long key[TLS_SAMPLE_MAX_VOCAB];
    __shared__ float cum[TLS_SAMPLE_MAX_VOCAB];
    __shared__ int first;
    const i64 row = blockIdx.x;
    const float u = p.uniforms[row];
    if (u < 0.f)
    {
        if (threadIdx.x == 0) p.tokens[row] = -1.f;
        return;
    }
    const int V = p.vocab;
    int np = 1;
    while (np < V) np <<= 1;
    const i64 base = row * V;
    for (int i = threadIdx.x; i < np; i += blockDim.x) key[i] = i < V ? sort_key(load<T>(p.logits, base + i), i) : ~0ull;
    __syncthreads();
    for (int k = 2; k <= np; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1)
        {
            for (int i = threadIdx.x; i < np; i += blockDim.x)
            {
                const int l = i ^ j;
                if (l <= i) continue;
                const unsigned long long a = key[i], b = key[l];
                if (((i & k) == 0) == (a > b)) { key[i] = b; key[l] = a; }
            }
            __syncthreads();
        }
    const int best = (int)(key[0] & 0xffffffffu);
    if (p.temperature == 0.f)
    {
        if (threadIdx.x == 0) p.tokens[row] = (float)best;
        return;
    }
    const float xmax = load<T>(p.logits, base + best), inv_t = 1.f / p.temperature;
    for (int i = threadIdx.x; i < np; i += blockDim.x)
        cum[i] = i < V ? expf((load<T>(p.logits, base + (int)(key[i] & 0xffffffffu)) - xmax) * inv_t) : 0.f;
    __syncthreads();
    // Inclusive scan (Hillis–Steele): each thread owns i = threadIdx.x + m·blockDim.x, at most 4 of them.
    for (int off = 1; off < np; off <<= 1)
    {
        float v[TLS_SAMPLE_MAX_VOCAB / SAMPLE_THREADS];
        for (int m = 0, i = threadIdx.x; i < np; ++m, i += blockDim.x) v[m] = cum[i] + (i >= off ? cum[i - off] : 0.f);
        __syncthreads();
        for (int m = 0, i = threadIdx.x; i < np; ++m, i += blockDim.x) cum[i] = v[m];
        __syncthreads();
    }
    int keep = p.top_k > 0 && p.top_k < V ? p.top_k : V;
    if (p.top_p < 1.f)
    {
        if (threadIdx.x == 0) first = keep;
        __syncthreads();
        const float mass = p.top_p * cum[V - 1];
        for (int i = threadIdx.x; i < keep; i += blockDim.x)
            if (cum[i] >= mass) atomicMin(&first, i + 1);
        __syncthreads();
        keep = first;
        __syncthreads();
    }
    const float target = u * cum[keep - 1];
    if (threadIdx.x == 0) first = keep - 1;
    __syncthreads();
    for (int i = threadIdx.x; i < keep; i += blockDim.x)
        if (cum[i] >= target) atomicMin(&first, i);
    __syncthreads();
    if (threadIdx.x == 0) p.tokens[row] = (float)(int)(key[first] & 0xffffffffu);
}

TLS_INSTANTIATE(sample_rows, SampleRowsParams)
