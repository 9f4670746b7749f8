// Bidirectional Long-Short attention (LRA code, reference section 1.4-1.5): every query of segment s
// attends under ONE softmax to the r landmarks K̄/V̄ of its (batch, head) and to the window keys
// j in [s·w − e, (s+1)·w + e), e = max(w/2, 1), minus out-of-range and padded keys. Padded query rows
// are zero. Forward writes O and the log-sum-exp; backward recomputes probabilities from it.
// Reference: src/TransformerLS/Ops/LsAttention/LsAttention.cs.
//
// A block owns up to QB queries of one segment of one (batch, head). The key list (r landmarks, then the
// 2e + w window positions) streams through shared memory KT keys at a time; within a tile each lane of a
// warp owns one key, so a warp scores 32 keys at once and updates its query's online softmax.
// fp32 math on the CUDA cores: the float32 path. bf16 runs on the tensor cores in ls_attention_mma.cu.
#include "ls_attention/ls_attention.cuh"
#include "common/simt_tiles.cuh"

#define KT 32  // one key per lane: simt_tiles.cuh
#define QB 32
#define NWARP 4
TLS_EXPORT(ls_attention_f32_qb, QB)
TLS_EXPORT(ls_attention_f32_threads, NWARP * 32)
// Dynamic shared memory of the carve-ups below, bytes = fixed + per_d·d (the launcher reads these: one source).
// Forward: Ks, Vs [KT][d + 1], Qs, Acc [QB][d], M, L [QB], valid, pos [KT].
TLS_EXPORT(ls_attention_fwd_f32_smem_per_d, 4 * (2 * KT + 2 * QB))
TLS_EXPORT(ls_attention_fwd_f32_smem_fixed, 4 * (2 * KT + 2 * QB + 2 * KT))
// Backward: Ks, Vs, dKs, dVs [KT][d + 1], Qs, dOs, dQs [QB][d], three [QB] rows, two [KT] rows.
TLS_EXPORT(ls_attention_bwd_f32_smem_per_d, 4 * (4 * KT + 3 * QB))
TLS_EXPORT(ls_attention_bwd_f32_smem_fixed, 4 * (4 * KT + 3 * QB + 2 * KT))

// Loads keys [t0, t0 + KT) of the block's key list into Ks/Vs (row stride d + 1: conflict-free columns).
// Returns through valid[] which keys exist; for window keys, pos[] holds the sequence position (-1: landmark).
template <typename T>
TLS_DEVICE void load_tile(const LsAttentionParams& p, const Block& k, int t0, float* Ks, float* Vs, int* valid, int* pos)
{
    const int d = p.d, ds = d + 1;
    for (int idx = threadIdx.x; idx < KT * d; idx += blockDim.x)
    {
        int kk = idx / d, c = idx % d, key = t0 + kk;
        float kv = 0.f, vv = 0.f;
        int ok = 0, at = -1;
        if (key < p.r)
        {
            i64 off = ((i64)k.bh * p.r + key) * d + c;
            kv = load<T>(p.kbar, off); vv = load<T>(p.vbar, off); ok = 1;
        }
        else if (key < k.total)
        {
            int j = k.wstart + key - p.r;
            at = j;
            if (j >= 0 && j < p.n && is_token(p, k.b, j))
            {
                i64 off = k.base + (i64)j * d + c;
                kv = load<T>(p.k, off); vv = load<T>(p.v, off); ok = 1;
            }
        }
        Ks[kk * ds + c] = kv;
        Vs[kk * ds + c] = vv;
        if (c == 0) { valid[kk] = ok; pos[kk] = at; }
    }
}

TLS_DEVICE float row_dot(const float* a, const float* b, int d)
{
    float s = 0.f;
    for (int c = 0; c < d; ++c) s += a[c] * b[c];
    return s;
}

template <typename T> __device__ void ls_attention_fwd(LsAttentionParams p)
{
    extern __shared__ float sm[];
    const Block k = block_of(p, QB);
    if (k.nq <= 0) return;
    const int d = p.d, ds = d + 1, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float* Ks = sm;
    float* Vs = Ks + KT * ds;
    float* Qs = Vs + KT * ds;   // scaled queries
    float* Acc = Qs + QB * d;
    float* M = Acc + QB * d;
    float* L = M + QB;
    int* valid = (int*)(L + QB);
    int* pos = valid + KT;

    for (int idx = threadIdx.x; idx < k.nq * d; idx += blockDim.x)
    {
        Qs[idx] = p.scale * load<T>(p.q, k.base + (i64)k.q0 * d + idx);
        Acc[idx] = 0.f;
    }
    for (int i = threadIdx.x; i < QB; i += blockDim.x) { M[i] = -TLS_INF; L[i] = 0.f; }

    for (int t0 = 0; t0 < k.total; t0 += KT)
    {
        __syncthreads();
        load_tile<T>(p, k, t0, Ks, Vs, valid, pos);
        __syncthreads();
        for (int qi = warp; qi < k.nq; qi += NWARP)
        {
            bool ok = t0 + lane < k.total && valid[lane];
            float s = ok ? row_dot(Qs + qi * d, Ks + lane * ds, d) : -TLS_INF;
            warp_online_softmax(s, M[qi], L[qi], Acc + qi * d, Vs, d, ds);
        }
    }
    __syncthreads();
    store_softmax_rows<T>(p.o, k.base + (i64)k.q0 * d, p.lse + (i64)k.bh * p.n + k.q0, k.nq, d, Acc, M, L,
                          [&](int qi) { return is_token(p, k.b, k.q0 + qi); });
}

