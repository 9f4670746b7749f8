// The key-major passes of the bidirectional LS attention backward on the tensor cores (see ls_attention_bwd_mma.cu for
// the math and the tile ownership): the window-key pass ls_attention_bwd_kv_mma and the landmark pass ls_attention_bwd_lm_mma,
// their shared memory, query tiles and double-buffered walk. Sw128 = false: mma.sync (ls_attention_bwd_mma.cu, every head dim);
// true: the warpgroup products of kv_tile_wgmma (ls_attention_bwd_keys_sm90a.cu, d = 64, sm_90a only).
#pragma once
#include "ls_attention/ls_attention_mma.cuh"
#if defined(TLS_SM90A)
#include "common/wgmma.cuh"
#endif

// The key passes' shared memory: the block's KT key rows (offsets, K, V), then two buffers of a query tile (Q, dO
// rows and each query's lse and D): the next query tile's rows are in flight while the current one is computed.
template <int D> struct KvSmem
{
    i64* krows;
    u16 *Ks, *Vs, *Qs[2], *dOs[2];
    float *lse[2], *dd[2];
};

// Sw128 (the wgmma kernels, D = 64): the tiles unpadded in the 128-byte swizzle, from the first 1024-byte boundary
// after the key rows (the launch asks for 1024 bytes of slack).
template <int D, bool Sw128 = false> TLS_DEVICE KvSmem<D> kv_start(unsigned char* smem)
{
    constexpr int RS = Sw128 ? D : STRIDE(D);  // elements a tile row
    KvSmem<D> s;
    s.krows = (i64*)smem;
    unsigned char* tiles = (unsigned char*)(s.krows + KT);
    if (Sw128) tiles = sw128_align(tiles);
    s.Ks = (u16*)tiles;
    s.Vs = s.Ks + KT * RS;
    s.Qs[0] = s.Vs + KT * RS;
    s.dOs[0] = s.Qs[0] + QB * RS;
    s.Qs[1] = s.dOs[0] + QB * RS;
    s.dOs[1] = s.Qs[1] + QB * RS;
    s.lse[0] = (float*)(s.dOs[1] + QB * RS);
    s.dd[0] = s.lse[0] + QB;
    s.lse[1] = s.dd[0] + QB;
    s.dd[1] = s.lse[1] + QB;
    return s;
}

// A query tile of a key pass: queries [q0, q0 + nq) of segment sg (the window pass; the landmark pass has no segment).
struct QTile
{
    int sg, q0, nq;
};

// This thread's query of a tile in flight (threads < QB): its lse and D, loaded into registers when the tile's rows
// are issued and published to shared memory once the tile is current, so no load's latency is waited on in between.
struct QRow
{
    float lse, dd;
    bool ok;
};

// Issues tile t's Q and dO rows into buffer buf (cp.async, one commit group) and this thread's lse and D loads.
template <int D, bool Sw128 = false> TLS_DEVICE QRow kv_issue(const LsAttentionParams& p, int b, int bh, const QTile& t, const KvSmem<D>& s, int buf)
{
    const i64 base = (i64)bh * p.n, qbase = q_head_base(p, bh);
    load_rows_at<D, Sw128>(s.Qs[buf], p.q, QB, [&](int r) { return r < t.nq ? qbase + (i64)(t.q0 + r) * p.qld : (i64)-1; }, s.dOs[buf], p.dout);
    cp_async_commit();
    QRow r{TLS_INF, 0.f, false};
    const int i = threadIdx.x;
    if (i < QB && i < t.nq)
    {
        r.ok = is_token(p, b, t.q0 + i);
        r.lse = p.lse[base + t.q0 + i];
        r.dd = p.dd[base + t.q0 + i];
    }
    return r;
}

