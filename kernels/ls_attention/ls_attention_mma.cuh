// What the bf16 LS attention kernels on the tensor cores share (ls_attention_mma.cu: forward; ls_attention_bwd_mma.cu:
// backward): the block shapes, the query block's key list as tiles, and loading them into shared memory.
#pragma once
#include "ls_attention/ls_attention.cuh"
#include "common/mma_tiles.cuh"

#define QB 64
#define KT 64
#define NWARP 4
// The query-major kernels (the forward, the dQ pass) come in two blocks, 16 queries a warp: QB queries (NWARP warps)
// where w <= QB, and the wide QM (QM_WARPS warps) where w > QB: at w = 128 a wide block is a whole segment, so the
// segment's K and V tiles reach shared memory once for all its queries, not once per 64. At w <= 64 a wide block's
// upper warps would have no queries. The launcher picks by w (LsAttentionCuda.Wide).
#define QM 128
#define QM_WARPS (QM / 16)

// Tile `tile` of the block's key list: landmark tiles first (ceil(r/KT) of them), then window tiles.
struct Tile
{
    bool landmarks;
    int first;   // first landmark index, or first window position
    int count;   // keys of the list in this tile (≤ KT)
};

TLS_DEVICE Tile tile_of(const LsAttentionParams& p, const Block& k, int tile)
{
    const int lt = (p.r + KT - 1) / KT;
    if (tile < lt) return Tile{true, tile * KT, min(KT, p.r - tile * KT)};
    int t0 = (tile - lt) * KT;
    return Tile{false, k.wstart + t0, min(KT, p.w + 2 * p.e - t0)};
}

TLS_DEVICE int tile_count(const LsAttentionParams& p) { return (p.r + KT - 1) / KT + (p.w + 2 * p.e + KT - 1) / KT; }

// Row `key` of the tile in global memory (element offset), or -1 where the key is absent, out of range or padded.
TLS_DEVICE i64 key_row(const LsAttentionParams& p, const Block& k, const Tile& t, int key)
{
    if (key >= t.count) return -1;
    if (t.landmarks) return ((i64)k.bh * p.r + t.first + key) * p.d;
    int j = t.first + key;
    return j >= 0 && j < p.n && is_token(p, k.b, j) ? k.base + (i64)j * p.d : -1;
}

// Issues the tile's K and V rows (cp.async, one commit group) and their offsets into rows[]; the caller waits.
// Sw128: the tiles in the 128-byte swizzle of the wgmma kernels (D = 64), else padded rows of STRIDE(D).
template <int D, bool Sw128 = false>
TLS_DEVICE void issue_tile(const LsAttentionParams& p, const Block& k, const Tile& t, u16* Ks, u16* Vs, i64* rows)
{
    // rows[] is read only after the caller's next barrier; the copies work out their own offsets, so no barrier here.
    for (int i = threadIdx.x; i < KT; i += blockDim.x) rows[i] = key_row(p, k, t, i);
    load_rows_at<D, Sw128>(Ks, t.landmarks ? p.kbar : p.k, KT, [&](int r) { return key_row(p, k, t, r); }, Vs, t.landmarks ? p.vbar : p.v);
    cp_async_commit();
}

// Shared memory both kernels start with: two buffers of key rows, K and V tiles (the next tile loads while the
// current one is computed), and the block's queries, as bf16.
struct Smem
{
    i64* rows[2];
    u16 *Qs, *Ks[2], *Vs[2];
};

// Carves the common part (the backward carves on from `at`) and issues the block's QN queries (one commit group, waited
// on with the first key tile's).
template <int D, int QN> TLS_DEVICE Smem start(const LsAttentionParams& p, const Block& k, unsigned char*& at)
{
    Smem s;
    s.rows[0] = (i64*)at;
    s.rows[1] = s.rows[0] + KT;
    s.Qs = (u16*)(s.rows[1] + KT);
    s.Ks[0] = s.Qs + QN * STRIDE(D);
    s.Vs[0] = s.Ks[0] + KT * STRIDE(D);
    s.Ks[1] = s.Vs[0] + KT * STRIDE(D);
    s.Vs[1] = s.Ks[1] + KT * STRIDE(D);
    at = (unsigned char*)(s.Vs[1] + KT * STRIDE(D));
    issue_consecutive<D>(s.Qs, p.q, q_row(p, k, k.q0), k.nq, QN, p.qld);
    return s;
}

