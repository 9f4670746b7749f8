// Backward of the bidirectional LS attention in bf16 on the tensor cores (reference section 1.4-1.5), deterministic:
// every gradient has one writer, so no float atomics (FlashAttention-2's split of the backward into a query-major and
// a key-major pass). With P = exp(σ·Q·Kᵀ − lse) over each query's key list, dP = dO·Vᵀ, D_i = dO_i·O_i and
// dS = P ∘ (dP − D):
//   ls_attention_bwd_dq_mma:  block = QB queries of a segment (the forward's blocks): dQ = σ·dS·K over the query's
//                             key list, in registers; writes D_i for the key passes.
//   ls_attention_bwd_kv_mma:  block = KT window positions j0.. of one (b, h): walks the query tiles of every segment
//                             whose window [s·w − e, (s+1)·w + e) holds one of them; dV = Pᵀ·dO, dK = σ·dSᵀ·Q in
//                             registers, written once (a position no window holds, or a padded key, gets zeros).
//   ls_attention_bwd_lm_mma:  block = KT landmarks x one query group: the same products over the group's queries into
//                             fp32 partials; ls_attention_bwd_lm_sum_bf16 (ls_attention.cu) adds the groups in order (two-stage, fixed order).
// Tile ownership in the key passes: warp w owns keys 16w.. of the tile; the accumulator tile is [16 keys x QB
// queries], Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ; Pᵀ and dSᵀ enter the dV, dK products as hi + lo bf16 (mma_tiles.cuh).
#include "ls_attention/ls_attention_mma.cuh"

TLS_EXPORT(ls_attention_bwd_mma_qb, QB)
TLS_EXPORT(ls_attention_bwd_mma_kt, KT)
TLS_EXPORT(ls_attention_bwd_mma_threads, NWARP * 32)
// Dynamic shared memory, bytes = fixed + per_d·D (rows of STRIDE(D) bf16). dQ pass: start()'s two buffers of key rows
// i64 [KT], Qs [QB], two buffers of Ks, Vs [KT], then dOs [QB]. Key passes: key and query rows i64 [KT + QB], Ks, Vs [KT], Qs, dOs [QB], the
// query tile's lse and D [QB] floats.
TLS_EXPORT(ls_attention_bwd_dq_mma_smem_per_d, 2 * (2 * QB + 4 * KT))
TLS_EXPORT(ls_attention_bwd_dq_mma_smem_fixed, 16 * KT + 2 * (2 * QB + 4 * KT) * STRIDE(0))
TLS_EXPORT(ls_attention_bwd_kv_mma_smem_per_d, 2 * (2 * QB + 2 * KT))
TLS_EXPORT(ls_attention_bwd_kv_mma_smem_fixed, 8 * (KT + QB) + 2 * (2 * QB + 2 * KT) * STRIDE(0) + 2 * 4 * QB)

template <int D> __device__ void ls_attention_bwd_dq_mma(const LsAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const Block k = block_of(p, QB);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    unsigned char* at = smem;
    const Smem sm = start<D>(p, k, at);
    u16* dOs = (u16*)at;
    load_consecutive<D>(dOs, p.dout, k.base + (i64)k.q0 * D, k.nq, QB, sm.rows[0]);

    float lse[2], dd[2];
    backward_rows<D>((const u16*)p.o + k.base + (i64)k.q0 * D, p.lse + (i64)k.bh * p.n + k.q0, dOs, k.nq,
                     [&](int qi) { return is_token(p, k.b, k.q0 + qi); }, lse, dd);
    for (int h = 0; h < 2; ++h)
    {
        const int qi = warp * 16 + lane / 4 + 8 * h;
        if (qi < k.nq && lane % 4 == 0) p.dd[(i64)k.bh * p.n + k.q0 + qi] = dd[h];
    }

    float dq[D / 8][4] = {};
    for_each_tile<D>(p, k, sm, [&](const u16* Ks, const u16* Vs, const i64* rows, bool full) {
        float pr[KT / 8][4] = {}, ds[KT / 8][4] = {};
        mma_abt<D, KT>(pr, sm.Qs + warp * 16 * STRIDE(D), STRIDE(D), Ks, STRIDE(D));
        mma_abt<D, KT>(ds, dOs + warp * 16 * STRIDE(D), STRIDE(D), Vs, STRIDE(D));
        for (int nb = 0; nb < KT / 8; ++nb)
            for (int e = 0; e < 4; ++e)
            {
                const int key = nb * 8 + 2 * (lane % 4) + e % 2;
                const float x = full || rows[key] >= 0 ? fast_exp(pr[nb][e] * p.scale - lse[e / 2]) : 0.f;
                ds[nb][e] = x * (ds[nb][e] - dd[e / 2]);
            }
        mma_xb<KT, D>(dq, ds, Ks, STRIDE(D));
    });

    for (int h = 0; h < 2; ++h)
    {
        const int qi = warp * 16 + lane / 4 + 8 * h, i = k.q0 + qi;
        if (qi >= k.nq) continue;
        store_row_bf16<D>((u16*)p.dq + k.base + (i64)i * D, dq, h, lse[h] == TLS_INF ? 0.f : p.scale);
    }
}

