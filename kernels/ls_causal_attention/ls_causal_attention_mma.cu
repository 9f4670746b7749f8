// Causal Long-Short attention in bf16 on the tensor cores (mma.sync m16n8k16, fp32 accumulation): the same math,
// key sets and outputs as ls_causal_attention.cu (see there and reference section 3).
//
// A block owns qb = 16·warps ≤ 64 queries: of ONE projection chunk (cpb = 1; warps = min(4, ⌈l/16⌉)), or of
// cpb whole chunks when l is a multiple of 16 below 64 (qb = cpb·l: at the enwik8 shape l = 16, four chunks a
// block share every key tile they load). The compressed keys, then the window positions, stream through shared
// memory KT = 64 at a time. Content scores Q·Kᵀ, Q·K̄ᵀ and Q·Rcᵀ (the compressed key is K̄ + Rc, two mmas) are
// mmas on the bf16 inputs as given. The Rc row of (query i, compressed key t) is ncmp(i) − 1 − t: a compressed
// tile holds the rows ncmp − 1 − t0 − n for n < KT + ncmp − ncmp0 (ncmp: the block's last chunk), and the warp
// whose chunk sees ncmp − s keys reads them from row s on (its 16 queries lie in one chunk). The relative term
// σq_i·R_{i−j} is an mma of the warp's 16 queries against the 16 + KT − 1 R rows its (query, key) pairs can need,
// gathered along the diagonal i − j through shared memory; in the backward the score gradients are scattered onto
// the same diagonals, so dQ += dS_R·R and dR += dS_Rᵀ·Q are mmas too.
// Probabilities and score gradients enter mmas as hi + lo bf16 pairs (mma_tiles.cuh).
#include "ls_causal_attention/ls_causal_attention.cuh"
#include "common/mma_tiles.cuh"

#define KT 64
#define RW (KT + 16)       // R rows one warp's 16 queries need per window tile (16 + KT − 1, padded)
#define QR_STRIDE (RW + 4)
#define SRS(qb) STRIDE((qb) + KT)  // the backward's block-wide dS-on-diagonals rows: one column per relative row

struct Smem
{
    i64 *rows, *rel_rows;     // per key: K/V row (−1: none); per relative row: R or Rc row (−1: none)
    u16 *Qs, *Ks, *Vs, *Rs;
    u16* UV;                  // [16][STRIDE(D)] bf16: row 0 u, row 1 v, the rest 0 (the B tile of the u·k, v·R mmas)
    float *u, *vb, *ub, *vr;  // biases; u·k_j per key, v·R_δ per relative row
    float* QR;                // per warp [16][QR_STRIDE]: q·R before the diagonal gather
};

// Shared memory in 16-byte pieces: take() carves one, piece() counts it (for the exported sizes below).
__host__ __device__ constexpr int piece(int n, int size) { return (n * size + 15) / 16 * 16; }

template <typename X> TLS_DEVICE X* take(unsigned char*& at, int n)
{
    X* r = (X*)at;
    at += piece(n, (int)sizeof(X));
    return r;
}

template <int D> TLS_DEVICE Smem carve_common(unsigned char*& at, int qb)
{
    Smem s;
    s.rows = take<i64>(at, KT); s.rel_rows = take<i64>(at, qb + KT);
    s.Qs = take<u16>(at, qb * STRIDE(D)); s.Ks = take<u16>(at, KT * STRIDE(D)); s.Vs = take<u16>(at, KT * STRIDE(D));
    s.Rs = take<u16>(at, (qb + KT) * STRIDE(D)); s.UV = take<u16>(at, 16 * STRIDE(D));
    s.u = take<float>(at, D); s.vb = take<float>(at, D); s.ub = take<float>(at, KT); s.vr = take<float>(at, qb + KT);
    s.QR = take<float>(at, qb * QR_STRIDE);
    return s;
}

