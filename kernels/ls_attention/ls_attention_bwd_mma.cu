// Backward of the bidirectional LS attention in bf16 on the tensor cores (reference section 1.4-1.5), deterministic:
// every gradient has one writer, so no float atomics (FlashAttention-2's split of the backward into a query-major and
// a key-major pass). With P = exp(σ·Q·Kᵀ − lse) over each query's key list, dP = dO·Vᵀ, D_i = dO_i·O_i and
// dS = P ∘ (dP − D):
//   ls_attention_bwd_dq_mma:  block = QN queries of a segment (the forward's blocks, narrow or wide): dQ = σ·dS·K
//                             over the query's key list, in registers; writes D_i for the key passes.
//   ls_attention_bwd_kv_mma:  block = KT window positions j0.. of one (b, h): walks the query tiles of every segment
//                             whose window [s·w − e, (s+1)·w + e) holds one of them; dV = Pᵀ·dO, dK = σ·dSᵀ·Q in
//                             registers, written once (a position no window holds, or a padded key, gets zeros).
//   ls_attention_bwd_lm_mma:  block = KT landmarks x one query group: the same products over the group's queries into
//                             fp32 partials; ls_attention_bwd_lm_sum_bf16 (ls_attention.cu) adds the groups in order (two-stage, fixed order).
// Tile ownership in the key passes: warp w owns keys 16w.. of the tile; a query tile of QB queries is taken in two
// halves, the accumulator tile [16 keys x QB/2 queries], Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ; Pᵀ and dSᵀ enter the dV, dK
// products as hi + lo bf16 (mma_tiles.cuh). The key passes double-buffer their query tiles (kv_walk).
#include "ls_attention/ls_attention_mma.cuh"

TLS_EXPORT(ls_attention_bwd_mma_qb, QB)
TLS_EXPORT(ls_attention_bwd_dq_mma_wide_qb, QM)
TLS_EXPORT(ls_attention_bwd_dq_mma_wide_threads, QM_WARPS * 32)
TLS_EXPORT(ls_attention_bwd_mma_kt, KT)
TLS_EXPORT(ls_attention_bwd_mma_threads, NWARP * 32)
// Dynamic shared memory, bytes = fixed + per_d·D (rows of STRIDE(D) bf16). dQ pass: start()'s two buffers of key rows
// i64 [KT], Qs [QN], two buffers of Ks, Vs [KT], then dOs [QN]. Key passes (kv_start): key rows i64 [KT], Ks, Vs [KT],
// then two buffers of Qs, dOs [QB] and of the query tile's lse and D [QB] floats.
#define DQ_SMEM_PER_D(QN) (2 * (2 * (QN) + 4 * KT))
#define DQ_SMEM_FIXED(QN) (16 * KT + 2 * (2 * (QN) + 4 * KT) * STRIDE(0))
TLS_EXPORT(ls_attention_bwd_dq_mma_smem_per_d, DQ_SMEM_PER_D(QB))
TLS_EXPORT(ls_attention_bwd_dq_mma_smem_fixed, DQ_SMEM_FIXED(QB))
TLS_EXPORT(ls_attention_bwd_dq_mma_wide_smem_per_d, DQ_SMEM_PER_D(QM))
TLS_EXPORT(ls_attention_bwd_dq_mma_wide_smem_fixed, DQ_SMEM_FIXED(QM))
TLS_EXPORT(ls_attention_bwd_kv_mma_smem_per_d, 2 * (4 * QB + 2 * KT))
TLS_EXPORT(ls_attention_bwd_kv_mma_smem_fixed, 8 * KT + 2 * (4 * QB + 2 * KT) * STRIDE(0) + 4 * 4 * QB)