// Walks the block's key list, double-buffered: tile t + 1's rows are in flight while tile t is computed. The copies
// start() and the caller issued before are waited on with tile 0's.
// compute(Ks, Vs, rows, full) runs, block-uniformly, for every tile that holds at least one key; full: every key of
// the tile exists (no per-key masking needed). Sw128: the tiles in the wgmma kernels' swizzle, fenced for the async proxy.
template <int D, bool Sw128 = false, typename F> TLS_DEVICE void for_each_tile(const LsAttentionParams& p, const Block& k, const Smem& s, F compute)
{
    const int tiles = tile_count(p);
    issue_tile<D, Sw128>(p, k, tile_of(p, k, 0), s.Ks[0], s.Vs[0], s.rows[0]);
    for (int tile = 0; tile < tiles; ++tile)
    {
        const int cur = tile & 1;
        if (tile + 1 < tiles)
        {
            issue_tile<D, Sw128>(p, k, tile_of(p, k, tile + 1), s.Ks[cur ^ 1], s.Vs[cur ^ 1], s.rows[cur ^ 1]);
            cp_async_wait_one();
        }
        else
            cp_async_wait_all();
        if (Sw128) fence_proxy_async();  // the tile's copies, now landed, are read by wgmma after the barrier
        const bool full = __syncthreads_and(threadIdx.x >= KT || s.rows[cur][threadIdx.x] >= 0);
        if (full || __syncthreads_or(threadIdx.x < KT && s.rows[cur][threadIdx.x] >= 0)) compute(s.Ks[cur], s.Vs[cur], s.rows[cur], full);
        __syncthreads();  // tile t's buffers are free for tile t + 2
    }
}

// The start of a dQ pass, per row of this thread (warp w: rows 16w..): D_i = dO_i·O_i and the log-sum-exp from global
// memory (backward_rows), D_i written to p.dd for the key passes.
template <int D> TLS_DEVICE void dq_pass_rows(const LsAttentionParams& p, const Block& k, float lse[2], float dd[2])
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const u16* dout = (const u16*)p.dout + q_row(p, k, k.q0);
    backward_rows<D>((const u16*)p.o + q_row(p, k, k.q0), p.lse + (i64)k.bh * p.n + k.q0, [&](int qi, int c) { return bf(dout[(i64)qi * p.qld + c]); }, k.nq,
                     [&](int qi) { return is_token(p, k.b, k.q0 + qi); }, lse, dd, p.qld);
    for (int h = 0; h < 2; ++h)
    {
        const int qi = warp * 16 + lane / 4 + 8 * h;
        if (qi < k.nq && lane % 4 == 0) p.dd[(i64)k.bh * p.n + k.q0 + qi] = dd[h];
    }
}

// The element-wise steps the tensor-core passes share, on accumulator tiles of 16 rows × N (this thread's part).
// Scores of absent keys (rows[key] < 0: out of range or padded) become −inf.
template <int N> TLS_DEVICE void mask_absent_keys(float s[N / 8][4], const i64* rows)
{
    const int lane = threadIdx.x % 32;
    for (int nb = 0; nb < N / 8; ++nb)
        for (int e = 0; e < 4; ++e)
            if (rows[nb * 8 + 2 * (lane % 4) + e % 2] < 0) s[nb][e] = -TLS_INF;
}

// A dQ pass's tile (queries as rows, keys as columns): dP (dp) becomes dS = P ∘ (dP − D) with P = 2^(s·sl2 − lse·log2 e)
// from the scores s; lse2[h], dd[h]: this thread's row h; full: every key exists, else absent keys (rows[key] < 0) get P 0;
// lane: threadIdx.x % 32, the caller's (taken, not recomputed, so the mma.sync CUBINs stay byte-identical to the inline loop's).
template <int N> TLS_DEVICE void dq_scores_to_ds(const float s[N / 8][4], float dp[N / 8][4], const i64* rows, bool full, float sl2, const float lse2[2], const float dd[2], int lane)
{
    for (int nb = 0; nb < N / 8; ++nb)
        for (int e = 0; e < 4; ++e)
        {
            const int key = nb * 8 + 2 * (lane % 4) + e % 2;
            const float x = full || rows[key] >= 0 ? fast_exp2(fmaf(s[nb][e], sl2, -lse2[e / 2])) : 0.f;
            dp[nb][e] = x * (dp[nb][e] - dd[e / 2]);
        }
}

// A key pass's tile (keys as rows, queries q0.. as columns): Sᵀ (st) becomes Pᵀ and dPᵀ (dpt) becomes dSᵀ, with each
// query's lse·log2 e and D from lse2_s, dd_s; kin[h]: whether the thread's key row h sees these queries.
template <int N> TLS_DEVICE void kv_scores_to_ds(float st[N / 8][4], float dpt[N / 8][4], const bool kin[2], int q0, float sl2, const float* lse2_s, const float* dd_s)
{
    const int lane = threadIdx.x % 32;
    for (int nb = 0; nb < N / 8; ++nb)
        for (int e = 0; e < 4; ++e)
        {
            const int qc = q0 + nb * 8 + 2 * (lane % 4) + e % 2;
            const float x = kin[e / 2] ? fast_exp2(fmaf(st[nb][e], sl2, -lse2_s[qc])) : 0.f;
            st[nb][e] = x;
            dpt[nb][e] = x * (dpt[nb][e] - dd_s[qc]);
        }
}
