// Bidirectional Long-Short attention (LRA code, reference section 1.4-1.5): every query of segment s
// attends under ONE softmax to the r landmarks K̄/V̄ of its (batch, head) and to the window keys
// j in [s·w − e, (s+1)·w + e), e = max(w/2, 1), minus out-of-range and padded keys. Padded query rows
// are zero. Forward writes O and the log-sum-exp; backward recomputes probabilities from it.
// Reference: src/TransformerLS/Ops/LsAttention/LsAttention.cs.
//
// Forward and dQ pass: a block owns up to QB queries of one segment of one (batch, head). The key list (r landmarks,
// then the 2e + w window positions) streams through shared memory KT keys at a time; within a tile each lane of a
// warp owns one key, so a warp scores 32 keys at once and updates its query's online softmax. The key passes of the
// backward are below. fp32 math on the CUDA cores: the float32 path, and bf16 at head dims off the tensor cores
// (ls_attention_mma.cu, ls_attention_bwd_mma.cu).
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
// Backward, dQ pass: D, lse's max and sum [QB] doubles, Ks, Vs [KT][d + 1], Qs, dOs, dQs [QB][d], one [QB] row, two [KT]
// rows. Key passes (KvTiles): D, lse [QB] doubles, Ks, Vs, dKs, dVs [KT][d + 1], Qs, dOs [QB][d], Ps, dSs [QB][KT + 1],
// one [KT] row.
TLS_EXPORT(ls_attention_bwd_dq_f32_smem_per_d, 4 * (2 * KT + 3 * QB))
TLS_EXPORT(ls_attention_bwd_dq_f32_smem_fixed, 4 * (2 * KT + 7 * QB + 2 * KT))
TLS_EXPORT(ls_attention_bwd_kv_f32_smem_per_d, 4 * (4 * KT + 2 * QB))
TLS_EXPORT(ls_attention_bwd_kv_f32_smem_fixed, 4 * (4 * KT + 2 * QB * (KT + 1) + 4 * QB + KT))
TLS_EXPORT(ls_attention_f32_kt, KT)

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

// The backward's logits and dP in double, as D_i: dP − D must cancel to ~0 where one key holds the weight, not to fp32
// noise (as in ls_causal_attention.cu); with plain fp32 the key gradients missed the 2x rule about one run in three.
TLS_DEVICE double row_dot_d(const float* a, const float* b, int d)
{
    double s = 0.0;
    for (int c = 0; c < d; ++c) s += (double)a[c] * b[c];
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
        Qs[idx] = p.scale * load<T>(p.q, q_row(p, k, k.q0 + idx / d) + idx % d);
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
    store_softmax_rows<T>(p.o, q_row(p, k, k.q0), p.lse + (i64)k.bh * p.n + k.q0, k.nq, d, Acc, M, L,
                          [&](int qi) { return is_token(p, k.b, k.q0 + qi); }, p.qld);
}