template <int D, int QN> __device__ void ls_attention_bwd_dq_mma(const LsAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const Block k = block_of(p, QN);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    unsigned char* at = smem;
    const Smem sm = start<D, QN>(p, k, at);
    u16* dOs = (u16*)at;
    issue_consecutive<D>(dOs, p.dout, q_row(p, k, k.q0), k.nq, QN, p.qld);

    // D_i from global memory: the dO rows in flight to shared memory are waited on with the first key tile.
    float lse[2], dd[2];
    const u16* dout = (const u16*)p.dout + q_row(p, k, k.q0);
    backward_rows<D>((const u16*)p.o + q_row(p, k, k.q0), p.lse + (i64)k.bh * p.n + k.q0, [&](int qi, int c) { return bf(dout[(i64)qi * p.qld + c]); }, k.nq,
                     [&](int qi) { return is_token(p, k.b, k.q0 + qi); }, lse, dd, p.qld);
    for (int h = 0; h < 2; ++h)
    {
        const int qi = warp * 16 + lane / 4 + 8 * h;
        if (qi < k.nq && lane % 4 == 0) p.dd[(i64)k.bh * p.n + k.q0 + qi] = dd[h];
    }

    // P = exp(σ·s − lse) = 2^(s·sl2 − lse·log2 e): one FFMA and one ex2 a probability.
    const float sl2 = p.scale * TLS_LOG2E, lse2[2] = {lse[0] * TLS_LOG2E, lse[1] * TLS_LOG2E};
    float dq[D / 8][4] = {};
    for_each_tile<D>(p, k, sm, [&](const u16* Ks, const u16* Vs, const i64* rows, bool full) {
        float pr[KT / 8][4] = {}, ds[KT / 8][4] = {};
        mma_abt<D, KT>(pr, sm.Qs + warp * 16 * STRIDE(D), STRIDE(D), Ks, STRIDE(D));
        mma_abt<D, KT>(ds, dOs + warp * 16 * STRIDE(D), STRIDE(D), Vs, STRIDE(D));
        for (int nb = 0; nb < KT / 8; ++nb)
            for (int e = 0; e < 4; ++e)
            {
                const int key = nb * 8 + 2 * (lane % 4) + e % 2;
                const float x = full || rows[key] >= 0 ? fast_exp2(fmaf(pr[nb][e], sl2, -lse2[e / 2])) : 0.f;
                ds[nb][e] = x * (ds[nb][e] - dd[e / 2]);
            }
        mma_xb<KT, D>(dq, ds, Ks, STRIDE(D));
    });

    for (int h = 0; h < 2; ++h)
    {
        const int qi = warp * 16 + lane / 4 + 8 * h, i = k.q0 + qi;
        if (qi >= k.nq) continue;
        store_row_bf16<D>((u16*)p.dq + q_row(p, k, i), dq, h, lse[h] == TLS_INF ? 0.f : p.scale);
    }
}

// The key passes' shared memory: the block's KT key rows (offsets, K, V), then two buffers of a query tile (Q, dO
// rows and each query's lse and D): the next query tile's rows are in flight while the current one is computed.
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
template <int D> TLS_DEVICE QRow kv_issue(const LsAttentionParams& p, int b, int bh, const QTile& t, const KvSmem<D>& s, int buf)
{
    const i64 base = (i64)bh * p.n, qbase = q_head_base(p, bh);
    load_rows_at<D>(s.Qs[buf], p.q, QB, [&](int r) { return r < t.nq ? qbase + (i64)(t.q0 + r) * p.qld : (i64)-1; }, s.dOs[buf], p.dout);
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
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
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
        for (int nb = 0; nb < QH / 8; ++nb)
            for (int e = 0; e < 4; ++e)
            {
                const int qc = q0 + nb * 8 + 2 * (lane % 4) + e % 2;
                const float x = kin[e / 2] ? fast_exp2(fmaf(st[nb][e], sl2, -lse2_s[qc])) : 0.f;
                st[nb][e] = x;
                dpt[nb][e] = x * (dpt[nb][e] - dd_s[qc]);
            }
        mma_xb<QH, D>(dv, st, dOs + q0 * STRIDE(D), STRIDE(D));
        mma_xb<QH, D>(dk, dpt, Qs + q0 * STRIDE(D), STRIDE(D));
    }
}