// dS = P ∘ (dP − D), D_i = dO_i·O_i; dQ = σ·dS·K, dK += dSᵀ·(σQ), dV += Pᵀ·dO. dQ is owned by one warp per
// query; key gradients collect in shared memory per tile, then go to fp32 global accumulators atomically
// (a key is shared by up to three segments, a landmark by every query of its head).
template <typename T> __device__ void ls_attention_bwd(LsAttentionParams p)
{
    extern __shared__ float sm[];
    const Block k = block_of(p, QB);
    if (k.nq <= 0) return;
    const int d = p.d, ds = d + 1, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float* Ks = sm;
    float* Vs = Ks + KT * ds;
    float* dKs = Vs + KT * ds;
    float* dVs = dKs + KT * ds;
    float* Qs = dVs + KT * ds;  // scaled queries
    float* dOs = Qs + QB * d;
    float* dQs = dOs + QB * d;
    float* Lse = dQs + QB * d;
    float* Dd = Lse + QB;
    int* qok = (int*)(Dd + QB);
    int* valid = qok + QB;
    int* pos = valid + KT;

    for (int idx = threadIdx.x; idx < k.nq * d; idx += blockDim.x)
    {
        i64 off = k.base + (i64)k.q0 * d + idx;
        Qs[idx] = p.scale * load<T>(p.q, off);
        dOs[idx] = load<T>(p.dout, off);
        dQs[idx] = 0.f;
    }
    __syncthreads();
    for (int qi = warp; qi < k.nq; qi += NWARP)
    {
        int i = k.q0 + qi;
        float s = 0.f;
        for (int c = lane; c < d; c += 32) s += dOs[qi * d + c] * load<T>(p.o, k.base + (i64)i * d + c);
        s = warp_sum(s);
        if (lane == 0)
        {
            Dd[qi] = s;
            Lse[qi] = p.lse[(i64)k.bh * p.n + i];
            qok[qi] = is_token(p, k.b, i);
        }
    }

    for (int t0 = 0; t0 < k.total; t0 += KT)
    {
        __syncthreads();
        load_tile<T>(p, k, t0, Ks, Vs, valid, pos);
        for (int idx = threadIdx.x; idx < KT * ds; idx += blockDim.x) { dKs[idx] = 0.f; dVs[idx] = 0.f; }
        __syncthreads();
        for (int qi = warp; qi < k.nq; qi += NWARP)
        {
            if (!qok[qi]) continue;
            bool ok = t0 + lane < k.total && valid[lane];
            float pr = 0.f, dsv = 0.f;
            if (ok)
            {
                pr = expf(row_dot(Qs + qi * d, Ks + lane * ds, d) - Lse[qi]);
                dsv = pr * (row_dot(dOs + qi * d, Vs + lane * ds, d) - Dd[qi]);
            }
            // Any head dim: lane owns columns lane, lane + 32, …; every lane runs every step (the shuffles need
            // the whole warp) and lanes past d read and write nothing.
            for (int c0 = 0; c0 < d; c0 += 32)
            {
                const int c = c0 + lane;
                const bool in = c < d;
                float g = 0.f;
                for (int kk = 0; kk < KT; ++kk)
                {
                    float w = __shfl_sync(0xffffffffu, dsv, kk);
                    if (in) g += w * Ks[kk * ds + c];
                }
                if (in) dQs[qi * d + c] += g;
            }
            if (ok)
                for (int c = 0; c < d; ++c)
                {
                    atomicAdd(&dKs[lane * ds + c], dsv * Qs[qi * d + c]);
                    atomicAdd(&dVs[lane * ds + c], pr * dOs[qi * d + c]);
                }
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < KT * d; idx += blockDim.x)
        {
            int kk = idx / d, c = idx % d, key = t0 + kk;
            if (key >= k.total || !valid[kk]) continue;
            float gk = dKs[kk * ds + c], gv = dVs[kk * ds + c];
            if (key < p.r)
            {
                i64 off = ((i64)k.bh * p.r + key) * d + c;
                atomicAdd(p.dkbar + off, gk); atomicAdd(p.dvbar + off, gv);
            }
            else
            {
                i64 off = k.base + (i64)pos[kk] * d + c;
                atomicAdd(p.dk + off, gk); atomicAdd(p.dv + off, gv);
            }
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < k.nq * d; idx += blockDim.x)
        store<T>(p.dq, k.base + (i64)k.q0 * d + idx, qok[idx / d] ? p.scale * dQs[idx] : 0.f);
}

// float32 only: bf16 takes the tensor-core kernels.
extern "C" __global__ void ls_attention_fwd_f32(LsAttentionParams p) { ls_attention_fwd<float>(p); }
extern "C" __global__ void ls_attention_bwd_f32(LsAttentionParams p) { ls_attention_bwd<float>(p); }
// bf16 at head dims the tensor-core kernels do not take (d % 16 != 0 or d > 128): the same CUDA-core math.
extern "C" __global__ void ls_attention_fwd_bf16(LsAttentionParams p) { ls_attention_fwd<bf16>(p); }
extern "C" __global__ void ls_attention_bwd_bf16(LsAttentionParams p) { ls_attention_bwd<bf16>(p); }
