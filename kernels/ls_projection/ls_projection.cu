// Dynamic projection of the bidirectional LS attention (reference section 1.3): P = softmax over the
// sequence axis of the scores S = X·Wp + bp (padding excluded), then K̄ = P·K and V̄ = P·V per head.
// P is never stored: the forward keeps each column's max and sum, the backward recomputes P from them.
// A column with no token at all gives P = 0 (zero landmarks), not NaN.
// Reference: src/TransformerLS/Ops/LsProjection/LsProjection.cs.
#include "ls_projection/ls_projection.cuh"

#define TCHUNK 32
#define RTILE 32  // ranks the backward holds in shared memory at a time, so any r fits
TLS_EXPORT(ls_projection_tchunk, TCHUNK)
// Dynamic shared memory of the carve-ups below (the launcher reads these: one source). Compress: P [r][TCHUNK] and
// K, V [TCHUNK][d] floats: bytes = per_r·r + per_d·d. Backward: dP (double) and P [RTILE][TCHUNK], K, V, dK, dV
// [TCHUNK][d] (K, V padded to d + 1), dK̄, dV̄ [RTILE][d]: bytes = fixed + per_d·d.
TLS_EXPORT(ls_projection_compress_smem_per_r, 4 * TCHUNK)
TLS_EXPORT(ls_projection_compress_smem_per_d, 4 * 2 * TCHUNK)
TLS_EXPORT(ls_projection_bwd_smem_fixed, 4 * (3 * RTILE * TCHUNK + 2 * TCHUNK))
TLS_EXPORT(ls_projection_bwd_smem_per_d, 4 * (4 * TCHUNK + 2 * RTILE))

TLS_DEVICE bool proj_token(const LsProjectionParams& p, int b, int t) { return !p.mask || p.mask[(i64)b * p.n + t] != 0.f; }

// One thread per (b, column): max and sum of exp over the tokens; coalesced across columns.
template <typename T> __device__ void ls_projection_stats(LsProjectionParams p)
{
    int hr = p.H * p.r, c = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (c >= hr) return;
    float m = -TLS_INF;
    for (int t = 0; t < p.n; ++t)
        if (proj_token(p, b, t)) m = fmaxf(m, load<T>(p.s, ((i64)b * p.n + t) * hr + c));
    double z = 0.0; // n terms: summed in double, so the normalizer adds no error of its own
    if (m != -TLS_INF)
        for (int t = 0; t < p.n; ++t)
            if (proj_token(p, b, t)) z += exp((double)(load<T>(p.s, ((i64)b * p.n + t) * hr + c) - m));
    p.colmax[(i64)b * hr + c] = m;
    p.colsum[(i64)b * hr + c] = (float)z;
}

// P[k][t] for ranks [k0, k0 + nr) and the block's TCHUNK tokens of head h.
template <typename T> TLS_DEVICE void load_p(const LsProjectionParams& p, int b, int h, int t0, int nt, int k0, int nr, float* P)
{
    int hr = p.H * p.r;
    for (int idx = threadIdx.x; idx < nr * TCHUNK; idx += blockDim.x)
    {
        int kk = idx / TCHUNK, t = idx % TCHUNK, col = h * p.r + k0 + kk;
        float z = p.colsum[(i64)b * hr + col], pr = 0.f;
        // Double exp: expf's 2-ulp error, times (dP − Σ P·dP) in the backward, was the largest error term.
        if (t < nt && z > 0.f && proj_token(p, b, t0 + t))
            pr = (float)(exp((double)(load<T>(p.s, ((i64)b * p.n + t0 + t) * hr + col) - p.colmax[(i64)b * hr + col])) / z);
        P[idx] = pr;
    }
}

// The block's TCHUNK rows of [.., n, d] into shared rows of `stride` floats (zeros past the sequence's end).
template <typename T> TLS_DEVICE void load_rows(const void* src, i64 base, int t0, int nt, int d, int stride, float* dst)
{
    for (int idx = threadIdx.x; idx < TCHUNK * d; idx += blockDim.x)
        dst[idx / d * stride + idx % d] = idx / d < nt ? load<T>(src, base + (i64)t0 * d + idx) : 0.f;
}

// Block (chunk, h, b): partial K̄, V̄ over TCHUNK tokens, added to the fp32 accumulators.
template <typename T> __device__ void ls_projection_compress(LsProjectionParams p)
{
    extern __shared__ float sm[];
    int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * TCHUNK, nt = min(TCHUNK, p.n - t0), d = p.d;
    float* P = sm;
    float* Ks = P + p.r * TCHUNK;
    float* Vs = Ks + TCHUNK * d;
    i64 base = ((i64)b * p.H + h) * p.n * d;
    load_p<T>(p, b, h, t0, nt, 0, p.r, P);
    load_rows<T>(p.k, base, t0, nt, d, d, Ks);
    load_rows<T>(p.v, base, t0, nt, d, d, Vs);
    __syncthreads();
    for (int idx = threadIdx.x; idx < p.r * d; idx += blockDim.x)
    {
        int kk = idx / d, c = idx % d;
        float ak = 0.f, av = 0.f;
        for (int t = 0; t < nt; ++t) { float pr = P[kk * TCHUNK + t]; ak += pr * Ks[t * d + c]; av += pr * Vs[t * d + c]; }
        i64 off = (((i64)b * p.H + h) * p.r + kk) * d + c;
        atomicAdd(p.kbar_acc + off, ak);
        atomicAdd(p.vbar_acc + off, av);
    }
}

