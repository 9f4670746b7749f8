// The dynamic projection in bf16 on the tensor cores (mma.sync m16n8k16, fp32 accumulation): the same math, groups
// and outputs as ls_projection.cu (see there and reference section 1.3), for head dims d = 16·k ≤ 128. The merge of
// the groups' column statistics, the stage-2 sums and Σ P·dP's sum come from ls_projection.cu's kernels; this file
// holds the two products that carry the FLOPs.
//
// Tile ownership: a block (group g, head h, batch b) of 4 warps walks its group's tokens PT = 64 at a time.
// Compress: warp w owns ranks 16w.. of a 64-rank tile and accumulates K̄ = Pᵀ·K, V̄ = Pᵀ·V over the group's tokens
// with P relative to a running column max (one pass over the scores, see ls_projection_compress_mma); P enters the mma
// as hi + lo bf16, so it keeps ~16 bits. Backward: warp w owns tokens 16w.. of the
// tile: dP = K·dK̄ᵀ + V·dV̄ᵀ on bf16 inputs as given, P in the accumulator layout, then Σ P·dP (phase 0, reduced in
// a fixed order: lanes, then warps, then tiles) and dK = P·dK̄, dV = P·dV̄ (phase 0) or dS = P ∘ (dP − coldot)
// (phase 1). Phase 2 is both in one pass (dK, dV and dS), when coldot came from the forward's unrounded landmarks
// (ls_projection_coldot_landmarks) instead of phase 0's sums. Each token belongs to one block: dK, dV and dS are
// written, never added atomically.
#include "ls_projection/ls_projection.cuh"
#include "common/mma_tiles.cuh"

#define PT 64                          // tokens per tile
#define PR_FWD 64                      // ranks per compress tile (16 per warp)
#define PR_BWD(D) ((D) <= 64 ? 64 : 32) // ranks per backward tile (registers: dP, P, dK and dV per thread)
#define PW 4
TLS_EXPORT(ls_projection_mma_threads, PW * 32)

// Shared memory of the carve-ups below, bytes; the launcher reads them (one source). Compress: two stages of token row
// offsets i64 [PT], K, V [PT][STRIDE(D)] and the scores [PT][STRIDE(PR_FWD)] bf16.
// Backward: token and rank row offsets i64 [PT + PR], K, V [PT][STRIDE(D)], dK̄, dV̄ [PR][STRIDE(D)], the scores
// [PT][STRIDE(PR)] bf16, column max, 1/sum and coldot [PR] floats, per-warp sums double [PW][PR]; plus Σ P·dP double
// [r] (per_r). Every operand arrives by cp.async (16 bytes a copy) before the tile's products start; with one rank
// tile the backward issues the next token tile's once dP and P are in registers.
#define FWD_STAGE(D) (8 * PT + 2 * 2 * PT * STRIDE(D) + 2 * PT * STRIDE(PR_FWD))
#define FWD_SMEM(D) (2 * FWD_STAGE(D))
#define BWD_SMEM(D) (8 * (PT + PR_BWD(D)) + 2 * 2 * (PT + PR_BWD(D)) * STRIDE(D) + 2 * PT * STRIDE(PR_BWD(D)) + 3 * 4 * PR_BWD(D) + 8 * PW * PR_BWD(D))
TLS_EXPORT_TABLE(ls_projection_compress_mma_smem, 8, FWD_SMEM(16), FWD_SMEM(32), FWD_SMEM(48), FWD_SMEM(64), FWD_SMEM(80),
                 FWD_SMEM(96), FWD_SMEM(112), FWD_SMEM(128))
TLS_EXPORT_TABLE(ls_projection_bwd_mma_smem, 8, BWD_SMEM(16), BWD_SMEM(32), BWD_SMEM(48), BWD_SMEM(64), BWD_SMEM(80),
                 BWD_SMEM(96), BWD_SMEM(112), BWD_SMEM(128))
TLS_EXPORT(ls_projection_bwd_mma_smem_per_r, 8)