// Bytes of carve_common and, for the backward, of what ls_causal_attention_bwd_mma takes after it: the same pieces
// in the same order. Exported per (warps, D) for the launcher (one source): index (qb / 16 − 1)·8 + D / 16 − 1.
__host__ __device__ constexpr int smem_bytes(int D, int qb, bool backward)
{
    int common = piece(KT, 8) + piece(qb + KT, 8) + piece(qb * STRIDE(D), 2) + 2 * piece(KT * STRIDE(D), 2) + piece((qb + KT) * STRIDE(D), 2) + piece(16 * STRIDE(D), 2)
        + 2 * piece(D, 4) + piece(KT, 4) + piece(qb + KT, 4) + piece(qb * QR_STRIDE, 4);
    if (!backward) return common;
    // The backward's SR arrays start where QR starts (QR is consumed in logits before SR is written), and P and dS
    // share one hi + lo pair: under 113 KB at qb 64, d 64, so two blocks fit an SM.
    const int sr = 2 * piece(qb * SRS(qb), 2), qr = piece(qb * QR_STRIDE, 4);
    return common - qr + (sr > qr ? sr : qr) + piece(qb * STRIDE(D), 2) + 2 * piece(qb * STRIDE(KT), 2)
        + piece(KT, 4) + piece(qb + KT, 4) + 2 * piece(D, 4);
}

#define TLS_SMEM_ROW(bwd, qb) smem_bytes(16, qb, bwd), smem_bytes(32, qb, bwd), smem_bytes(48, qb, bwd), smem_bytes(64, qb, bwd), \
    smem_bytes(80, qb, bwd), smem_bytes(96, qb, bwd), smem_bytes(112, qb, bwd), smem_bytes(128, qb, bwd)
TLS_EXPORT_TABLE(ls_causal_attention_fwd_mma_smem, 32, TLS_SMEM_ROW(false, 16), TLS_SMEM_ROW(false, 32), TLS_SMEM_ROW(false, 48), TLS_SMEM_ROW(false, 64))
TLS_EXPORT_TABLE(ls_causal_attention_bwd_mma_smem, 32, TLS_SMEM_ROW(true, 16), TLS_SMEM_ROW(true, 32), TLS_SMEM_ROW(true, 48), TLS_SMEM_ROW(true, 64))
#undef TLS_SMEM_ROW

template <int D> TLS_DEVICE void load_biases(const LsCausalAttentionParams& p, const Block& k, const Smem& s)
{
    for (int c = threadIdx.x; c < D; c += blockDim.x)
    {
        s.u[c] = load<bf16>(p.u, (i64)k.h * D + c);
        s.vb[c] = load<bf16>(p.vb, (i64)k.h * D + c);
    }
    for (int i = threadIdx.x; i < 16 * STRIDE(D); i += blockDim.x)
    {
        const int row = i / STRIDE(D), c = i % STRIDE(D);
        s.UV[i] = row < 2 && c < D ? ((const u16*)(row == 0 ? p.u : p.vb))[(i64)k.h * D + c] : (u16)0;
    }
}

// Shift of this warp's compressed-key Rc rows in a compressed tile: ncmp − ncmp(warp's chunk) (0 when cpb = 1).
TLS_DEVICE int rc_shift(const LsCausalAttentionParams& p, const Block& k, int warp)
{
    return k.ncmp - ncmp_of(p, min(k.q0 + 16 * warp, k.q0 + k.nq - 1));
}