// dS = P ∘ (dP − D), D_i = dO_i·O_i; dQ = σ·dS·K, dK = σ·dSᵀ·Q, dV = Pᵀ·dO. Deterministic: every gradient has one
// writer (no float atomics), the tensor-core backward's split (ls_attention_bwd_mma.cu) on the CUDA cores:
//   ls_attention_bwd_dq_*: block = the forward's QB queries; warp per query, lane per key of a 32-key tile, dQ in
//                          shared memory. Each pass computes D_i itself, in double (see row_dot_d).
//   ls_attention_bwd_kv_*: block = KT window positions j0.. of one (b, h): walks the query tiles of every segment whose
//                          window [s·w − e, (s+1)·w + e) holds one of them; writes dK, dV once (zeros for a position
//                          no window holds, or a padded key).
//   ls_attention_bwd_lm_*: block = KT landmarks x one query group: the same sums into fp32 partials [G, B·H, r, d];
//                          ls_attention_bwd_lm_sum_* adds the groups in order.
// Key passes, per query tile: warp per query and lane per key put P and dS into shared [QB][KT + 1]; then the thread
// that owns (key, column) adds Σ_i dS_ik·σq_ic and Σ_i P_ik·dO_ic over the tile's queries, in query order (in double,
// rounded once per tile onto its fp32 total).
template <typename T> __device__ void ls_attention_bwd_dq(LsAttentionParams p)
{
    extern __shared__ float sm[];
    const Block k = block_of(p, QB);
    if (k.nq <= 0) return;
    const int d = p.d, ds = d + 1, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    double* Dd = (double*)sm;  // first: the dynamic shared base is 16-byte aligned
    double* Lse = Dd + QB;     // the running max, then the log-sum-exp
    double* Sum = Lse + QB;
    float* Ks = (float*)(Sum + QB);
    float* Vs = Ks + KT * ds;
    float* Qs = Vs + KT * ds;  // scaled queries
    float* dOs = Qs + QB * d;
    float* dQs = dOs + QB * d;
    int* qok = (int*)(dQs + QB * d);
    int* valid = qok + QB;
    int* pos = valid + KT;

    for (int idx = threadIdx.x; idx < k.nq * d; idx += blockDim.x)
    {
        i64 off = q_row(p, k, k.q0 + idx / d) + idx % d;
        Qs[idx] = p.scale * load<T>(p.q, off);
        dOs[idx] = load<T>(p.dout, off);
        dQs[idx] = 0.f;
    }
    __syncthreads();
    for (int qi = warp; qi < k.nq; qi += NWARP)
    {
        int i = k.q0 + qi;
        double s = 0.0;
        for (int c = lane; c < d; c += 32) s += (double)dOs[qi * d + c] * load<T>(p.o, q_row(p, k, i) + c);
        s = warp_sum(s);
        if (lane == 0)
        {
            Dd[qi] = s;
            Lse[qi] = -TLS_INF;
            Sum[qi] = 0.0;
            qok[qi] = is_token(p, k.b, i);
        }
    }

    // Each query's log-sum-exp again, in double over the logits in double: the forward's fp32 lse, rounded, would put
    // up to half an ulp of |lse| into every P (and so into every gradient). The key passes read it from lse64.
    for (int t0 = 0; t0 < k.total; t0 += KT)
    {
        __syncthreads();
        load_tile<T>(p, k, t0, Ks, Vs, valid, pos);
        __syncthreads();
        for (int qi = warp; qi < k.nq; qi += NWARP)
        {
            const bool ok = qok[qi] && t0 + lane < k.total && valid[lane];
            const double x = ok ? row_dot_d(Qs + qi * d, Ks + lane * ds, d) : -TLS_INF;
            double mt = x;
            for (int o = 16; o > 0; o >>= 1) mt = fmax(mt, __shfl_xor_sync(0xffffffffu, mt, o));
            if (mt == -TLS_INF) continue;  // the whole warp: no key of this tile
            const double m = fmax(Lse[qi], mt), e = warp_sum(ok ? exp(x - m) : 0.0);
            if (lane == 0) { Sum[qi] = Sum[qi] * exp(Lse[qi] - m) + e; Lse[qi] = m; }
        }
    }
    __syncthreads();
    for (int qi = threadIdx.x; qi < k.nq; qi += blockDim.x)
    {
        Lse[qi] = Sum[qi] > 0.0 ? Lse[qi] + log(Sum[qi]) : TLS_INF;
        p.lse64[(i64)k.bh * p.n + k.q0 + qi] = Lse[qi];
    }

    for (int t0 = 0; t0 < k.total; t0 += KT)
    {
        __syncthreads();
        load_tile<T>(p, k, t0, Ks, Vs, valid, pos);
        __syncthreads();
        for (int qi = warp; qi < k.nq; qi += NWARP)
        {
            if (!qok[qi]) continue;
            bool ok = t0 + lane < k.total && valid[lane];
            float dsv = 0.f;
            if (ok)
            {
                float pr = (float)exp(row_dot_d(Qs + qi * d, Ks + lane * ds, d) - Lse[qi]);
                dsv = (float)(pr * (row_dot_d(dOs + qi * d, Vs + lane * ds, d) - Dd[qi]));
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
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < k.nq * d; idx += blockDim.x)
        store<T>(p.dq, q_row(p, k, k.q0 + idx / d) + idx % d, qok[idx / d] ? p.scale * dQs[idx] : 0.f);
}

// The key passes' shared memory: a query tile's D and lse [QB] (double); the block's keys Ks, Vs and their gradients
// dKs, dVs [KT][d + 1]; the tile's scaled Qs and dOs [QB][d]; its P and dS [QB][KT + 1]; which keys exist, kin [KT].
struct KvTiles
{
    double *dd, *lse;
    float *Ks, *Vs, *dKs, *dVs, *Qs, *dOs, *Ps, *dSs;
    int* kin;
};

TLS_DEVICE KvTiles kv_carve(float* sm, int d)
{
    const int ds = d + 1;
    KvTiles s;
    s.dd = (double*)sm;  // first: the dynamic shared base is 16-byte aligned
    s.lse = s.dd + QB;
    s.Ks = (float*)(s.lse + QB);
    s.Vs = s.Ks + KT * ds;
    s.dKs = s.Vs + KT * ds;
    s.dVs = s.dKs + KT * ds;
    s.Qs = s.dVs + KT * ds;
    s.dOs = s.Qs + QB * d;
    s.Ps = s.dOs + QB * d;
    s.dSs = s.Ps + QB * (KT + 1);
    s.kin = (int*)(s.dSs + QB * (KT + 1));
    return s;
}

// Rows [row0, row0 + KT) of key/value tensors [rows, d] (from element `base`; rows at or past `rows`, or where
// exists(kk) is false, are zeros) into the tiles; zeroes the gradient tiles.
template <typename T, typename Exists>
TLS_DEVICE void kv_load(const KvTiles& s, const void* keys, const void* values, i64 base, int row0, int rows, int d, Exists exists)
{
    const int ds = d + 1;
    for (int idx = threadIdx.x; idx < KT * d; idx += blockDim.x)
    {
        int kk = idx / d, c = idx % d, j = row0 + kk;
        bool ok = j < rows && exists(j);
        s.Ks[kk * ds + c] = ok ? load<T>(keys, base + (i64)j * d + c) : 0.f;
        s.Vs[kk * ds + c] = ok ? load<T>(values, base + (i64)j * d + c) : 0.f;
        s.dKs[kk * ds + c] = 0.f;
        s.dVs[kk * ds + c] = 0.f;
        if (c == 0) s.kin[kk] = ok;
    }
}

// One query tile of a key pass: queries [q0, q0 + nq) of (b, h); sees(kk): whether the tile's key kk is in these
// queries' key list (it exists, and for window keys lies in their segment's window). A padded query takes no part.
template <typename T, typename Sees>
TLS_DEVICE void kv_tile(const LsAttentionParams& p, const KvTiles& s, int b, int bh, int q0, int nq, Sees sees)
{
    const int d = p.d, ds = d + 1, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const i64 rows = (i64)bh * p.n, qbase = q_head_base(p, bh);
    __syncthreads();  // the previous tile's readers are done
    for (int idx = threadIdx.x; idx < nq * d; idx += blockDim.x)
    {
        i64 off = qbase + (i64)(q0 + idx / d) * p.qld + idx % d;
        s.Qs[idx] = p.scale * load<T>(p.q, off);
        s.dOs[idx] = load<T>(p.dout, off);
    }
    __syncthreads();
    // D_i = dO_i·O_i in double, as the dQ pass computes it (the same value).
    for (int qi = warp; qi < nq; qi += NWARP)
    {
        const bool ok = is_token(p, b, q0 + qi);
        double a = 0.0;
        if (ok)
            for (int c = lane; c < d; c += 32) a += (double)s.dOs[qi * d + c] * load<T>(p.o, qbase + (i64)(q0 + qi) * p.qld + c);
        a = warp_sum(a);
        if (lane == 0) { s.dd[qi] = a; s.lse[qi] = ok ? p.lse64[rows + q0 + qi] : TLS_INF; }  // the dQ pass's, in double
    }
    __syncthreads();
    for (int qi = warp; qi < nq; qi += NWARP)
    {
        float pr = 0.f, dsv = 0.f;
        if (s.lse[qi] != TLS_INF && sees(lane))
        {
            pr = (float)exp(row_dot_d(s.Qs + qi * d, s.Ks + lane * ds, d) - s.lse[qi]);
            dsv = (float)(pr * (row_dot_d(s.dOs + qi * d, s.Vs + lane * ds, d) - s.dd[qi]));
        }
        s.Ps[qi * (KT + 1) + lane] = pr;
        s.dSs[qi * (KT + 1) + lane] = dsv;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < KT * d; idx += blockDim.x)
    {
        int kk = idx / d, c = idx % d;
        // The tile's sum in double, rounded once onto the running fp32 total: the float32 path's accuracy.
        double gk = 0.0, gv = 0.0;
        for (int qi = 0; qi < nq; ++qi)
        {
            gk += (double)s.dSs[qi * (KT + 1) + kk] * s.Qs[qi * d + c];
            gv += (double)s.Ps[qi * (KT + 1) + kk] * s.dOs[qi * d + c];
        }
        s.dKs[kk * ds + c] += (float)gk;
        s.dVs[kk * ds + c] += (float)gv;
    }
}

template <typename T> __device__ void ls_attention_bwd_kv(LsAttentionParams p)
{
    extern __shared__ float sm[];
    const int d = p.d, ds = d + 1, bh = blockIdx.z, b = bh / p.H, j0 = blockIdx.x * KT;
    const KvTiles s = kv_carve(sm, d);
    const i64 base = (i64)bh * p.n * d;
    kv_load<T>(s, p.k, p.v, base, j0, p.n, d, [&](int j) { return is_token(p, b, j); });
    // Segments whose window [s·w − e, (s+1)·w + e) meets [j0, j0 + KT).
    const int segments = (p.n + p.w - 1) / p.w;
    const int s_lo = max(0, (j0 - p.e) / p.w - 1), s_hi = min(segments - 1, (j0 + KT - 1 + p.e) / p.w);
    for (int sg = s_lo; sg <= s_hi; ++sg)
    {
        const int lo = sg * p.w - p.e, hi = (sg + 1) * p.w + p.e;
        if (hi <= j0 || lo >= j0 + KT) continue;
        const int seg_end = min((sg + 1) * p.w, p.n);
        for (int q0 = sg * p.w; q0 < seg_end; q0 += QB)
            kv_tile<T>(p, s, b, bh, q0, min(QB, seg_end - q0), [&](int kk) { return s.kin[kk] && j0 + kk >= lo && j0 + kk < hi; });
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < KT * d; idx += blockDim.x)
    {
        int kk = idx / d, c = idx % d, j = j0 + kk;
        if (j >= p.n) continue;
        store<T>(p.dk, base + (i64)j * d + c, s.dKs[kk * ds + c]);
        store<T>(p.dv, base + (i64)j * d + c, s.dVs[kk * ds + c]);
    }
}

template <typename T> __device__ void ls_attention_bwd_lm(LsAttentionParams p)
{
    extern __shared__ float sm[];
    const int d = p.d, ds = d + 1, bh = blockIdx.z, b = bh / p.H, l0 = blockIdx.x * KT, g = blockIdx.y;
    const KvTiles s = kv_carve(sm, d);
    kv_load<T>(s, p.kbar, p.vbar, (i64)bh * p.r * d, l0, p.r, d, [](int) { return true; });
    const int q_end = min(p.n, (g + 1) * p.group_tokens);
    for (int q0 = g * p.group_tokens; q0 < q_end; q0 += QB)
        kv_tile<T>(p, s, b, bh, q0, min(QB, q_end - q0), [&](int kk) { return s.kin[kk] != 0; });
    __syncthreads();
    const i64 out = ((i64)g * p.B * p.H + bh) * p.r * d;
    for (int idx = threadIdx.x; idx < KT * d; idx += blockDim.x)
    {
        int kk = idx / d, c = idx % d, l = l0 + kk;
        if (l >= p.r) continue;
        p.lpart_k[out + (i64)l * d + c] = s.dKs[kk * ds + c];
        p.lpart_v[out + (i64)l * d + c] = s.dVs[kk * ds + c];
    }
}

// float32, and bf16 at head dims the tensor-core kernels do not take (d % 16 != 0 or d > 128): the same CUDA-core math.
#define TLS_INSTANTIATE_SIMT(name, T)                                                                              \
    extern "C" __global__ void ls_attention_fwd_##name(LsAttentionParams p) { ls_attention_fwd<T>(p); }           \
    extern "C" __global__ void ls_attention_bwd_dq_##name(LsAttentionParams p) { ls_attention_bwd_dq<T>(p); }     \
    extern "C" __global__ void ls_attention_bwd_kv_##name(LsAttentionParams p) { ls_attention_bwd_kv<T>(p); }     \
    extern "C" __global__ void ls_attention_bwd_lm_##name(LsAttentionParams p) { ls_attention_bwd_lm<T>(p); }     \
    extern "C" __global__ void ls_attention_bwd_lm_sum_##name(LsAttentionParams p)                               \
    {                                                                                                             \
        sum_group_pair<T>(p.lpart_k, p.lpart_v, (i64)p.B * p.H * p.r * p.d, p.groups, p.dkbar, p.dvbar);          \
    }

TLS_INSTANTIATE_SIMT(f32, float)
TLS_INSTANTIATE_SIMT(bf16, bf16)