// Walks the query tiles first, next(first), ... double-buffered. The caller has issued the key rows (one commit group,
// waited on with the first tile's). kin(tile, h): whether the thread's key row h sees the tile's queries.
template <int D, typename Next, typename Kin>
TLS_DEVICE void kv_walk(const LsAttentionParams& p, int b, int bh, const KvSmem<D>& s, QTile cur, Next next, Kin kin_of,
                        float dk[D / 8][4], float dv[D / 8][4])
{
    QRow row = kv_issue<D>(p, b, bh, cur, s, 0);
    for (int buf = 0;; buf ^= 1)
    {
        QTile nxt = cur;
        const bool more = next(nxt);
        QRow row_next{};
        if (more)
        {
            row_next = kv_issue<D>(p, b, bh, nxt, s, buf ^ 1);
            cp_async_wait_one();
        }
        else
            cp_async_wait_all();
        if (threadIdx.x < QB)
        {
            s.lse[buf][threadIdx.x] = row.ok ? row.lse * TLS_LOG2E : TLS_INF;  // lse·log2 e (kv_tile's exponent)
            s.dd[buf][threadIdx.x] = row.ok ? row.dd : 0.f;
        }
        __syncthreads();
        bool kin[2];
        for (int h = 0; h < 2; ++h) kin[h] = kin_of(cur, h);
        kv_tile<D>(p, s, buf, kin, dk, dv);
        __syncthreads();  // buffer buf is free for the tile after next
        if (!more) return;
        cur = nxt;
        row = row_next;
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
        kv_walk<D>(p, b, bh, s, start_of(sg0), next, kin, dk, dv);
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
    if (q_first < q_end)
    {
        auto next = [&](QTile& t) {
            if (t.q0 + QB >= q_end) return false;
            t.q0 += QB;
            t.nq = min(QB, q_end - t.q0);
            return true;
        };
        auto kin = [&](const QTile&, int h) { return s.krows[warp * 16 + lane / 4 + 8 * h] >= 0; };
        kv_walk<D>(p, b, bh, s, QTile{0, q_first, min(QB, q_end - q_first)}, next, kin, dk, dv);
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

// The dQ pass asks for 4 narrow or 2 wide blocks an SM (registers capped at 128; the compiler's 168 gave 3): B16 H8
// n4096 d64 w128 r64 on the H200, 482 -> 439 us (narrow). The key pass, its query tiles taken in halves, asks for 3 (it
// had 236 registers, 2 blocks; capped without the halves it measured 449 -> 454 us, with them 447 -> 406 us).
#define TLS_INSTANTIATE_BWD(D)                                                                                  \
    extern "C" __global__ void __launch_bounds__(NWARP * 32, 4) ls_attention_bwd_dq_mma_d##D(LsAttentionParams p) { ls_attention_bwd_dq_mma<D, QB>(p); } \
    extern "C" __global__ void __launch_bounds__(QM_WARPS * 32, 2) ls_attention_bwd_dq_mma_wide_d##D(LsAttentionParams p) { ls_attention_bwd_dq_mma<D, QM>(p); } \
    extern "C" __global__ void __launch_bounds__(NWARP * 32, 3) ls_attention_bwd_kv_mma_d##D(LsAttentionParams p) { ls_attention_bwd_kv_mma<D>(p); } \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attention_bwd_lm_mma_d##D(LsAttentionParams p) { ls_attention_bwd_lm_mma<D>(p); }

TLS_INSTANTIATE_BWD(16)
TLS_INSTANTIATE_BWD(32)
TLS_INSTANTIATE_BWD(48)
TLS_INSTANTIATE_BWD(64)
TLS_INSTANTIATE_BWD(80)
TLS_INSTANTIATE_BWD(96)
TLS_INSTANTIATE_BWD(112)
TLS_INSTANTIATE_BWD(128)