// Tile t0 of the compressed keys (window = false: K̄, V̄ and the Rc rows above) or of the window positions (K, V
// and the R rows of δ = q0 − (jlo + t0) − KT + 1 + row, with u·k_j and v·R_δ). Returns, block-uniformly, whether
// the tile has any key.
template <int D>
TLS_DEVICE bool load_tile(const LsCausalAttentionParams& p, const Block& k, bool window, int t0, int qb, const Smem& s)
{
    const int nrel = window ? qb + KT : KT + k.ncmp - k.ncmp0;
    for (int i = threadIdx.x; i < nrel; i += blockDim.x)
    {
        int t = t0 + i;
        if (i < KT)
            s.rows[i] = !window ? (t < k.ncmp ? k.cbase + (i64)t * D : -1)
                      : (t < k.nwin && is_token(p, k.b, k.jlo + t) ? k.kbase + (i64)(p.P + k.jlo + t) * D : -1);
        int delta = k.q0 - (k.jlo + t0) - KT + 1 + i;
        s.rel_rows[i] = !window ? (t < k.ncmp ? ((i64)k.h * p.nc + k.ncmp - 1 - t) * D : -1)
                      : (delta >= 0 && delta < p.w ? ((i64)k.h * p.w + delta) * D : -1);
    }
    __syncthreads();
    load_rows<D>(s.Ks, window ? p.k : p.kc, s.rows, KT);
    load_rows<D>(s.Vs, window ? p.v : p.vc, s.rows, KT);
    load_rows<D>(s.Rs, window ? p.rel : p.relc, s.rel_rows, nrel);
    cp_async_commit();
    bool any = false;
    for (int i = threadIdx.x; i < KT; i += blockDim.x) any |= s.rows[i] >= 0;
    cp_async_wait_all();
    if (!__syncthreads_or(any)) return false;
    if (!window) return true;
    // u·k_j and v·R_δ: each 16-row tile of K (then R) times UVᵀ on the tensor cores; column 0 is u·x, column 1 v·x.
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarp = blockDim.x / 32;
    for (int rt = warp; rt < (KT + nrel) / 16; rt += nwarp)
    {
        const bool key = rt < KT / 16;
        float a[2][4] = {};
        mma_abt<D, 16>(a, key ? s.Ks + rt * 16 * STRIDE(D) : s.Rs + (rt - KT / 16) * 16 * STRIDE(D), STRIDE(D), s.UV, STRIDE(D));
        if (lane % 4 == 0)
            for (int h = 0; h < 2; ++h)
            {
                const int row = rt * 16 + lane / 4 + 8 * h;
                if (key) s.ub[row] = a[0][2 * h]; else s.vr[row - KT] = a[0][2 * h + 1];
            }
    }
    __syncthreads();
    return true;
}

// Logits of this warp's 16 queries against the tile's keys, −inf outside each query's key set.
template <int D>
TLS_DEVICE void logits(const LsCausalAttentionParams& p, const Block& k, bool window, int t0, const Smem& s, float sc[KT / 8][4])
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const u16* Qw = s.Qs + warp * 16 * STRIDE(D);
    zero(sc, KT / 8);
    mma_abt<D, KT>(sc, Qw, STRIDE(D), s.Ks, STRIDE(D));
    if (!window)
    {
        const int sh = rc_shift(p, k, warp);
        mma_abt<D, KT>(sc, Qw, STRIDE(D), s.Rs + sh * STRIDE(D), STRIDE(D));
        for (int nb = 0; nb < KT / 8; ++nb)
            for (int e = 0; e < 4; ++e)
            {
                int kk = nb * 8 + 2 * (lane % 4) + e % 2;
                sc[nb][e] = s.rows[kk] >= 0 && t0 + kk < k.ncmp - sh ? p.scale * sc[nb][e] : -TLS_INF;
            }
        return;
    }
    // Warp row `row` and tile key kk have δ = i − j at relative row warp·16 + row + KT − 1 − kk of the block.
    float* QR = s.QR + warp * 16 * QR_STRIDE;
    {
        float qr[RW / 8][4] = {};
        mma_abt<D, RW>(qr, Qw, STRIDE(D), s.Rs + warp * 16 * STRIDE(D), STRIDE(D));
        for (int nb = 0; nb < RW / 8; ++nb)
            for (int e = 0; e < 4; ++e) QR[(lane / 4 + 8 * (e / 2)) * QR_STRIDE + nb * 8 + 2 * (lane % 4) + e % 2] = qr[nb][e];
        __syncwarp();
    }
    for (int nb = 0; nb < KT / 8; ++nb)
        for (int e = 0; e < 4; ++e)
        {
            int kk = nb * 8 + 2 * (lane % 4) + e % 2, row = lane / 4 + 8 * (e / 2), idx = row + KT - 1 - kk;
            int i = k.q0 + warp * 16 + row, j = k.jlo + t0 + kk;
            bool ok = s.rows[kk] >= 0 && j <= i && j > i - p.w;
            sc[nb][e] = ok ? p.scale * (sc[nb][e] + QR[row * QR_STRIDE + idx]) + s.ub[kk] + s.vr[warp * 16 + idx] : -TLS_INF;
        }
}