// Column max and 1/sum of ranks r0.. (zero past r or for a column without tokens, so its P is 0); coldot too if asked.
TLS_DEVICE void load_columns(const LsProjectionParams& p, int b, int h, int r0, int pr, float* cmax, float* cinv, float* cdot)
{
    const int hr = p.H * p.r;
    for (int i = threadIdx.x; i < pr; i += blockDim.x)
    {
        const bool in = r0 + i < p.r;
        const i64 col = (i64)b * hr + h * p.r + r0 + i;
        const float z = in ? p.colsum[col] : 0.f;
        cmax[i] = in ? p.colmax[col] : 0.f;
        cinv[i] = z > 0.f ? 1.f / z : 0.f;
        if (cdot) cdot[i] = in ? (float)p.coldot[col] : 0.f;
    }
}

// Token rows t0.. of the tile: the element offset of each row of K, V, or -1 past the group's end or for padding
// (whose P is 0: its K, V rows load as zeros and it adds nothing).
TLS_DEVICE void token_rows(const LsProjectionParams& p, int b, i64 base, int t0, int t1, int d, i64* rows)
{
    for (int i = threadIdx.x; i < PT; i += blockDim.x) rows[i] = t0 + i < t1 && proj_token(p, b, t0 + i) ? base + (i64)(t0 + i) * d : -1;
}

// Writes the tile's token rows (as token_rows) and issues their K and V rows (cp.async, offsets worked out per copy, so
// no barrier between the two); the caller commits and waits.
template <int D> TLS_DEVICE void issue_tokens(const LsProjectionParams& p, int b, i64 base, int t0, int t1, i64* rows, u16* Ks, u16* Vs)
{
    token_rows(p, b, base, t0, t1, D, rows);
    load_rows_at<D>(Ks, p.k, PT, [&](int r) { return t0 + r < t1 && proj_token(p, b, t0 + r) ? base + (i64)(t0 + r) * D : (i64)-1; }, Vs, p.v);
}

// The scores of the tile's tokens for ranks r0 .. r0 + PR into Ss [PT][STRIDE(PR)] bf16: 16-byte cp.async copies
// where the rows allow it (H·r and the first column multiples of 8, a full rank tile), element loads otherwise;
// zeros past the group's end and past r. The caller commits and waits.
template <int PR> TLS_DEVICE void load_scores(const LsProjectionParams& p, int b, int t0, int t1, int c0, int r0, u16* Ss)
{
    const int hr = p.H * p.r, nr = min(PR, p.r - r0);
    const bool vec = hr % 8 == 0 && c0 % 8 == 0 && nr == PR;
    for (int idx = threadIdx.x; idx < PT * PR / 8; idx += blockDim.x)
    {
        const int t = idx / (PR / 8), c = (idx % (PR / 8)) * 8;
        u16* dst = Ss + t * STRIDE(PR) + c;
        const bool in = t0 + t < t1;
        const u16* src = (const u16*)p.s + (in ? ((i64)b * p.n + t0 + t) * hr + c0 + c : 0);
        if (vec) cp_async_16(dst, src, in ? 16 : 0);
        else
            for (int e = 0; e < 8; ++e) dst[e] = in && c + e < nr ? src[e] : (u16)0;
    }
}

// P of tile token t, rank column kk, from the staged score and the tile's column statistics.
TLS_DEVICE float mma_prob(const i64* rows, const u16* Ss, int sstride, int t, int kk, const float* cmax, const float* cinv)
{
    return rows[t] < 0 || cinv[kk] == 0.f ? 0.f : fast_exp(bf(Ss[t * sstride + kk]) - cmax[kk]) * cinv[kk];
}