// The products of one query tile (buffer buf, which holds lse·log2 e; a query takes part when it is a token: lse = +∞
// otherwise, so its P is 0). kin[h]: whether the thread's key row h sees these queries.
template <int D>
TLS_DEVICE void kv_tile(const LsAttentionParams& p, const KvSmem<D>& s, int buf, const bool kin[2], float dk[D / 8][4], float dv[D / 8][4])
{
    const int warp = threadIdx.x / 32;
    const u16 *Qs = s.Qs[buf], *dOs = s.dOs[buf];
    const float *lse2_s = s.lse[buf], *dd_s = s.dd[buf];
    const float sl2 = p.scale * TLS_LOG2E;
    // The tile in halves of QH queries: Sᵀ and dPᵀ of 16 keys x QH queries a warp at a time (fewer registers: the kernel
    // fits 3 blocks an SM).
    constexpr int QH = QB / 2;
    for (int q0 = 0; q0 < QB; q0 += QH)
    {
        float st[QH / 8][4] = {}, dpt[QH / 8][4] = {};
        mma_abt<D, QH>(st, s.Ks + warp * 16 * STRIDE(D), STRIDE(D), Qs + q0 * STRIDE(D), STRIDE(D));
        mma_abt<D, QH>(dpt, s.Vs + warp * 16 * STRIDE(D), STRIDE(D), dOs + q0 * STRIDE(D), STRIDE(D));
        kv_scores_to_ds<QH>(st, dpt, kin, q0, sl2, lse2_s, dd_s);
        mma_xb<QH, D>(dv, st, dOs + q0 * STRIDE(D), STRIDE(D));
        mma_xb<QH, D>(dk, dpt, Qs + q0 * STRIDE(D), STRIDE(D));
    }
}

#if defined(TLS_SM90A)
// kv_tile on the warpgroup tensor cores (the block is one warpgroup; warp w owns keys 16w.., as there): Sᵀ = K·Qᵀ and
// dPᵀ = V·dOᵀ [64 keys x 64 queries] with every operand from shared memory (K-major), then dV += Pᵀ·dO and dK += dSᵀ·Q
// with Pᵀ, dSᵀ as hi + lo register fragments and dO, Q read transposed. Tiles in the 128-byte swizzle; D = 64.
template <int D>
TLS_DEVICE void kv_tile_wgmma(const LsAttentionParams& p, const KvSmem<D>& s, int buf, const bool kin[2], float dk[D / 8][4], float dv[D / 8][4])
{
    static_assert(D == 64 && QB == 64 && KT == 64, "the wgmma key pass is m64n64k16 over 64 keys, 64 queries, d 64");
    const u16 *Qs = s.Qs[buf], *dOs = s.dOs[buf];
    const float *lse2_s = s.lse[buf], *dd_s = s.dd[buf];
    const float sl2 = p.scale * TLS_LOG2E;
    float st[QB / 8][4], dpt[QB / 8][4];
    wgmma_ss_pair(st, sw128_desc(s.Ks, 1024, 1024), sw128_desc(Qs, 1024, 1024), dpt, sw128_desc(s.Vs, 1024, 1024), sw128_desc(dOs, 1024, 1024));
    kv_scores_to_ds<QB>(st, dpt, kin, 0, sl2, lse2_s, dd_s);
    wgmma_xb_split(dv, st, dOs);
    wgmma_xb_split(dk, dpt, Qs);
}
#endif

// Walks the query tiles first, next(first), ... double-buffered. The caller has issued the key rows (one commit group,
// waited on with the first tile's). kin(tile, h): whether the thread's key row h sees the tile's queries.
template <int D, bool Sw128 = false, typename Next, typename Kin>
TLS_DEVICE void kv_walk(const LsAttentionParams& p, int b, int bh, const KvSmem<D>& s, QTile cur, Next next, Kin kin_of,
                        float dk[D / 8][4], float dv[D / 8][4])
{
    QRow row = kv_issue<D, Sw128>(p, b, bh, cur, s, 0);
    for (int buf = 0;; buf ^= 1)
    {
        QTile nxt = cur;
        const bool more = next(nxt);
        QRow row_next{};
        if (more)
        {
            row_next = kv_issue<D, Sw128>(p, b, bh, nxt, s, buf ^ 1);
            cp_async_wait_one();
        }
        else
            cp_async_wait_all();
        if (Sw128) fence_proxy_async();  // the tile's copies, now landed, are read by wgmma after the barrier
        if (threadIdx.x < QB)
        {
            s.lse[buf][threadIdx.x] = row.ok ? row.lse * TLS_LOG2E : TLS_INF;  // lse·log2 e (kv_tile's exponent)
            s.dd[buf][threadIdx.x] = row.ok ? row.dd : 0.f;
        }
        __syncthreads();
        bool kin[2];
        for (int h = 0; h < 2; ++h) kin[h] = kin_of(cur, h);
#if defined(TLS_SM90A)
        if constexpr (Sw128)
            kv_tile_wgmma<D>(p, s, buf, kin, dk, dv);
        else
#endif
            kv_tile<D>(p, s, buf, kin, dk, dv);
        __syncthreads();  // buffer buf is free for the tile after next
        if (!more) return;
        cur = nxt;
        row = row_next;
    }
}