template <int D> __device__ void ls_causal_attention_fwd_mma(const LsCausalAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const int qb = 16 * (blockDim.x / 32);
    const Block k = block_of(p, qb);
    if (k.nq <= 0) return;
    unsigned char* at = smem;
    const Smem s = carve_common<D>(at, qb);
    load_biases<D>(p, k, s);
    load_consecutive<D>(s.Qs, p.q, k.qbase + (i64)k.q0 * D, k.nq, qb);

    float o[D / 8][4] = {};
    float m[2] = {-TLS_INF, -TLS_INF}, l[2] = {0.f, 0.f};
    for (int phase = 0; phase < 2; ++phase)
    {
        const bool window = phase == 1;
        for (int t0 = 0; t0 < (window ? k.nwin : k.ncmp); t0 += KT)
        {
            __syncthreads();
            if (!load_tile<D>(p, k, window, t0, qb, s)) continue;
            float sc[KT / 8][4];
            logits<D>(p, k, window, t0, s, sc);
            attend_tile<KT, D>(sc, o, m, l, s.Vs, TLS_LOG2E);  // sc is the natural-log score: e^(sc − m) = 2^(sc·log2 e − m·log2 e)
        }
    }
    store_softmax_rows<D>((u16*)p.o + k.qbase + (i64)k.q0 * D, p.lse + (i64)k.bh * p.L + k.q0, k.nq, o, m, l,
                          [&](int qi) { return is_token(p, k.b, k.q0 + qi); });
}

// Adds a warp's accumulator tile to rows off[h] (this thread's two rows; < 0: none) of fp32 gradients, atomically.
template <int D> TLS_DEVICE void add_rows_at(float* dst, const i64 off[2], const float acc[D / 8][4])
{
    const int lane = threadIdx.x % 32;
    for (int h = 0; h < 2; ++h)
        if (off[h] >= 0)
            for (int nb = 0; nb < D / 8; ++nb)
                for (int e = 0; e < 2; ++e) atomicAdd(dst + off[h] + nb * 8 + 2 * (lane % 4) + e, acc[nb][2 * h + e]);
}

// dR of relative rows mt·16.. of a window tile: σ·(dS on the diagonals)ᵀ·Q over the block's queries + (Σ dS)·v.
template <int D>
TLS_DEVICE void rel_grad(float g[D / 8][4], int mt, const u16* SRh, const u16* SRl, int qb, const Smem& s, const float* dssum, float scale)
{
    const int lane = threadIdx.x % 32;
    zero(g, D / 8);
    mma_xtb<D>(g, SRh, SRl, SRS(qb), mt * 16, qb, s.Qs, STRIDE(D));
    for (int nb = 0; nb < D / 8; ++nb)
        for (int e = 0; e < 4; ++e)
            g[nb][e] = scale * g[nb][e] + dssum[mt * 16 + lane / 4 + 8 * (e / 2)] * s.vb[nb * 8 + 2 * (lane % 4) + e % 2];
}

