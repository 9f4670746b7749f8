// Bidirectional Long-Short attention in bf16 on the tensor cores (mma.sync m16n8k16, fp32 accumulation): the
// same math, key list and outputs as ls_attention_bidir.cu (see there and reference section 1.4-1.5).
//
// A block owns QB = 64 queries of one segment, 16 per warp; the key list streams through shared memory KT = 64
// keys at a time, landmark tiles first, then window tiles that start at the segment's window start, so every
// query of the block sees the same keys and masking is one flag per key. Scores S = Q·Kᵀ and the products
// with V, dO, K and Q are mmas on bf16 inputs as given. Probabilities and score gradients are fp32; they enter
// an mma as hi + lo bf16 pairs (split_bf16x2), which keeps the result as accurate as the fp32 kernel's.
//
// Fragment layouts (PTX ISA, mma.m16n8k16): a thread holds rows lane/4 and lane/4 + 8 of a 16-row tile, and
// columns 2·(lane%4) + {0, 1} of every 8-column block of an accumulator.
#include "ls_attention_bidir.cuh"

#define QB 64
#define KT 64
#define NWARP 4

// bf16 row stride in shared memory: 8 extra elements put the 8 rows of every ldmatrix in distinct banks.
#define STRIDE(cols) ((cols) + 8)

typedef unsigned short u16;

// Tile `tile` of the block's key list: landmark tiles first (ceil(r/KT) of them), then window tiles.
struct Tile
{
    bool landmarks;
    int first;   // first landmark index, or first window position
    int count;   // keys of the list in this tile (≤ KT)
};

TLS_DEVICE Tile tile_of(const LsAttnParams& p, const Block& k, int tile)
{
    const int lt = (p.r + KT - 1) / KT;
    if (tile < lt) return Tile{true, tile * KT, min(KT, p.r - tile * KT)};
    int t0 = (tile - lt) * KT;
    return Tile{false, k.wstart + t0, min(KT, p.w + 2 * p.e - t0)};
}

TLS_DEVICE int tile_count(const LsAttnParams& p) { return (p.r + KT - 1) / KT + (p.w + 2 * p.e + KT - 1) / KT; }

// Row `key` of the tile in global memory (element offset), or -1 where the key is absent, out of range or padded.
TLS_DEVICE i64 key_row(const LsAttnParams& p, const Block& k, const Tile& t, int key)
{
    if (key >= t.count) return -1;
    if (t.landmarks) return ((i64)k.bh * p.r + t.first + key) * p.d;
    int j = t.first + key;
    return j >= 0 && j < p.n && is_token(p, k.b, j) ? k.base + (i64)j * p.d : -1;
}

// rows × D bf16 from global rows (row_off[i] < 0: zeros) into shared memory, 16 bytes per cp.async.
template <int D>
TLS_DEVICE void load_rows(u16* dst, const void* src, const i64* row_off, int rows)
{
    for (int idx = threadIdx.x; idx < rows * (D / 8); idx += blockDim.x)
    {
        int row = idx / (D / 8), c = (idx % (D / 8)) * 8;
        i64 off = row_off[row];
        cp_async_16(dst + row * STRIDE(D) + c, (const u16*)src + (off < 0 ? 0 : off + c), off < 0 ? 0 : 16);
    }
}

// Loads the tile's K and V rows; returns (block-uniformly) whether any key of the tile exists.
template <int D>
TLS_DEVICE bool load_tile(const LsAttnParams& p, const Block& k, const Tile& t, u16* Ks, u16* Vs, i64* rows)
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

// The block's queries (or query gradients) as bf16 rows; rows past nq are zero.
template <int D> TLS_DEVICE void load_queries(const LsAttnParams& p, const Block& k, const void* src, u16* dst, i64* rows)
{
    for (int i = threadIdx.x; i < QB; i += blockDim.x) rows[i] = i < k.nq ? k.base + (i64)(k.q0 + i) * p.d : -1;
    __syncthreads();
    load_rows<D>(dst, src, rows, QB);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
}