// Compress stage 1 in one pass (online softmax over the group's tokens): per rank column the block keeps a running max
// m and Σ exp(s − m) while it accumulates K̄_g = Σ_t exp(s_t − m)·K_t and V̄_g likewise, rescaling both by
// exp(m_old − m_new) whenever a tile raises m. It writes the group's m and Σ (pmax, psum: what ls_projection_stats
// would) and the unnormalized partials; ls_projection_compress_sum_scaled then adds the groups as
// Σ_g exp(m_g − M)·K̄_g / Z, with (M, Z) the merged column statistics. The scores are read once.
// Warp w owns ranks 16w.. outright: it loads the tile's scores straight into the A fragments of Pᵀ (ldmatrix.trans:
// a thread holds ranks lane/4 and lane/4 + 8 for 16 of the 64 tokens, the accumulator's rows), takes the tile max over
// the four lanes of a rank (two shuffles), and turns the scores into P's hi and lo halves in registers. Each thread
// keeps its tokens' running sum; the four lanes' sums meet in a fixed shuffle order at the end. Token tiles are
// double-buffered: tile t + 1's copies are issued as soon as tile t has landed; the only barrier is the tile's.
template <int D> __device__ void ls_projection_compress_mma(const LsProjectionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const int g = blockIdx.x, h = blockIdx.y, b = blockIdx.z, lane = threadIdx.x % 32, warp = threadIdx.x / 32, q = lane % 4;
    const int tg = g * p.group_tokens, t1 = min(p.n, tg + p.group_tokens), col0 = h * p.r, hr = p.H * p.r;
    const i64 base = ((i64)b * p.H + h) * p.n * D, out = (((i64)g * p.B + b) * p.H + h) * p.r * D;
    i64* rows[2];
    u16 *Ks[2], *Vs[2], *Ss[2];
    for (int s = 0; s < 2; ++s)
    {
        unsigned char* at = smem + s * FWD_STAGE(D);
        rows[s] = (i64*)at;
        Ks[s] = (u16*)(rows[s] + PT);
        Vs[s] = Ks[s] + PT * STRIDE(D);
        Ss[s] = Vs[s] + PT * STRIDE(D);
    }
    for (int r0 = 0; r0 < p.r; r0 += PR_FWD)
    {
        float m[2] = {-TLS_INF, -TLS_INF}, l[2] = {0.f, 0.f};  // ranks lane/4 and lane/4 + 8 of the warp's 16
        float ak[D / 8][4] = {}, av[D / 8][4] = {};
        __syncthreads();  // the previous rank tile's readers are done
        issue_tokens<D>(p, b, base, tg, t1, rows[0], Ks[0], Vs[0]);
        load_scores<PR_FWD>(p, b, tg, t1, col0 + r0, r0, Ss[0]);
        cp_async_commit();
        for (int t0 = tg, cur = 0; t0 < t1; t0 += PT, cur ^= 1)
        {
            cp_async_wait_all();
            __syncthreads();  // tile t0 has landed; every reader of the other stage (the last tile's products) is done
            if (t0 + PT < t1)
            {
                issue_tokens<D>(p, b, base, t0 + PT, t1, rows[cur ^ 1], Ks[cur ^ 1], Vs[cur ^ 1]);
                load_scores<PR_FWD>(p, b, t0 + PT, t1, col0 + r0, r0, Ss[cur ^ 1]);
                cp_async_commit();
            }
            // f[kc][i]: ranks lane/4 + 8·(i % 2), tokens 16·kc + 8·(i / 2) + 2q + {0, 1} of the tile (low half first).
            unsigned f[PT / 16][4];
            unsigned ok = 0;  // bit 4·kc + 2·(i / 2) + e: that token takes part (not padding, not past the group)
            for (int kc = 0; kc < PT / 16; ++kc)
            {
                ldmatrix_x4_trans(f[kc], Ss[cur] + (kc * 16 + lane % 8 + (lane / 16) * 8) * STRIDE(PR_FWD) + warp * 16 + ((lane / 8) % 2) * 8);
                for (int j = 0; j < 4; ++j)
                    if (rows[cur][kc * 16 + 8 * (j / 2) + 2 * q + j % 2] >= 0) ok |= 1u << (4 * kc + j);
            }
            float mx[2] = {-TLS_INF, -TLS_INF};
            for (int kc = 0; kc < PT / 16; ++kc)
                for (int i = 0; i < 4; ++i)
                    for (int e = 0; e < 2; ++e)
                        if (ok >> (4 * kc + 2 * (i / 2) + e) & 1) mx[i % 2] = fmaxf(mx[i % 2], bf16x2_half(f[kc][i], e));
            float mn[2], a[2];
            for (int r = 0; r < 2; ++r)
            {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                mn[r] = fmaxf(m[r], mx[r]);
                a[r] = m[r] == -TLS_INF ? 0.f : fast_exp(m[r] - mn[r]);
                l[r] *= a[r];
                m[r] = mn[r];
            }
            for (int nb = 0; nb < D / 8; ++nb)
                for (int e = 0; e < 4; ++e) { ak[nb][e] *= a[e / 2]; av[nb][e] *= a[e / 2]; }
            for (int kc = 0; kc < PT / 16; ++kc)
            {
                unsigned hi[4], lo[4];
                for (int i = 0; i < 4; ++i)
                {
                    float x[2];
                    for (int e = 0; e < 2; ++e)
                    {
                        const float sc = bf16x2_half(f[kc][i], e);
                        x[e] = (ok >> (4 * kc + 2 * (i / 2) + e) & 1) ? fast_exp(sc - mn[i % 2]) : 0.f;
                        l[i % 2] += x[e];
                    }
                    split_bf16x2(x[0], x[1], hi[i], lo[i]);
                }
                mma_split_chunk<D>(ak, hi, lo, Ks[cur] + kc * 16 * STRIDE(D), STRIDE(D));
                mma_split_chunk<D>(av, hi, lo, Vs[cur] + kc * 16 * STRIDE(D), STRIDE(D));
            }
        }
        for (int r = 0; r < 2; ++r)
        {
            l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
            l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        }
        for (int hh = 0; hh < 2; ++hh)
        {
            const int k = r0 + warp * 16 + lane / 4 + 8 * hh;
            if (k >= p.r) continue;
            for (int nb = 0; nb < D / 8; ++nb)
            {
                const int c = nb * 8 + 2 * q;
                *(float2*)(p.kpart + out + (i64)k * D + c) = make_float2(ak[nb][2 * hh], ak[nb][2 * hh + 1]);
                *(float2*)(p.vpart + out + (i64)k * D + c) = make_float2(av[nb][2 * hh], av[nb][2 * hh + 1]);
            }
            if (q == 0)
            {
                const i64 o = ((i64)b * p.groups + g) * hr + col0 + k;
                p.pmax[o] = m[hh];
                p.psum[o] = (double)l[hh];
            }
        }
    }
}

