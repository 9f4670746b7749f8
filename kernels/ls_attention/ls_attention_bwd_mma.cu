// Backward of the bidirectional LS attention in bf16 on the tensor cores (reference section 1.4-1.5), deterministic:
// every gradient has one writer, so no float atomics (FlashAttention-2's split of the backward into a query-major and
// a key-major pass). With P = exp(σ·Q·Kᵀ − lse) over each query's key list, dP = dO·Vᵀ, D_i = dO_i·O_i and
// dS = P ∘ (dP − D):
//   ls_attention_bwd_dq_mma:  block = QB_DQ queries of a segment: dQ = σ·dS·K over the query's
//                             key list, in registers; writes D_i for the key passes.
//   ls_attention_bwd_kv_mma:  block = KT window positions j0.. of one (b, h): walks the query tiles of every segment
//                             whose window [s·w − e, (s+1)·w + e) holds one of them; dV = Pᵀ·dO, dK = σ·dSᵀ·Q in
//                             registers, written once (a position no window holds, or a padded key, gets zeros);
//                             the query tiles double-buffered (kv_walk).
//   ls_attention_bwd_lm_mma:  block = KT landmarks x one query group: the same products over the group's queries into
//                             fp32 partials; ls_attention_bwd_lm_sum_bf16 (ls_attention.cu) adds the groups in order (two-stage, fixed order).
// Tile ownership in the key passes: warp w owns keys 16w.. of the tile; the accumulator tile is [16 keys x QB
// queries], Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ; Pᵀ and dSᵀ enter the dV, dK products as hi + lo bf16 (mma_tiles.cuh).
#include "ls_attention/ls_attention_mma.cuh"

// The dQ pass's block: QB_DQ(D) = 64·MB queries, MB row blocks of 16 per warp (2 at d <= 64: each K and V fragment
// read from shared memory feeds both), the key tile taken 32 keys at a time (registers). The key passes: KT keys a
// block, 16 per warp, query tiles of QB.
#define DQ_MB(D) ((D) <= 64 ? 2 : 1)
#define QB_DQ(D) (16 * NWARP * DQ_MB(D))
TLS_EXPORT_TABLE(ls_attention_bwd_dq_mma_qb, 8, QB_DQ(16), QB_DQ(32), QB_DQ(48), QB_DQ(64), QB_DQ(80), QB_DQ(96), QB_DQ(112), QB_DQ(128))
TLS_EXPORT(ls_attention_bwd_mma_kt, KT)
TLS_EXPORT(ls_attention_bwd_mma_threads, NWARP * 32)
// Dynamic shared memory, bytes (rows of STRIDE(D) bf16). dQ pass, by d / 16 − 1: start()'s two buffers of key rows
// i64 [KT], Qs [QB_DQ], two buffers of Ks, Vs [KT], then dOs [QB_DQ]. Key passes, fixed + per_d·D: key rows i64 [KT],
// Ks, Vs [KT], two buffers of Qs, dOs [QB] and of the query tile's lse and D [QB] floats (kv_start).
#define DQ_SMEM(D) (16 * KT + 2 * (2 * QB_DQ(D) + 4 * KT) * STRIDE(D))
TLS_EXPORT_TABLE(ls_attention_bwd_dq_mma_smem, 8, DQ_SMEM(16), DQ_SMEM(32), DQ_SMEM(48), DQ_SMEM(64), DQ_SMEM(80), DQ_SMEM(96),
                 DQ_SMEM(112), DQ_SMEM(128))
TLS_EXPORT(ls_attention_bwd_kv_mma_smem_per_d, 2 * (4 * QB + 2 * KT))
TLS_EXPORT(ls_attention_bwd_kv_mma_smem_fixed, 8 * KT + 2 * (4 * QB + 2 * KT) * STRIDE(0) + 4 * 4 * QB)

