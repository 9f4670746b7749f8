// Bidirectional Long-Short attention in bf16 on the tensor cores (mma.sync m16n8k16, fp32 accumulation): the
// same math, key list and outputs as ls_attention.cu (see there and reference section 1.4-1.5).
//
// A block owns QB = 64 queries of one segment, 16 per warp; the key list streams through shared memory KT = 64
// keys at a time, landmark tiles first, then window tiles that start at the segment's window start, so every
// query of the block sees the same keys and masking is one flag per key. Scores S = Q·Kᵀ and the products
// with V, dO, K and Q are mmas on bf16 inputs as given. Probabilities and score gradients are fp32; they enter
// an mma as hi + lo bf16 pairs (mma_tiles.cuh), which keeps the result as accurate as the fp32 kernel's.
#include "ls_attention/ls_attention.cuh"
#include "common/mma_tiles.cuh"

#define QB 64
#define KT 64
#define NWARP 4
TLS_EXPORT(ls_attention_mma_qb, QB)
TLS_EXPORT(ls_attention_mma_threads, NWARP * 32)
// Dynamic shared memory of the carve-ups below (start(), then the backward's), bytes = fixed + per_d·D, rows of
// STRIDE(D) = D + 8 bf16: key rows i64 [KT], Qs [QB], Ks, Vs [KT]; the backward adds dOs [QB] and P, dS as hi + lo
// [QB][STRIDE(KT)] each. The launcher reads these: one source.
TLS_EXPORT(ls_attention_fwd_mma_smem_per_d, 2 * (QB + 2 * KT))
TLS_EXPORT(ls_attention_fwd_mma_smem_fixed, 8 * KT + 2 * (QB + 2 * KT) * STRIDE(0))
TLS_EXPORT(ls_attention_bwd_mma_smem_per_d, 2 * (2 * QB + 2 * KT))
TLS_EXPORT(ls_attention_bwd_mma_smem_fixed, 8 * KT + 2 * (2 * QB + 2 * KT) * STRIDE(0) + 2 * 4 * QB * STRIDE(KT))

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

// Loads the tile's K and V rows; returns (block-uniformly) whether any key of the tile exists.
template <int D>
TLS_DEVICE bool load_tile(const LsAttentionParams& p, const Block& k, const Tile& t, u16* Ks, u16* Vs, i64* rows)
{
    for (int i = threadIdx.x; i < KT; i += blockDim.x) rows[i] = key_row(p, k, t, i);
    __syncthreads();
    load_rows<D>(Ks, t.landmarks ? p.kbar : p.k, rows, KT);
    load_rows<D>(Vs, t.landmarks ? p.vbar : p.v, rows, KT);
    cp_async_commit();
    bool any = threadIdx.x < KT && rows[threadIdx.x] >= 0;
    cp_async_wait_all();
    return __syncthreads_or(any);
}

// Shared memory both kernels start with: key rows of the tile, then the queries, K and V tiles as bf16.
struct Smem
{
    i64* rows;
    u16 *Qs, *Ks, *Vs;
};

// Carves the common part (the backward carves on from `at`) and loads the block's queries.
template <int D> TLS_DEVICE Smem start(const LsAttentionParams& p, const Block& k, unsigned char*& at)
{
    Smem s;
    s.rows = (i64*)at;
    s.Qs = (u16*)(s.rows + KT);
    s.Ks = s.Qs + QB * STRIDE(D);
    s.Vs = s.Ks + KT * STRIDE(D);
    at = (unsigned char*)(s.Vs + KT * STRIDE(D));
    load_consecutive<D>(s.Qs, p.q, k.base + (i64)k.q0 * D, k.nq, QB, s.rows);
    return s;
}

template <int D> __device__ void ls_attention_fwd_mma(const LsAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const Block k = block_of(p, QB);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    unsigned char* at = smem;
    const Smem sm = start<D>(p, k, at);

    float o[D / 8][4] = {};
    float m[2] = {-TLS_INF, -TLS_INF}, l[2] = {0.f, 0.f};
    const int tiles = tile_count(p);
    for (int tile = 0; tile < tiles; ++tile)
    {
        const Tile t = tile_of(p, k, tile);
        __syncthreads();
        if (!load_tile<D>(p, k, t, sm.Ks, sm.Vs, sm.rows)) continue;
        float s[KT / 8][4] = {};
        mma_abt<D, KT>(s, sm.Qs + warp * 16 * STRIDE(D), STRIDE(D), sm.Ks, STRIDE(D));
        for (int nb = 0; nb < KT / 8; ++nb)
            for (int e = 0; e < 4; ++e)
                s[nb][e] = sm.rows[nb * 8 + 2 * (lane % 4) + e % 2] >= 0 ? s[nb][e] * p.scale : -TLS_INF;
        attend_tile<KT, D>(s, o, m, l, sm.Vs);
    }

    store_softmax_rows<D>((u16*)p.o + k.base + (i64)k.q0 * D, p.lse + (i64)k.bh * p.n + k.q0, k.nq, o, m, l,
                          [&](int qi) { return is_token(p, k.b, k.q0 + qi); });
}