// One query tile of a key pass: queries [q0, q0 + nq) (all of one segment in the window pass); a query takes part when
// it is a token (lse = +∞ otherwise, so its P is 0). kin[h]: whether the thread's key row h sees these queries.
template <int D>
TLS_DEVICE void kv_tile(const LsAttentionParams& p, int b, int bh, int q0, int nq, const u16* Ks, const u16* Vs, u16* Qs, u16* dOs,
                        i64* qrows, float* lse_s, float* dd_s, const bool kin[2], float dk[D / 8][4], float dv[D / 8][4])
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const i64 base = (i64)bh * p.n;
    __syncthreads();  // the previous tile's readers are done
    for (int i = threadIdx.x; i < QB; i += blockDim.x)
    {
        const bool ok = i < nq && is_token(p, b, q0 + i);
        qrows[i] = i < nq ? (base + q0 + i) * D : -1;
        lse_s[i] = ok ? p.lse[base + q0 + i] : TLS_INF;
        dd_s[i] = ok ? p.dd[base + q0 + i] : 0.f;
    }
    __syncthreads();
    load_rows<D>(Qs, p.q, qrows, QB);
    load_rows<D>(dOs, p.dout, qrows, QB);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    float st[QB / 8][4] = {}, dpt[QB / 8][4] = {};
    mma_abt<D, QB>(st, Ks + warp * 16 * STRIDE(D), STRIDE(D), Qs, STRIDE(D));
    mma_abt<D, QB>(dpt, Vs + warp * 16 * STRIDE(D), STRIDE(D), dOs, STRIDE(D));
    for (int nb = 0; nb < QB / 8; ++nb)
        for (int e = 0; e < 4; ++e)
        {
            const int qc = nb * 8 + 2 * (lane % 4) + e % 2;
            const float x = kin[e / 2] ? fast_exp(st[nb][e] * p.scale - lse_s[qc]) : 0.f;
            st[nb][e] = x;
            dpt[nb][e] = x * (dpt[nb][e] - dd_s[qc]);
        }
    mma_xb<QB, D>(dv, st, dOs, STRIDE(D));
    mma_xb<QB, D>(dk, dpt, Qs, STRIDE(D));
}

// The key pass's shared memory and its keys: rows [j0, j0 + KT) of `src` (window positions, or landmarks) into Ks, Vs.
template <int D> struct KvSmem
{
    i64 *krows, *qrows;
    u16 *Ks, *Vs, *Qs, *dOs;
    float *lse, *dd;
};

template <int D> TLS_DEVICE KvSmem<D> kv_start(unsigned char* smem)
{
    KvSmem<D> s;
    s.krows = (i64*)smem;
    s.qrows = s.krows + KT;
    s.Ks = (u16*)(s.qrows + QB);
    s.Vs = s.Ks + KT * STRIDE(D);
    s.Qs = s.Vs + KT * STRIDE(D);
    s.dOs = s.Qs + QB * STRIDE(D);
    s.lse = (float*)(s.dOs + QB * STRIDE(D));
    s.dd = s.lse + QB;
    return s;
}