// dS = P ∘ (dP − D), D_i = dO_i·O_i; dQ = σ·Σ dS·(key + R or Rc) stays in registers. Key-side gradients, from
// P and dS in shared memory, go to the fp32 accumulators atomically (4 columns a reduction, add_rows): dK += σ·dSᵀQ + (Σ_i dS)·u, du += (Σ_i dS)·k,
// dV += PᵀdO, dR_δ += σ·dS_Rᵀ·Q + (Σ_δ dS)·v, dv_bias += (Σ_δ dS)·R_δ, dK̄ = dRc = σ·dSᵀQ, dV̄ = PᵀdO.
// dR: a window tile's dS go onto the diagonals of one block-wide [qb][qb + KT] array (column = relative row), so
// dR of all qb + KT rows is one product over the block's queries with the v term folded in. The next window tile
// sees relative row n of this one as row n + KT: rows qb.. are final (added to drel), rows < qb stay in each
// warp's registers (warp w: rows 16w..) and are added with the next tile's rows 16w + KT.. (one atomic per
// element where the two tiles meet, instead of one per tile).
// Σ_i dS per window key is a shuffle sum of the warps' fp32 dS; Σ_δ dS per relative row a column sum of that array.
template <int D> __device__ void ls_causal_attention_bwd_mma(const LsCausalAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const int nwarp = blockDim.x / 32, qb = 16 * nwarp, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const Block k = block_of(p, qb);
    if (k.nq <= 0) return;
    unsigned char* at = smem;
    const Smem s = carve_common<D>(at, qb);
    at = (unsigned char*)s.QR;                // SR overlays QR (a barrier parts logits' QR reads from SR's writes)
    u16* SRh = take<u16>(at, qb * SRS(qb));  // dS on the δ diagonals, block-wide (see above)
    u16* SRl = take<u16>(at, qb * SRS(qb));
    at = (unsigned char*)s.QR + max(piece(qb * QR_STRIDE, 4), 2 * piece(qb * SRS(qb), 2));
    u16* dOs = take<u16>(at, qb * STRIDE(D));
    u16* Xh = take<u16>(at, qb * STRIDE(KT));  // P, then dS, as hi + lo bf16 (dV = PᵀdO is done before dS is stored)
    u16* Xl = take<u16>(at, qb * STRIDE(KT));
    float* dsum = take<float>(at, KT);       // Σ_i dS per window key
    float* dssum = take<float>(at, qb + KT); // Σ dS per relative row
    float* dU = take<float>(at, D);
    float* dVB = take<float>(at, D);
    load_biases<D>(p, k, s);
    for (int c = threadIdx.x; c < D; c += blockDim.x) { dU[c] = 0.f; dVB[c] = 0.f; }
    load_consecutive<D>(s.Qs, p.q, k.qbase + (i64)k.q0 * D, k.nq, qb);
    load_consecutive<D>(dOs, p.dout, k.qbase + (i64)k.q0 * D, k.nq, qb);

    float lse[2], dd[2];
    backward_rows<D>((const u16*)p.o + k.qbase + (i64)k.q0 * D, p.lse + (i64)k.bh * p.L + k.q0, [&](int qi, int c) { return bf(dOs[qi * STRIDE(D) + c]); }, k.nq,
                     [&](int qi) { return is_token(p, k.b, k.q0 + qi); }, lse, dd);

    const float lse2[2] = {lse[0] * TLS_LOG2E, lse[1] * TLS_LOG2E};
    float dq[D / 8][4] = {};
    float carry[D / 8][4];  // dR of the previous window tile's relative rows 16·warp.. (see above)
    i64 carry_off[2] = {-1, -1};
    bool carried = false;
    const u16* Qw = s.Qs + warp * 16 * STRIDE(D);
    for (int phase = 0; phase < 2; ++phase)
    {
        const bool window = phase == 1;
        for (int t0 = 0; t0 < (window ? k.nwin : k.ncmp); t0 += KT)
        {
            __syncthreads();
            if (!load_tile<D>(p, k, window, t0, qb, s))
            {
                if (carried) add_rows_at<D>(p.drel, carry_off, carry);  // the next tile does not meet these rows
                carried = false;
                continue;
            }
            float pr[KT / 8][4], ds[KT / 8][4] = {};
            logits<D>(p, k, window, t0, s, pr);
            if (window) __syncthreads();  // every warp's QR reads are done: SR overlays QR
            mma_abt<D, KT>(ds, dOs + warp * 16 * STRIDE(D), STRIDE(D), s.Vs, STRIDE(D));
            for (int nb = 0; nb < KT / 8; ++nb)
                for (int e = 0; e < 4; ++e)
                {
                    float x = fast_exp2(fmaf(pr[nb][e], TLS_LOG2E, -lse2[e / 2]));  // as the forward; −inf logits and +inf lse rows give 0
                    pr[nb][e] = x;
                    ds[nb][e] = x * (ds[nb][e] - dd[e / 2]);
                }
            mma_xb<KT, D>(dq, ds, s.Ks, STRIDE(D));
            if (!window) mma_xb<KT, D>(dq, ds, s.Rs + rc_shift(p, k, warp) * STRIDE(D), STRIDE(D));
            else
            {
                // This warp's rows 16·warp.. of the diagonals: query row `row`, key kk at column 16·warp + row + KT − 1 − kk.
                u16 *srh = SRh + warp * 16 * SRS(qb), *srl = SRl + warp * 16 * SRS(qb);
                for (int i = lane; i < 16 * SRS(qb) / 8; i += 32) { ((uint4*)srh)[i] = u4(0u, 0u, 0u, 0u); ((uint4*)srl)[i] = u4(0u, 0u, 0u, 0u); }
                __syncwarp();
                for (int nb = 0; nb < KT / 8; ++nb)
                    for (int e = 0; e < 4; ++e)
                    {
                        int kk = nb * 8 + 2 * (lane % 4) + e % 2, row = lane / 4 + 8 * (e / 2), col = warp * 16 + row + KT - 1 - kk;
                        bf16 hi = from_float<bf16>(ds[nb][e]);
                        srh[row * SRS(qb) + col] = hi.bits;
                        srl[row * SRS(qb) + col] = from_float<bf16>(ds[nb][e] - to_float(hi)).bits;
                    }
                __syncwarp();
                mma_sb<RW, D>(dq, srh + warp * 16, srl + warp * 16, SRS(qb), s.Rs + warp * 16 * STRIDE(D), STRIDE(D));
            }
            store_split<KT>(pr, Xh, Xl, STRIDE(KT), warp * 16);
            __syncthreads();
            if (window)
            {
                // Σ dS over this warp's 16 rows per key (its two rows, then the 8 lane groups), into Vs (read by dP only)
                float* part = (float*)s.Vs;
                for (int nb = 0; nb < KT / 8; ++nb)
                    for (int e = 0; e < 2; ++e)
                    {
                        float a = ds[nb][e] + ds[nb][e + 2];
                        a += __shfl_xor_sync(0xffffffffu, a, 4);
                        a += __shfl_xor_sync(0xffffffffu, a, 8);
                        a += __shfl_xor_sync(0xffffffffu, a, 16);
                        if (lane < 4) part[warp * KT + nb * 8 + 2 * lane + e] = a;
                    }
            }
            for (int mt = warp; mt < KT / 16; mt += nwarp)
            {
                float g[D / 8][4] = {};
                mma_xtb<D>(g, Xh, Xl, STRIDE(KT), mt * 16, qb, dOs, STRIDE(D));
                add_rows<D>(window ? p.dv : p.dvc, s.rows, mt * 16, g, 1.f, nullptr, nullptr);
            }
            __syncthreads();  // P's readers are done: dS takes its place
            store_split<KT>(ds, Xh, Xl, STRIDE(KT), warp * 16);
            __syncthreads();
            if (window)
            {
                const float* part = (const float*)s.Vs;
                for (int kk = threadIdx.x; kk < KT; kk += blockDim.x)
                {
                    float a = 0.f;
                    for (int w = 0; w < nwarp; ++w) a += part[w * KT + kk];
                    dsum[kk] = a;
                }
                // Column idx of the diagonals holds block row r's key kk = r + KT − 1 − idx: rows
                // idx − KT + 1 … idx only (the rest are the zeros the warps wrote).
                for (int idx = threadIdx.x; idx < qb + KT; idx += blockDim.x)
                {
                    float a = 0.f;
                    for (int row = max(0, idx - KT + 1); row <= min(qb - 1, idx); ++row) a += bf(SRh[row * SRS(qb) + idx]) + bf(SRl[row * SRS(qb) + idx]);
                    dssum[idx] = a;
                }
                __syncthreads();
                // du += Σ dsum·k (64 terms) and dv_bias += Σ dssum·R (qb + KT terms) on separate threads
                for (int i = threadIdx.x; i < 2 * D; i += blockDim.x)
                {
                    const int c = i % D;
                    float a = 0.f;
                    if (i < D) { for (int kk = 0; kk < KT; ++kk) a += dsum[kk] * bf(s.Ks[kk * STRIDE(D) + c]); dU[c] += a; }
                    else { for (int row = 0; row < qb + KT; ++row) a += dssum[row] * bf(s.Rs[row * STRIDE(D) + c]); dVB[c] += a; }
                }
                float g[D / 8][4];
                for (int mt = nwarp + warp; mt < KT / 16; mt += nwarp)  // final rows no warp carries (qb < KT)
                {
                    rel_grad<D>(g, mt, SRh, SRl, qb, s, dssum, p.scale);
                    add_rows<D>(p.drel, s.rel_rows, mt * 16, g, 1.f, nullptr, nullptr);
                }
                rel_grad<D>(g, warp + KT / 16, SRh, SRl, qb, s, dssum, p.scale);  // final: + what the last tile carried
                if (carried)
                    for (int nb = 0; nb < D / 8; ++nb)
                        for (int e = 0; e < 4; ++e) g[nb][e] += carry[nb][e];
                add_rows<D>(p.drel, s.rel_rows, (warp + KT / 16) * 16, g, 1.f, nullptr, nullptr);
                rel_grad<D>(carry, warp, SRh, SRl, qb, s, dssum, p.scale);
                for (int h = 0; h < 2; ++h) carry_off[h] = s.rel_rows[warp * 16 + lane / 4 + 8 * h];
                carried = true;
            }
            for (int mt = warp; mt < KT / 16; mt += nwarp)
            {
                float g[D / 8][4] = {};
                mma_xtb<D>(g, Xh, Xl, STRIDE(KT), mt * 16, qb, s.Qs, STRIDE(D));
                if (window) add_rows<D>(p.dk, s.rows, mt * 16, g, p.scale, dsum, s.u);
                else
                {
                    add_rows<D>(p.dkc, s.rows, mt * 16, g, p.scale, nullptr, nullptr);
                    if (p.cpb == 1) add_rows<D>(p.drelc, s.rel_rows, mt * 16, g, p.scale, nullptr, nullptr);
                }
            }
            // Several chunks: each warp's queries put dRc on their own shifted rows.
            if (!window && p.cpb > 1)
                for (int mt = 0; mt < KT / 16; ++mt)
                {
                    float g[D / 8][4] = {};
                    mma_xtb<D>(g, Xh + warp * 16 * STRIDE(KT), Xl + warp * 16 * STRIDE(KT), STRIDE(KT), mt * 16, 16, Qw, STRIDE(D));
                    add_rows<D>(p.drelc, s.rel_rows, mt * 16 + rc_shift(p, k, warp), g, p.scale, nullptr, nullptr);
                }
        }
    }
    if (carried) add_rows_at<D>(p.drel, carry_off, carry);
    __syncthreads();
    for (int c = threadIdx.x; c < D; c += blockDim.x)
    {
        atomicAdd(p.du + (i64)k.h * D + c, dU[c]);
        atomicAdd(p.dvb + (i64)k.h * D + c, dVB[c]);
    }
    for (int h = 0; h < 2; ++h)
    {
        int qi = warp * 16 + lane / 4 + 8 * h, i = k.q0 + qi;
        if (qi < k.nq) store_row_bf16<D>((u16*)p.dq + k.qbase + (i64)i * D, dq, h, lse[h] == TLS_INF ? 0.f : p.scale);
    }
}

// Up to 4 warps: the launcher picks the count from the chunk length.
#define TLS_INSTANTIATE_MMA(D)                                                                                       \
    extern "C" __global__ void __launch_bounds__(128) ls_causal_attention_fwd_mma_d##D(LsCausalAttentionParams p) { ls_causal_attention_fwd_mma<D>(p); } \
    extern "C" __global__ void __launch_bounds__(128) ls_causal_attention_bwd_mma_d##D(LsCausalAttentionParams p) { ls_causal_attention_bwd_mma<D>(p); }

TLS_INSTANTIATE_MMA(16)
TLS_INSTANTIATE_MMA(32)
TLS_INSTANTIATE_MMA(48)
TLS_INSTANTIATE_MMA(64)
TLS_INSTANTIATE_MMA(80)
TLS_INSTANTIATE_MMA(96)
TLS_INSTANTIATE_MMA(112)
TLS_INSTANTIATE_MMA(128)