// acc[16 × KT] = A[16 rows of this warp] · B[KT rows]ᵀ over D, both row-major bf16 in shared memory.
template <int D>
TLS_DEVICE void mma_abt(float acc[KT / 8][4], const u16* A, const u16* B)
{
    const int lane = threadIdx.x % 32;
    for (int nb = 0; nb < KT / 8; ++nb)
        for (int e = 0; e < 4; ++e) acc[nb][e] = 0.f;
    for (int kc = 0; kc < D / 16; ++kc)
    {
        unsigned a[4];
        ldmatrix_x4(a, A + (lane % 16) * STRIDE(D) + kc * 16 + (lane / 16) * 8);
        for (int np = 0; np < KT / 16; ++np)
        {
            unsigned b[4];
            ldmatrix_x4(b, B + (np * 16 + lane % 8 + (lane / 16) * 8) * STRIDE(D) + kc * 16 + ((lane / 8) % 2) * 8);
            mma_bf16_16816(acc[2 * np], a, b, acc[2 * np]);
            mma_bf16_16816(acc[2 * np + 1], a, b + 2, acc[2 * np + 1]);
        }
    }
}

// acc[16 × D] += X[16 × K] · B[K rows × D], X fp32 in accumulator layout (split hi + lo), B row-major in shared.
template <int K, int D>
TLS_DEVICE void mma_xb(float acc[D / 8][4], const float x[K / 8][4], const u16* B, int stride)
{
    const int lane = threadIdx.x % 32;
    for (int kc = 0; kc < K / 16; ++kc)
    {
        unsigned hi[4], lo[4];
        split_bf16x2(x[2 * kc][0], x[2 * kc][1], hi[0], lo[0]);
        split_bf16x2(x[2 * kc][2], x[2 * kc][3], hi[1], lo[1]);
        split_bf16x2(x[2 * kc + 1][0], x[2 * kc + 1][1], hi[2], lo[2]);
        split_bf16x2(x[2 * kc + 1][2], x[2 * kc + 1][3], hi[3], lo[3]);
        for (int np = 0; np < D / 16; ++np)
        {
            unsigned b[4];
            ldmatrix_x4_trans(b, B + (kc * 16 + lane % 8 + ((lane / 8) % 2) * 8) * stride + np * 16 + (lane / 16) * 8);
            mma_bf16_16816(acc[2 * np], hi, b, acc[2 * np]);
            mma_bf16_16816(acc[2 * np], lo, b, acc[2 * np]);
            mma_bf16_16816(acc[2 * np + 1], hi, b + 2, acc[2 * np + 1]);
            mma_bf16_16816(acc[2 * np + 1], lo, b + 2, acc[2 * np + 1]);
        }
    }
}

// acc[16 keys × D] += Xᵀ[keys key0.. of Xhi + Xlo, stored [QB][KT]] · B[QB rows × D], B row-major in shared.
template <int D>
TLS_DEVICE void mma_xtb(float acc[D / 8][4], const u16* Xhi, const u16* Xlo, int key0, const u16* B)
{
    const int lane = threadIdx.x % 32;
    for (int qc = 0; qc < QB / 16; ++qc)
    {
        unsigned hi[4], lo[4];
        int at = (qc * 16 + lane % 8 + (lane / 16) * 8) * STRIDE(KT) + key0 + ((lane / 8) % 2) * 8;
        ldmatrix_x4_trans(hi, Xhi + at);
        ldmatrix_x4_trans(lo, Xlo + at);
        for (int np = 0; np < D / 16; ++np)
        {
            unsigned b[4];
            ldmatrix_x4_trans(b, B + (qc * 16 + lane % 8 + ((lane / 8) % 2) * 8) * STRIDE(D) + np * 16 + (lane / 16) * 8);
            mma_bf16_16816(acc[2 * np], hi, b, acc[2 * np]);
            mma_bf16_16816(acc[2 * np], lo, b, acc[2 * np]);
            mma_bf16_16816(acc[2 * np + 1], hi, b + 2, acc[2 * np + 1]);
            mma_bf16_16816(acc[2 * np + 1], lo, b + 2, acc[2 * np + 1]);
        }
    }
}

