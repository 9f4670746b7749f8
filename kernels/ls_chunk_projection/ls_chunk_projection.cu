// Causal dynamic projection (enwik8 code, reference section 3.3): per chunk of l positions, head h and rank k,
// P = softmax over the chunk's tokens of scores[:, h·r + k], y[c·r + k] = Σ_t P_t·x_t. The backward recomputes P.
// Reference: src/TransformerLS/Ops/LsChunkProjection/LsChunkProjection.cs.
// One block per (chunk, head, batch): chunks are short (l = 16 in the released configs), so P for all r ranks
// of a chunk sits in shared memory (a warp per rank, lanes along the chunk); the backward keeps dP and Σ P·dP in double (the cancellation in
// dP − Σ P·dP is where fp32 lost accuracy in the sequence-wide projection).
#include "ls_chunk_projection/ls_chunk_projection.cuh"

// Dynamic shared memory of the carve-ups below, bytes = per_lr·l·r + per_r·r (the launcher reads these: one
// source). Forward: P [l·r] floats. Backward: dP [l·r] and the dots [r] in double, then P [l·r] floats.
TLS_EXPORT(ls_chunk_projection_fwd_smem_per_lr, 4)
TLS_EXPORT(ls_chunk_projection_fwd_smem_per_r, 0)
TLS_EXPORT(ls_chunk_projection_bwd_smem_per_lr, 8 + 4)
TLS_EXPORT(ls_chunk_projection_bwd_smem_per_r, 8)

// P[t·r + k] for the block's chunk; n = positions in the chunk. Warp w takes the ranks k = w, w + W, …, its lanes the
// positions t = lane, lane + 32, …; the max and the normalizer are warp reductions (a chunk's scores were one thread's
// serial loop, the projection's latency).
template <typename T>
TLS_DEVICE void chunk_probabilities(const LsChunkProjectionParams& p, int b, int h, int t0, int n, float* P)
{
    const int hr = p.H * p.r, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    auto is_token = [&](int t) { return !p.mask || p.mask[(i64)b * p.T + t0 + t] != 0.f; };
    for (int k = threadIdx.x / 32; k < p.r; k += warps)
    {
        auto score = [&](int t) { return load<T>(p.s, ((i64)b * p.T + t0 + t) * hr + h * p.r + k); };
        float m = -TLS_INF;
        for (int t = lane; t < n; t += 32)
            if (is_token(t)) m = fmaxf(m, score(t));
        m = warp_max(m);
        // exp and the normalizer in double, P rounded once: expf's 2-ulp error made dscores (∝ P) up to 2.5 ulps
        // off, beyond twice a CPU float32 computation's error. A chunk has only l·r of them.
        double sum = 0.0;
        for (int t = lane; t < n; t += 32)
            if (is_token(t) && m != -TLS_INF) sum += exp((double)score(t) - m);
        sum = warp_sum(sum);
        for (int t = lane; t < n; t += 32)
            P[t * p.r + k] = is_token(t) && sum > 0.0 ? (float)(exp((double)score(t) - m) / sum) : 0.f;
    }
    __syncthreads();
}

template <typename T> __device__ void ls_chunk_projection_fwd(LsChunkProjectionParams p)
{
    extern __shared__ float sm[];
    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, t0 = c * p.l, n = min(p.l, p.T - t0);
    chunk_probabilities<T>(p, b, h, t0, n, sm);
    const i64 xb = (((i64)b * p.H + h) * p.T + t0) * p.d, yb = (((i64)b * p.H + h) * p.chunks + c) * p.r * p.d;
    for (int idx = threadIdx.x; idx < p.r * p.d; idx += blockDim.x)
    {
        int k = idx / p.d, e = idx % p.d;
        float a = 0.f;
        for (int t = 0; t < n; ++t) a += sm[t * p.r + k] * load<T>(p.x, xb + (i64)t * p.d + e);
        store<T>(p.y, yb + idx, a);
    }
}

template <typename T> __device__ void ls_chunk_projection_bwd(LsChunkProjectionParams p)
{
    extern __shared__ double smd[];
    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, t0 = c * p.l, n = min(p.l, p.T - t0), hr = p.H * p.r;
    double* dP = smd;                      // [n·r]
    double* dot = dP + p.l * p.r;          // [r]
    float* P = (float*)(dot + p.r);        // [n·r]
    chunk_probabilities<T>(p, b, h, t0, n, P);
    const i64 xb = (((i64)b * p.H + h) * p.T + t0) * p.d, yb = (((i64)b * p.H + h) * p.chunks + c) * p.r * p.d;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    // dP[t·r + k] = dy_k·x_t: a warp a dot, its lanes along d.
    for (int idx = warp; idx < n * p.r; idx += warps)
    {
        int t = idx / p.r, k = idx % p.r;
        double a = 0.0;
        for (int e = lane; e < p.d; e += 32) a += (double)load<T>(p.dy, yb + (i64)k * p.d + e) * load<T>(p.x, xb + (i64)t * p.d + e);
        a = warp_sum(a);
        if (lane == 0) dP[idx] = a;
    }
    for (int idx = threadIdx.x; idx < n * p.d; idx += blockDim.x)
    {
        int t = idx / p.d, e = idx % p.d;
        float a = 0.f;
        for (int k = 0; k < p.r; ++k) a += P[t * p.r + k] * load<T>(p.dy, yb + (i64)k * p.d + e);
        i64 off = xb + idx;
        store<T>(p.dx, off, p.accumulate ? load<T>(p.dx, off) + a : a);
    }
    __syncthreads();
    for (int k = warp; k < p.r; k += warps)
    {
        double a = 0.0;
        for (int t = lane; t < n; t += 32) a += (double)P[t * p.r + k] * dP[t * p.r + k];
        a = warp_sum(a);
        if (lane == 0) dot[k] = a;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < n * p.r; idx += blockDim.x)
    {
        int t = idx / p.r, k = idx % p.r;
        float g = (float)((double)P[idx] * (dP[idx] - dot[k]));
        i64 off = ((i64)b * p.T + t0 + t) * hr + h * p.r + k;
        store<T>(p.ds, off, p.accumulate ? load<T>(p.ds, off) + g : g);
    }
}

TLS_INSTANTIATE(ls_chunk_projection_fwd, LsChunkProjectionParams)
TLS_INSTANTIATE(ls_chunk_projection_bwd, LsChunkProjectionParams)