template <int D> __device__ void ls_attention_bwd_dq_mma(const LsAttentionParams& p)
{
    constexpr int MB = DQ_MB(D), ROWS = QB_DQ(D), HK = KT / 2;
    extern __shared__ __align__(16) unsigned char smem[];
    const Block k = block_of(p, ROWS);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    unsigned char* at = smem;
    const Smem sm = start<D, ROWS>(p, k, at);
    u16* dOs = (u16*)at;
    load_consecutive<D>(dOs, p.dout, k.base + (i64)k.q0 * D, k.nq, ROWS, sm.rows[0]);

    float lse[MB][2], dd[MB][2];
#pragma unroll
    for (int mb = 0; mb < MB; ++mb)
    {
        const int row0 = (warp * MB + mb) * 16;
        backward_rows<D>((const u16*)p.o + k.base + (i64)k.q0 * D, p.lse + (i64)k.bh * p.n + k.q0, dOs, k.nq,
                         [&](int qi) { return is_token(p, k.b, k.q0 + qi); }, lse[mb], dd[mb], row0);
        for (int h = 0; h < 2; ++h)
        {
            const int qi = row0 + lane / 4 + 8 * h;
            if (qi < k.nq && lane % 4 == 0) p.dd[(i64)k.bh * p.n + k.q0 + qi] = dd[mb][h];
        }
    }

    float dq[MB][D / 8][4] = {};
    const u16* Qw = sm.Qs + warp * 16 * MB * STRIDE(D);
    const u16* dOw = dOs + warp * 16 * MB * STRIDE(D);
    for_each_tile<D>(p, k, sm, [&](const u16* Ks, const u16* Vs, const i64* rows, bool full) {
#pragma unroll
        for (int half = 0; half < 2; ++half)
        {
            const u16 *Kh = Ks + half * HK * STRIDE(D), *Vh = Vs + half * HK * STRIDE(D);
            float pr[MB][HK / 8][4] = {}, ds[MB][HK / 8][4] = {};
            mma_abt_rows<MB, D, HK>(pr, Qw, STRIDE(D), Kh, STRIDE(D));
            mma_abt_rows<MB, D, HK>(ds, dOw, STRIDE(D), Vh, STRIDE(D));
#pragma unroll
            for (int mb = 0; mb < MB; ++mb)
#pragma unroll
                for (int nb = 0; nb < HK / 8; ++nb)
#pragma unroll
                    for (int e = 0; e < 4; ++e)
                    {
                        const int key = half * HK + nb * 8 + 2 * (lane % 4) + e % 2;
                        const float x = full || rows[key] >= 0 ? fast_exp(pr[mb][nb][e] * p.scale - lse[mb][e / 2]) : 0.f;
                        ds[mb][nb][e] = x * (ds[mb][nb][e] - dd[mb][e / 2]);
                    }
            mma_xb_rows<MB, HK, D>(dq, ds, Kh, STRIDE(D));
        }
    });

#pragma unroll
    for (int mb = 0; mb < MB; ++mb)
        for (int h = 0; h < 2; ++h)
        {
            const int qi = (warp * MB + mb) * 16 + lane / 4 + 8 * h, i = k.q0 + qi;
            if (qi >= k.nq) continue;
            store_row_bf16<D>((u16*)p.dq + k.base + (i64)i * D, dq[mb], h, lse[mb][h] == TLS_INF ? 0.f : p.scale);
        }
}

// The key passes' shared memory: the block's key rows, K and V [KT], and two buffers (the next query tile loads while
// the current one is computed) of the query tile's Q, dO [QB] and its lse, D [QB].
template <int D> struct KvSmem
{
    i64* krows;
    u16 *Ks, *Vs, *Qs[2], *dOs[2];
    float *lse[2], *dd[2];
};

template <int D> TLS_DEVICE KvSmem<D> kv_start(unsigned char* smem)
{
    KvSmem<D> s;
    s.krows = (i64*)smem;
    s.Ks = (u16*)(s.krows + KT);
    s.Vs = s.Ks + KT * STRIDE(D);
    s.Qs[0] = s.Vs + KT * STRIDE(D);
    s.dOs[0] = s.Qs[0] + QB * STRIDE(D);
    s.Qs[1] = s.dOs[0] + QB * STRIDE(D);
    s.dOs[1] = s.Qs[1] + QB * STRIDE(D);
    s.lse[0] = (float*)(s.dOs[1] + QB * STRIDE(D));
    s.dd[0] = s.lse[0] + QB;
    s.lse[1] = s.dd[0] + QB;
    s.dd[1] = s.lse[1] + QB;
    return s;
}

// A query tile of a key pass: queries [q0, q0 + nq) of segment sg (the window pass) or of a query group; nq <= 0: none.
struct QTile
{
    int sg, q0, nq;
};

// Issues the tile's Q and dO rows (cp.async, one commit group; rows past nq are zeros) and reads this thread's query's
// lse and D into registers (+∞ and 0 where the query is no token, so its P is 0), stored once the buffer is free.
template <int D>
TLS_DEVICE void issue_queries(const LsAttentionParams& p, int b, int bh, const QTile& t, u16* Qs, u16* dOs, float& lse, float& dd)
{
    static_assert(NWARP * 32 >= QB, "one thread per query of the tile");
    const i64 base = (i64)bh * p.n;
    for (int idx = threadIdx.x; idx < QB * (D / 8); idx += blockDim.x)
    {
        const int row = idx / (D / 8), c = (idx % (D / 8)) * 8;
        const bool in = row < t.nq;
        const i64 off = in ? (base + t.q0 + row) * D + c : 0;
        cp_async_16(Qs + row * STRIDE(D) + c, (const u16*)p.q + off, in ? 16 : 0);
        cp_async_16(dOs + row * STRIDE(D) + c, (const u16*)p.dout + off, in ? 16 : 0);
    }
    cp_async_commit();
    const int i = threadIdx.x;
    const bool ok = i < t.nq && is_token(p, b, t.q0 + i);
    lse = ok ? p.lse[base + t.q0 + i] : TLS_INF;
    dd = ok ? p.dd[base + t.q0 + i] : 0.f;
}