// Reductions over the 4 lanes that hold one accumulator row.
TLS_DEVICE float quad_max(float v)
{
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
TLS_DEVICE float quad_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

template <int D> __device__ void ls_attn_fwd_mma(const LsAttnParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const Block k = block_of(p, QB);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    i64* rows = (i64*)smem;
    u16* Qs = (u16*)(rows + KT);
    u16* Ks = Qs + QB * STRIDE(D);
    u16* Vs = Ks + KT * STRIDE(D);
    load_queries<D>(p, k, p.q, Qs, rows);

    float o[D / 8][4] = {};
    float m[2] = {-TLS_INF, -TLS_INF}, l[2] = {0.f, 0.f};
    const int tiles = tile_count(p);
    for (int tile = 0; tile < tiles; ++tile)
    {
        const Tile t = tile_of(p, k, tile);
        __syncthreads();
        if (!load_tile<D>(p, k, t, Ks, Vs, rows)) continue;
        float s[KT / 8][4];
        mma_abt<D>(s, Qs + warp * 16 * STRIDE(D), Ks);
        for (int h = 0; h < 2; ++h)
        {
            float mx = -TLS_INF;
            for (int nb = 0; nb < KT / 8; ++nb)
                for (int e = 2 * h; e < 2 * h + 2; ++e)
                {
                    int key = nb * 8 + 2 * (lane % 4) + e % 2;
                    s[nb][e] = rows[key] >= 0 ? s[nb][e] * p.scale : -TLS_INF;
                    mx = fmaxf(mx, s[nb][e]);
                }
            float mnew = fmaxf(m[h], quad_max(mx));
            float base = mnew == -TLS_INF ? 0.f : mnew;  // no key yet: every exp below is 0
            float corr = expf(m[h] - base), sum = 0.f;
            for (int nb = 0; nb < KT / 8; ++nb)
                for (int e = 2 * h; e < 2 * h + 2; ++e) { s[nb][e] = expf(s[nb][e] - base); sum += s[nb][e]; }
            for (int nb = 0; nb < D / 8; ++nb) { o[nb][2 * h] *= corr; o[nb][2 * h + 1] *= corr; }
            m[h] = mnew;
            l[h] = l[h] * corr + sum;  // per-thread partial; the quad's partials share m, so they add at the end
        }
        mma_xb<KT, D>(o, s, Vs, STRIDE(D));
    }

    for (int h = 0; h < 2; ++h)
    {
        float sum = quad_sum(l[h]);
        int qi = warp * 16 + lane / 4 + 8 * h, i = k.q0 + qi;
        if (qi >= k.nq) continue;
        bool keep = is_token(p, k.b, i) && sum > 0.f;
        float inv = keep ? 1.f / sum : 0.f;
        for (int nb = 0; nb < D / 8; ++nb)
            *(unsigned*)((u16*)p.o + k.base + (i64)i * D + nb * 8 + 2 * (lane % 4)) = pack_bf16x2(o[nb][2 * h] * inv, o[nb][2 * h + 1] * inv);
        if (lane % 4 == 0) p.lse[(i64)k.bh * p.n + i] = keep ? m[h] + logf(sum) : 0.f;
    }
}

// Adds a warp's [16 keys × D] gradient tile (keys key0.. of tile t) to the fp32 accumulators: a window key is
// shared by up to three segments and a landmark by every query of its head, so the adds are atomic.
template <int D>
TLS_DEVICE void add_key_grad(const LsAttnParams& p, const Block& k, const Tile& t, const i64* rows, int key0,
                             const float acc[D / 8][4], float* landmark_grad, float* key_grad, float mul)
{
    const int lane = threadIdx.x % 32;
    for (int h = 0; h < 2; ++h)
    {
        i64 off = rows[key0 + lane / 4 + 8 * h];
        if (off < 0) continue;
        float* g = t.landmarks ? landmark_grad : key_grad;
        for (int nb = 0; nb < D / 8; ++nb)
        {
            atomicAdd(g + off + nb * 8 + 2 * (lane % 4), mul * acc[nb][2 * h]);
            atomicAdd(g + off + nb * 8 + 2 * (lane % 4) + 1, mul * acc[nb][2 * h + 1]);
        }
    }
}

// Writes an accumulator-layout [16 × KT] fp32 tile as hi and lo bf16 halves, rows row0.. of [QB][KT] arrays.
TLS_DEVICE void store_split(const float x[KT / 8][4], u16* hi, u16* lo, int row0)
{
    const int lane = threadIdx.x % 32;
    for (int nb = 0; nb < KT / 8; ++nb)
        for (int h = 0; h < 2; ++h)
        {
            int at = (row0 + lane / 4 + 8 * h) * STRIDE(KT) + nb * 8 + 2 * (lane % 4);
            split_bf16x2(x[nb][2 * h], x[nb][2 * h + 1], *(unsigned*)(hi + at), *(unsigned*)(lo + at));
        }
}

// dS = P ∘ (dP − D), D_i = dO_i·O_i; dQ = σ·dS·K stays in registers; dV = Pᵀ·dO and dK = σ·dSᵀ·Q per tile, each
// warp owning 16 of the tile's keys, read P and dS back from shared memory.
template <int D> __device__ void ls_attn_bwd_mma(const LsAttnParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const Block k = block_of(p, QB);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    i64* rows = (i64*)smem;
    u16* Qs = (u16*)(rows + KT);
    u16* dOs = Qs + QB * STRIDE(D);
    u16* Ks = dOs + QB * STRIDE(D);
    u16* Vs = Ks + KT * STRIDE(D);
    u16* Ph = Vs + KT * STRIDE(D);
    u16* Pl = Ph + QB * STRIDE(KT);
    u16* dSh = Pl + QB * STRIDE(KT);
    u16* dSl = dSh + QB * STRIDE(KT);
    load_queries<D>(p, k, p.q, Qs, rows);
    load_queries<D>(p, k, p.dout, dOs, rows);

    // Per row of this thread: log-sum-exp (+inf where the row takes no part: padded, or past the segment) and D.
    float lse[2], dd[2];
    for (int h = 0; h < 2; ++h)
    {
        int qi = warp * 16 + lane / 4 + 8 * h, i = k.q0 + qi;
        bool ok = qi < k.nq && is_token(p, k.b, i);
        float a = 0.f;
        if (ok)
            for (int c = 2 * (lane % 4); c < D; c += 8)
            {
                const u16* o = (const u16*)p.o + k.base + (i64)i * D + c;
                a += to_float(bf16{o[0]}) * to_float(bf16{dOs[qi * STRIDE(D) + c]})
                   + to_float(bf16{o[1]}) * to_float(bf16{dOs[qi * STRIDE(D) + c + 1]});
            }
        dd[h] = quad_sum(a);
        lse[h] = ok ? p.lse[(i64)k.bh * p.n + i] : TLS_INF;
    }

    float dq[D / 8][4] = {};
    const int tiles = tile_count(p);
    for (int tile = 0; tile < tiles; ++tile)
    {
        const Tile t = tile_of(p, k, tile);
        __syncthreads();
        if (!load_tile<D>(p, k, t, Ks, Vs, rows)) continue;
        float pr[KT / 8][4], ds[KT / 8][4];
        mma_abt<D>(pr, Qs + warp * 16 * STRIDE(D), Ks);
        mma_abt<D>(ds, dOs + warp * 16 * STRIDE(D), Vs);
        for (int nb = 0; nb < KT / 8; ++nb)
            for (int e = 0; e < 4; ++e)
            {
                int key = nb * 8 + 2 * (lane % 4) + e % 2;
                float x = rows[key] >= 0 ? expf(pr[nb][e] * p.scale - lse[e / 2]) : 0.f;
                pr[nb][e] = x;
                ds[nb][e] = x * (ds[nb][e] - dd[e / 2]);
            }
        mma_xb<KT, D>(dq, ds, Ks, STRIDE(D));
        store_split(pr, Ph, Pl, warp * 16);
        store_split(ds, dSh, dSl, warp * 16);
        __syncthreads();
        float g[D / 8][4] = {};
        mma_xtb<D>(g, Ph, Pl, warp * 16, dOs);
        add_key_grad<D>(p, k, t, rows, warp * 16, g, p.dvbar, p.dv, 1.f);
        for (int nb = 0; nb < D / 8; ++nb)
            for (int e = 0; e < 4; ++e) g[nb][e] = 0.f;
        mma_xtb<D>(g, dSh, dSl, warp * 16, Qs);
        add_key_grad<D>(p, k, t, rows, warp * 16, g, p.dkbar, p.dk, p.scale);
    }

    for (int h = 0; h < 2; ++h)
    {
        int qi = warp * 16 + lane / 4 + 8 * h, i = k.q0 + qi;
        if (qi >= k.nq) continue;
        float mul = lse[h] == TLS_INF ? 0.f : p.scale;
        for (int nb = 0; nb < D / 8; ++nb)
            *(unsigned*)((u16*)p.dq + k.base + (i64)i * D + nb * 8 + 2 * (lane % 4)) = pack_bf16x2(mul * dq[nb][2 * h], mul * dq[nb][2 * h + 1]);
    }
}

#define TLS_INSTANTIATE_MMA(D)                                                                                  \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attn_fwd_mma_d##D(LsAttnParams p) { ls_attn_fwd_mma<D>(p); } \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attn_bwd_mma_d##D(LsAttnParams p) { ls_attn_bwd_mma<D>(p); }

TLS_INSTANTIATE_MMA(32)
TLS_INSTANTIATE_MMA(64)
TLS_INSTANTIATE_MMA(96)
TLS_INSTANTIATE_MMA(128)