template <int D, bool Sw128 = false> __device__ void ls_attention_bwd_kv_mma(const LsAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const KvSmem<D> s = kv_start<D, Sw128>(smem);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, bh = blockIdx.z, b = bh / p.H, j0 = blockIdx.x * KT;
    const i64 base = (i64)bh * p.n * D;
    for (int i = threadIdx.x; i < KT; i += blockDim.x)
        s.krows[i] = j0 + i < p.n && is_token(p, b, j0 + i) ? base + (i64)(j0 + i) * D : -1;
    __syncthreads();
    load_rows<D, Sw128>(s.Ks, p.k, s.krows, KT);
    load_rows<D, Sw128>(s.Vs, p.v, s.krows, KT);
    cp_async_commit();
    float dk[D / 8][4] = {}, dv[D / 8][4] = {};
    // The query tiles of the segments whose window [s·w − e, (s+1)·w + e) meets [j0, j0 + KT), in order.
    const int segments = (p.n + p.w - 1) / p.w;
    const int s_lo = max(0, (j0 - p.e) / p.w - 1), s_hi = min(segments - 1, (j0 + KT - 1 + p.e) / p.w);
    auto meets = [&](int sg) { return sg * p.w - p.e < j0 + KT && (sg + 1) * p.w + p.e > j0; };
    auto start_of = [&](int sg) { return QTile{sg, sg * p.w, min(QB, min((sg + 1) * p.w, p.n) - sg * p.w)}; };
    auto first_from = [&](int sg) { while (sg <= s_hi && !meets(sg)) ++sg; return sg; };  // > s_hi: none
    const int sg0 = first_from(s_lo);
    if (sg0 <= s_hi)
    {
        auto next = [&](QTile& t) {
            const int seg_end = min((t.sg + 1) * p.w, p.n);
            if (t.q0 + QB < seg_end)
            {
                t.q0 += QB;
                t.nq = min(QB, seg_end - t.q0);
                return true;
            }
            const int sg = first_from(t.sg + 1);
            if (sg > s_hi) return false;
            t = start_of(sg);
            return true;
        };
        auto kin = [&](const QTile& t, int h) {
            const int kr = warp * 16 + lane / 4 + 8 * h, j = j0 + kr;
            return s.krows[kr] >= 0 && j >= t.sg * p.w - p.e && j < (t.sg + 1) * p.w + p.e;
        };
        kv_walk<D, Sw128>(p, b, bh, s, start_of(sg0), next, kin, dk, dv);
    }
    else
        cp_async_wait_all();
    for (int h = 0; h < 2; ++h)
    {
        const int j = j0 + warp * 16 + lane / 4 + 8 * h;
        if (j >= p.n) continue;
        store_row_bf16<D>((u16*)p.dk + base + (i64)j * D, dk, h, p.scale);
        store_row_bf16<D>((u16*)p.dv + base + (i64)j * D, dv, h, 1.f);
    }
}

template <int D, bool Sw128 = false> __device__ void ls_attention_bwd_lm_mma(const LsAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const KvSmem<D> s = kv_start<D, Sw128>(smem);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, bh = blockIdx.z, b = bh / p.H, l0 = blockIdx.x * KT, g = blockIdx.y;
    for (int i = threadIdx.x; i < KT; i += blockDim.x) s.krows[i] = l0 + i < p.r ? ((i64)bh * p.r + l0 + i) * D : -1;
    __syncthreads();
    load_rows<D, Sw128>(s.Ks, p.kbar, s.krows, KT);
    load_rows<D, Sw128>(s.Vs, p.vbar, s.krows, KT);
    cp_async_commit();
    float dk[D / 8][4] = {}, dv[D / 8][4] = {};
    const int q_first = g * p.group_tokens, q_end = min(p.n, (g + 1) * p.group_tokens);
    if (q_first < q_end)
    {
        auto next = [&](QTile& t) {
            if (t.q0 + QB >= q_end) return false;
            t.q0 += QB;
            t.nq = min(QB, q_end - t.q0);
            return true;
        };
        auto kin = [&](const QTile&, int h) { return s.krows[warp * 16 + lane / 4 + 8 * h] >= 0; };
        kv_walk<D, Sw128>(p, b, bh, s, QTile{0, q_first, min(QB, q_end - q_first)}, next, kin, dk, dv);
    }
    else
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