// dS = P ∘ (dP − D), D_i = dO_i·O_i; dQ = σ·dS·K stays in registers; dV = Pᵀ·dO and dK = σ·dSᵀ·Q per tile, each
// warp owning 16 of the tile's keys, read P and dS back from shared memory.
template <int D> __device__ void ls_attention_bwd_mma(const LsAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const Block k = block_of(p, QB);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    unsigned char* at = smem;
    const Smem sm = start<D>(p, k, at);
    u16* dOs = (u16*)at;
    u16* Ph = dOs + QB * STRIDE(D);
    u16* Pl = Ph + QB * STRIDE(KT);
    u16* dSh = Pl + QB * STRIDE(KT);
    u16* dSl = dSh + QB * STRIDE(KT);
    load_consecutive<D>(dOs, p.dout, k.base + (i64)k.q0 * D, k.nq, QB, sm.rows);

    float lse[2], dd[2];
    backward_rows<D>((const u16*)p.o + k.base + (i64)k.q0 * D, p.lse + (i64)k.bh * p.n + k.q0, dOs, k.nq,
                     [&](int qi) { return is_token(p, k.b, k.q0 + qi); }, lse, dd);

    float dq[D / 8][4] = {};
    const int tiles = tile_count(p);
    for (int tile = 0; tile < tiles; ++tile)
    {
        const Tile t = tile_of(p, k, tile);
        __syncthreads();
        if (!load_tile<D>(p, k, t, sm.Ks, sm.Vs, sm.rows)) continue;
        float pr[KT / 8][4] = {}, ds[KT / 8][4] = {};
        mma_abt<D, KT>(pr, sm.Qs + warp * 16 * STRIDE(D), STRIDE(D), sm.Ks, STRIDE(D));
        mma_abt<D, KT>(ds, dOs + warp * 16 * STRIDE(D), STRIDE(D), sm.Vs, STRIDE(D));
        for (int nb = 0; nb < KT / 8; ++nb)
            for (int e = 0; e < 4; ++e)
            {
                int key = nb * 8 + 2 * (lane % 4) + e % 2;
                float x = sm.rows[key] >= 0 ? expf(pr[nb][e] * p.scale - lse[e / 2]) : 0.f;
                pr[nb][e] = x;
                ds[nb][e] = x * (ds[nb][e] - dd[e / 2]);
            }
        mma_xb<KT, D>(dq, ds, sm.Ks, STRIDE(D));
        store_split<KT>(pr, Ph, Pl, STRIDE(KT), warp * 16);
        store_split<KT>(ds, dSh, dSl, STRIDE(KT), warp * 16);
        __syncthreads();
        float g[D / 8][4] = {};
        mma_xtb<D>(g, Ph, Pl, STRIDE(KT), warp * 16, QB, dOs, STRIDE(D));
        add_rows<D>(t.landmarks ? p.dvbar : p.dv, sm.rows, warp * 16, g, 1.f, nullptr, nullptr);
        zero(g, D / 8);
        mma_xtb<D>(g, dSh, dSl, STRIDE(KT), warp * 16, QB, sm.Qs, STRIDE(D));
        add_rows<D>(t.landmarks ? p.dkbar : p.dk, sm.rows, warp * 16, g, p.scale, nullptr, nullptr);
    }

    for (int h = 0; h < 2; ++h)
    {
        int qi = warp * 16 + lane / 4 + 8 * h, i = k.q0 + qi;
        if (qi >= k.nq) continue;
        store_row_bf16<D>((u16*)p.dq + k.base + (i64)i * D, dq, h, lse[h] == TLS_INF ? 0.f : p.scale);
    }
}

#define TLS_INSTANTIATE_MMA(D)                                                                                  \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attention_fwd_mma_d##D(LsAttentionParams p) { ls_attention_fwd_mma<D>(p); } \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attention_bwd_mma_d##D(LsAttentionParams p) { ls_attention_bwd_mma<D>(p); }

TLS_INSTANTIATE_MMA(32)
TLS_INSTANTIATE_MMA(64)
TLS_INSTANTIATE_MMA(96)
TLS_INSTANTIATE_MMA(128)