// One query tile of a key pass, from shared memory. kin[h]: whether the thread's key row h sees these queries.
template <int D>
TLS_DEVICE void kv_tile(const LsAttentionParams& p, const u16* Ks, const u16* Vs, const u16* Qs, const u16* dOs, const float* lse_s,
                        const float* dd_s, const bool kin[2], float dk[D / 8][4], float dv[D / 8][4])
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
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

// Walks a key pass's query tiles from `first`, double-buffered (tile t + 1's rows are in flight while tile t is
// computed); next(t) gives the following tile, kin_of(t, kin) the key rows that see it. The block's K, V copies are
// committed before, so the first wait covers them.
template <int D, typename Next, typename KinOf>
TLS_DEVICE void kv_walk(const LsAttentionParams& p, int b, int bh, const KvSmem<D>& s, QTile t, Next next, KinOf kin_of,
                        float dk[D / 8][4], float dv[D / 8][4])
{
    if (t.nq <= 0) return;
    const int i = threadIdx.x;
    float lse, dd;
    issue_queries<D>(p, b, bh, t, s.Qs[0], s.dOs[0], lse, dd);
    if (i < QB) s.lse[0][i] = lse, s.dd[0][i] = dd;
    for (int cur = 0; t.nq > 0; cur ^= 1)
    {
        const QTile u = next(t);
        if (u.nq > 0)
        {
            issue_queries<D>(p, b, bh, u, s.Qs[cur ^ 1], s.dOs[cur ^ 1], lse, dd);
            cp_async_wait_one();
        }
        else
            cp_async_wait_all();
        __syncthreads();
        bool kin[2];
        kin_of(t, kin);
        kv_tile<D>(p, s.Ks, s.Vs, s.Qs[cur], s.dOs[cur], s.lse[cur], s.dd[cur], kin, dk, dv);
        __syncthreads();  // tile t's buffers are free for tile t + 2
        if (u.nq > 0 && i < QB) s.lse[cur ^ 1][i] = lse, s.dd[cur ^ 1][i] = dd;
        t = u;
    }
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
    // The query tiles of the segments whose window [s·w − e, (s+1)·w + e) meets [j0, j0 + KT), in segment order.
    const int segments = (p.n + p.w - 1) / p.w;
    const int s_hi = min(segments - 1, (j0 + KT - 1 + p.e) / p.w);
    auto meets = [&](int sg) { return (sg + 1) * p.w + p.e > j0 && sg * p.w - p.e < j0 + KT; };
    auto segment_from = [&](int sg) {
        while (sg <= s_hi && !meets(sg)) ++sg;
        return sg <= s_hi ? QTile{sg, sg * p.w, min(QB, min((sg + 1) * p.w, p.n) - sg * p.w)} : QTile{0, 0, 0};
    };
    auto next = [&](const QTile& t) {
        const int q0 = t.q0 + QB, seg_end = min((t.sg + 1) * p.w, p.n);
        return q0 < seg_end ? QTile{t.sg, q0, min(QB, seg_end - q0)} : segment_from(t.sg + 1);
    };
    auto kin_of = [&](const QTile& t, bool kin[2]) {
        for (int h = 0; h < 2; ++h)
        {
            const int kr = warp * 16 + lane / 4 + 8 * h, j = j0 + kr;
            kin[h] = s.krows[kr] >= 0 && j >= t.sg * p.w - p.e && j < (t.sg + 1) * p.w + p.e;
        }
    };
    kv_walk<D>(p, b, bh, s, segment_from(max(0, (j0 - p.e) / p.w - 1)), next, kin_of, dk, dv);
    cp_async_wait_all();  // no tile: the K, V copies are still to be waited for before the block ends
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
    float dk[D / 8][4] = {}, dv[D / 8][4] = {};
    const int q_first = g * p.group_tokens, q_end = min(p.n, (g + 1) * p.group_tokens);
    auto tile_at = [&](int q0) { return q0 < q_end ? QTile{0, q0, min(QB, q_end - q0)} : QTile{0, 0, 0}; };
    auto kin_of = [&](const QTile&, bool kin[2]) {
        for (int h = 0; h < 2; ++h) kin[h] = s.krows[warp * 16 + lane / 4 + 8 * h] >= 0;
    };
    kv_walk<D>(p, b, bh, s, tile_at(q_first), [&](const QTile& t) { return tile_at(t.q0 + QB); }, kin_of, dk, dv);
    cp_async_wait_all();
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