// Backward, two launches over the same blocks (chunk, h, b), each walking the ranks RTILE at a time:
// phase 0: dP[k][t] = dK̄_k·K_t + dV̄_k·V_t; coldot += Σ_t P·dP; dK_t (+)= Σ_k P[k][t]·dK̄_k, dV likewise.
// phase 1 (after every coldot is complete): dS = P ∘ (dP − coldot), the softmax backward over the sequence.
template <typename T> __device__ void ls_projection_bwd(LsProjectionParams p)
{
    extern __shared__ float sm[];
    int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * TCHUNK, nt = min(TCHUNK, p.n - t0), d = p.d, hr = p.H * p.r;
    const int ds = d + 1;       // K, V rows padded: the dP loop's warp reads one column down 32 tokens' rows
    double* dP = (double*)sm;   // kept in double through the cancelling dP − Σ P·dP
    float* P = (float*)(dP + RTILE * TCHUNK);
    float* Ks = P + RTILE * TCHUNK;
    float* Vs = Ks + TCHUNK * ds;
    float* dKb = Vs + TCHUNK * ds;
    float* dVb = dKb + RTILE * d;
    float* dKs = dVb + RTILE * d;  // phase 0: dK, dV of the chunk's tokens over all ranks
    float* dVs = dKs + TCHUNK * d;
    i64 base = ((i64)b * p.H + h) * p.n * d, lbase = ((i64)b * p.H + h) * p.r * d;
    load_rows<T>(p.k, base, t0, nt, d, ds, Ks);
    load_rows<T>(p.v, base, t0, nt, d, ds, Vs);
    for (int idx = threadIdx.x; idx < TCHUNK * d; idx += blockDim.x) { dKs[idx] = 0.f; dVs[idx] = 0.f; }
    for (int k0 = 0; k0 < p.r; k0 += RTILE)
    {
        const int nr = min(RTILE, p.r - k0);
        __syncthreads();
        load_p<T>(p, b, h, t0, nt, k0, nr, P);
        for (int idx = threadIdx.x; idx < nr * d; idx += blockDim.x)
        {
            dKb[idx] = load<T>(p.dkbar, lbase + (i64)k0 * d + idx);
            dVb[idx] = load<T>(p.dvbar, lbase + (i64)k0 * d + idx);
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < nr * TCHUNK; idx += blockDim.x)
        {
            int kk = idx / TCHUNK, t = idx % TCHUNK;
            // 2d-term dot product in double: dS = P·(dP − Σ P·dP) cancels, so dP's rounding error would dominate dS.
            double g = 0.0;
            for (int c = 0; c < d; ++c) g += (double)dKb[kk * d + c] * Ks[t * ds + c] + (double)dVb[kk * d + c] * Vs[t * ds + c];
            dP[idx] = g;
        }
        __syncthreads();
        if (p.phase == 0)
        {
            for (int kk = threadIdx.x / 32; kk < nr; kk += blockDim.x / 32)
            {
                double s = 0.0;
                for (int t = threadIdx.x % 32; t < TCHUNK; t += 32) s += P[kk * TCHUNK + t] * dP[kk * TCHUNK + t];
                s = warp_sum(s);
                if (threadIdx.x % 32 == 0) atomicAdd(p.coldot + (i64)b * hr + h * p.r + k0 + kk, s);
            }
            for (int idx = threadIdx.x; idx < nt * d; idx += blockDim.x)
            {
                int t = idx / d, c = idx % d;
                float gk = 0.f, gv = 0.f;
                for (int kk = 0; kk < nr; ++kk) { float pr = P[kk * TCHUNK + t]; gk += pr * dKb[kk * d + c]; gv += pr * dVb[kk * d + c]; }
                dKs[idx] += gk;
                dVs[idx] += gv;
            }
        }
        else
            for (int idx = threadIdx.x; idx < nt * nr; idx += blockDim.x)
            {
                int t = idx / nr, kk = idx % nr, col = h * p.r + k0 + kk;
                float g = (float)(P[kk * TCHUNK + t] * (dP[kk * TCHUNK + t] - p.coldot[(i64)b * hr + col]));
                store<T>(p.ds, ((i64)b * p.n + t0 + t) * hr + col, g);
            }
    }
    if (p.phase != 0) return;
    for (int idx = threadIdx.x; idx < nt * d; idx += blockDim.x)
    {
        i64 off = base + (i64)t0 * d + idx;
        float gk = dKs[idx], gv = dVs[idx];
        if (p.accumulate) { gk += load<T>(p.dk, off); gv += load<T>(p.dv, off); }
        store<T>(p.dk, off, gk);
        store<T>(p.dv, off, gv);
    }
}

TLS_INSTANTIATE(ls_projection_stats, LsProjectionParams)
TLS_INSTANTIATE(ls_projection_compress, LsProjectionParams)
TLS_INSTANTIATE(ls_projection_bwd, LsProjectionParams)