template <int D> __device__ void ls_attention_bwd_kv_mma(const LsAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const KvSmem<D> s = kv_start<D>(smem);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, bh = blockIdx.z, b = bh / p.H, j0 = blockIdx.x * KT;
    const i64 base = (i64)bh * p.n * D;
    for (int i = threadIdx.x; i < KT; i += blockDim.x)
        s.krows[i] = j0 + i < p.n && is_token(p, b, j0 + i) ? base + (i64)(j0 + i) * D : -1;
    __syncthreads();
    load_rows<D>(s.Ks, p.k, s.krows, KT);
    load_rows<D>(s.Vs, p.v, s.krows, KT);
    cp_async_commit();
    float dk[D / 8][4] = {}, dv[D / 8][4] = {};
    // Segments whose window [s·w − e, (s+1)·w + e) meets [j0, j0 + KT).
    const int segments = (p.n + p.w - 1) / p.w;
    const int s_lo = max(0, (j0 - p.e) / p.w - 1), s_hi = min(segments - 1, (j0 + KT - 1 + p.e) / p.w);
    for (int sg = s_lo; sg <= s_hi; ++sg)
    {
        const int lo = sg * p.w - p.e, hi = (sg + 1) * p.w + p.e;
        if (hi <= j0 || lo >= j0 + KT) continue;
        bool kin[2];
        for (int h = 0; h < 2; ++h)
        {
            const int kr = warp * 16 + lane / 4 + 8 * h, j = j0 + kr;
            kin[h] = s.krows[kr] >= 0 && j >= lo && j < hi;
        }
        const int seg_end = min((sg + 1) * p.w, p.n);
        for (int q0 = sg * p.w; q0 < seg_end; q0 += QB)
            kv_tile<D>(p, b, bh, q0, min(QB, seg_end - q0), s.Ks, s.Vs, s.Qs, s.dOs, s.qrows, s.lse, s.dd, kin, dk, dv);
    }
    for (int h = 0; h < 2; ++h)
    {
        const int j = j0 + warp * 16 + lane / 4 + 8 * h;
        if (j >= p.n) continue;
        store_row_bf16<D>((u16*)p.dk + base + (i64)j * D, dk, h, p.scale);
        store_row_bf16<D>((u16*)p.dv + base + (i64)j * D, dv, h, 1.f);
    }
}

template <int D> __device__ void ls_attention_bwd_lm_mma(const LsAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const KvSmem<D> s = kv_start<D>(smem);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, bh = blockIdx.z, b = bh / p.H, l0 = blockIdx.x * KT, g = blockIdx.y;
    for (int i = threadIdx.x; i < KT; i += blockDim.x) s.krows[i] = l0 + i < p.r ? ((i64)bh * p.r + l0 + i) * D : -1;
    __syncthreads();
    load_rows<D>(s.Ks, p.kbar, s.krows, KT);
    load_rows<D>(s.Vs, p.vbar, s.krows, KT);
    cp_async_commit();
    bool kin[2];
    for (int h = 0; h < 2; ++h) kin[h] = s.krows[warp * 16 + lane / 4 + 8 * h] >= 0;
    float dk[D / 8][4] = {}, dv[D / 8][4] = {};
    const int q_end = min(p.n, (g + 1) * p.group_tokens);
    for (int q0 = g * p.group_tokens; q0 < q_end; q0 += QB)
        kv_tile<D>(p, b, bh, q0, min(QB, q_end - q0), s.Ks, s.Vs, s.Qs, s.dOs, s.qrows, s.lse, s.dd, kin, dk, dv);
    const i64 out = ((i64)g * p.B * p.H + bh) * p.r * D;
    for (int h = 0; h < 2; ++h)
    {
        const int l = l0 + warp * 16 + lane / 4 + 8 * h;
        if (l >= p.r) continue;
        for (int nb = 0; nb < D / 8; ++nb)
        {
            const int c = nb * 8 + 2 * (lane % 4);
            *(float2*)(p.lpart_k + out + (i64)l * D + c) = make_float2(p.scale * dk[nb][2 * h], p.scale * dk[nb][2 * h + 1]);
            *(float2*)(p.lpart_v + out + (i64)l * D + c) = make_float2(dv[nb][2 * h], dv[nb][2 * h + 1]);
        }
    }
}

#define TLS_INSTANTIATE_BWD(D)                                                                                  \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attention_bwd_dq_mma_d##D(LsAttentionParams p) { ls_attention_bwd_dq_mma<D>(p); } \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attention_bwd_kv_mma_d##D(LsAttentionParams p) { ls_attention_bwd_kv_mma<D>(p); } \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attention_bwd_lm_mma_d##D(LsAttentionParams p) { ls_attention_bwd_lm_mma<D>(p); }

TLS_INSTANTIATE_BWD(16)
TLS_INSTANTIATE_BWD(32)
TLS_INSTANTIATE_BWD(48)
TLS_INSTANTIATE_BWD(64)
TLS_INSTANTIATE_BWD(80)
TLS_INSTANTIATE_BWD(96)
TLS_INSTANTIATE_BWD(112)
TLS_INSTANTIATE_BWD(128)