template <int D> __device__ void ls_projection_bwd_mma(const LsProjectionParams& p)
{
    constexpr int PR = PR_BWD(D);
    extern __shared__ __align__(16) unsigned char smem[];
    i64* trows = (i64*)smem;
    i64* rrows = trows + PT;
    u16* Ks = (u16*)(rrows + PR);
    u16* Vs = Ks + PT * STRIDE(D);
    u16* dKs = Vs + PT * STRIDE(D);
    u16* dVs = dKs + PR * STRIDE(D);
    u16* Ss = dVs + PR * STRIDE(D);
    float* cmax = (float*)(Ss + PT * STRIDE(PR));
    float* cinv = cmax + PR;
    float* cdot = cinv + PR;
    double* red = (double*)(cdot + PR);  // [PW][PR]
    double* colacc = red + PW * PR;      // [r]
    const int g = blockIdx.x, h = blockIdx.y, b = blockIdx.z, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int hr = p.H * p.r, tg = g * p.group_tokens, t1 = min(p.n, tg + p.group_tokens), col0 = h * p.r;
    const i64 base = ((i64)b * p.H + h) * p.n * D, lbase = ((i64)b * p.H + h) * p.r * D;
    const bool one_tile = p.r <= PR;  // then dK̄, dV̄ and the statistics are loaded once for all token tiles
    if (p.phase == 0)
        for (int k = threadIdx.x; k < p.r; k += blockDim.x) colacc[k] = 0.0;
    // one_tile: once dP and P of a tile are in registers, the next tile's K, V, scores and token rows are issued into
    // the same buffers, so their loads overlap the dK, dV products and the stores (issued = already in flight).
    bool issued = false;
    for (int t0 = tg; t0 < t1; t0 += PT)
    {
        if (!issued)
        {
            __syncthreads();  // the previous tile's readers are done
            issue_tokens<D>(p, b, base, t0, t1, trows, Ks, Vs);
            cp_async_commit();
        }
        float dk[D / 8][4] = {}, dv[D / 8][4] = {};
        for (int r0 = 0; r0 < p.r; r0 += PR)
        {
            if (!one_tile || t0 == tg)
            {
                if (!one_tile) __syncthreads();  // the previous rank tile's readers (dK̄, dV̄, scores, statistics) are done
                for (int i = threadIdx.x; i < PR; i += blockDim.x) rrows[i] = r0 + i < p.r ? lbase + (i64)(r0 + i) * D : -1;
                load_columns(p, b, h, r0, PR, cmax, cinv, p.phase == 0 ? nullptr : cdot);
                __syncthreads();
                load_rows<D>(dKs, p.dkbar, rrows, PR);
                load_rows<D>(dVs, p.dvbar, rrows, PR);
                cp_async_commit();
            }
            if (!issued)
            {
                load_scores<PR>(p, b, t0, t1, col0 + r0, r0, Ss);
                cp_async_commit();
            }
            cp_async_wait_all();
            __syncthreads();
            float dp[PR / 8][4] = {};
            mma_abt<D, PR>(dp, Ks + warp * 16 * STRIDE(D), STRIDE(D), dKs, STRIDE(D));
            mma_abt<D, PR>(dp, Vs + warp * 16 * STRIDE(D), STRIDE(D), dVs, STRIDE(D));
            float pr[PR / 8][4];
            for (int nb = 0; nb < PR / 8; ++nb)
                for (int e = 0; e < 4; ++e)
                    pr[nb][e] = mma_prob(trows, Ss, STRIDE(PR), warp * 16 + lane / 4 + 8 * (e / 2), nb * 8 + 2 * (lane % 4) + e % 2, cmax, cinv);
            issued = one_tile && t0 + PT < t1;
            if (issued)
            {
                __syncthreads();  // every warp has read this tile's K, V, scores and token rows
                issue_tokens<D>(p, b, base, t0 + PT, t1, trows, Ks, Vs);
                load_scores<PR>(p, b, t0 + PT, t1, col0 + r0, r0, Ss);
                cp_async_commit();
            }
            if (p.phase != 1)
            {
                mma_xb<PR, D>(dk, pr, dKs, STRIDE(D));
                mma_xb<PR, D>(dv, pr, dVs, STRIDE(D));
            }
            if (p.phase == 0)
            {
                // Σ P·dP per column over the warp's 16 tokens: the two rows of a thread, then the 8 lanes of a column.
                for (int nb = 0; nb < PR / 8; ++nb)
                    for (int e = 0; e < 2; ++e)
                    {
                        double s = (double)pr[nb][e] * dp[nb][e] + (double)pr[nb][e + 2] * dp[nb][e + 2];
                        s += __shfl_xor_sync(0xffffffffu, s, 4);
                        s += __shfl_xor_sync(0xffffffffu, s, 8);
                        s += __shfl_xor_sync(0xffffffffu, s, 16);
                        if (lane < 4) red[warp * PR + nb * 8 + 2 * lane + e] = s;
                    }
                __syncthreads();
                for (int kk = threadIdx.x; kk < PR; kk += blockDim.x)
                    if (r0 + kk < p.r)
                    {
                        double s = colacc[r0 + kk];
                        for (int w = 0; w < PW; ++w) s += red[w * PR + kk];
                        colacc[r0 + kk] = s;
                    }
            }
            else
                for (int nb = 0; nb < PR / 8; ++nb)  // phases 1 and 2: dS = P ∘ (dP − coldot), a thread's pairs in one store
                    for (int hh = 0; hh < 2; ++hh)
                    {
                        const int t = t0 + warp * 16 + lane / 4 + 8 * hh, kk = nb * 8 + 2 * (lane % 4);
                        if (t >= t1 || r0 + kk >= p.r) continue;
                        const i64 at = ((i64)b * p.n + t) * hr + col0 + r0 + kk;
                        const float x0 = pr[nb][2 * hh] * (dp[nb][2 * hh] - cdot[kk]), x1 = pr[nb][2 * hh + 1] * (dp[nb][2 * hh + 1] - cdot[kk + 1]);
                        if (r0 + kk + 1 < p.r && at % 2 == 0) *(unsigned*)((u16*)p.ds + at) = pack_bf16x2(x0, x1);
                        else
                        {
                            store<bf16>(p.ds, at, x0);
                            if (r0 + kk + 1 < p.r) store<bf16>(p.ds, at + 1, x1);
                        }
                    }
        }
        if (p.phase == 1) continue;
        // accumulate: every earlier value is loaded (a pair a load) before the first store. Loads and stores interleaved,
        // the compiler may not move a load of dK past a store to dK, and each pair waited for its own round trip.
        unsigned ok[2][D / 8] = {}, ov[2][D / 8] = {};
        for (int hh = 0; hh < 2; ++hh)
        {
            const int t = t0 + warp * 16 + lane / 4 + 8 * hh;
            if (t >= t1 || !p.accumulate) continue;
            for (int nb = 0; nb < D / 8; ++nb)
            {
                const i64 off = base + (i64)t * D + nb * 8 + 2 * (lane % 4);
                ok[hh][nb] = *(const unsigned*)((const u16*)p.dk + off);
                ov[hh][nb] = *(const unsigned*)((const u16*)p.dv + off);
            }
        }
        for (int hh = 0; hh < 2; ++hh)
        {
            const int t = t0 + warp * 16 + lane / 4 + 8 * hh;
            if (t >= t1) continue;
            for (int nb = 0; nb < D / 8; ++nb)
            {
                const i64 off = base + (i64)t * D + nb * 8 + 2 * (lane % 4);
                float k0 = dk[nb][2 * hh], k1 = dk[nb][2 * hh + 1], v0 = dv[nb][2 * hh], v1 = dv[nb][2 * hh + 1];
                if (p.accumulate)
                {
                    k0 += bf16x2_half(ok[hh][nb], 0); k1 += bf16x2_half(ok[hh][nb], 1);
                    v0 += bf16x2_half(ov[hh][nb], 0); v1 += bf16x2_half(ov[hh][nb], 1);
                }
                *(unsigned*)((u16*)p.dk + off) = pack_bf16x2(k0, k1);
                *(unsigned*)((u16*)p.dv + off) = pack_bf16x2(v0, v1);
            }
        }
    }
    if (p.phase != 0) return;
    __syncthreads();
    for (int k = threadIdx.x; k < p.r; k += blockDim.x) p.cpart[((i64)b * p.groups + g) * hr + col0 + k] = colacc[k];
}

// The compress asks for as many blocks an SM as its shared memory allows (4 at d <= 64, else 2), capping its
// registers; the backward measured slower with a cap (0.294 -> 0.318 ms at B16 H8 n4096 d64 r64 on the H200) and
// keeps the compiler's choice.
#define TLS_INSTANTIATE_MMA(D)                                                                                        \
    extern "C" __global__ void __launch_bounds__(PW * 32, (D) <= 64 ? 4 : 2) ls_projection_compress_mma_d##D(LsProjectionParams p) { ls_projection_compress_mma<D>(p); } \
    extern "C" __global__ void __launch_bounds__(PW * 32) ls_projection_bwd_mma_d##D(LsProjectionParams p) { ls_projection_bwd_mma<D>(p); }

TLS_INSTANTIATE_MMA(16)
TLS_INSTANTIATE_MMA(32)
TLS_INSTANTIATE_MMA(48)
TLS_INSTANTIATE_MMA(64)
TLS_INSTANTIATE_MMA(80)
TLS_INSTANTIATE_MMA(96)
TLS_INSTANTIATE_MMA(112)
TLS_INSTANTIATE_MMA(128)
