// Warp-level tile products on the tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate) for the attention
// kernels: operands are bf16 row-major tiles in shared memory or fp32 accumulator tiles in registers.
//
// Fragment layouts (PTX ISA, mma.m16n8k16): a thread holds rows lane/4 and lane/4 + 8 of a 16-row tile, and
// columns 2·(lane%4) + {0, 1} of every 8-column block of an accumulator: acc[n-block][e], e = 2·half + {0, 1}.
// fp32 values that must enter an mma (probabilities, score gradients) go in as hi + lo bf16 pairs
// (split_bf16x2): two mmas, ~16 significant bits, as accurate as an fp32 CUDA-core kernel.
#pragma once
#include "common/prelude.cuh"

typedef unsigned short u16;

TLS_DEVICE float bf(u16 x) { return to_float(bf16{x}); }

// bf16 row stride in shared memory: 8 extra elements put the 8 rows of every ldmatrix in distinct banks.
#define STRIDE(cols) ((cols) + 8)

// Byte offset of element (row, col) of a [rows][64] bf16 tile in the 128-byte swizzle of the wgmma operands
// (common/wgmma.cuh): the 16-byte chunk c of row r sits at chunk c ^ (r % 8), rows 128 bytes apart, no padding.
TLS_DEVICE int sw128_offset(int row, int col) { return row * 128 + ((((col >> 3) ^ row) & 7) << 4) + (col & 7) * 2; }

// The first 1024-byte boundary of shared memory at or after p: where a swizzled tile must start (the swizzle works on
// address bits 4-9), so a carve-up asks for up to 1024 bytes of slack before its first swizzled tile.
TLS_DEVICE unsigned char* sw128_align(unsigned char* p) { return p + ((1024u - (smem_addr(p) & 1023u)) & 1023u); }

// Element (row, col) of a shared tile: padded rows of STRIDE(D), or (Sw128, D = 64) the 128-byte swizzle.
template <int D, bool Sw128> TLS_DEVICE u16* tile_at(u16* tile, int row, int col) { return Sw128 ? tile + sw128_offset(row, col) / 2 : tile + row * STRIDE(D) + col; }

// rows × D bf16 from global memory into shared memory, 16 bytes per cp.async: row r from element offset off(r) of src
// (off(r) < 0: zeros); with dst2, the same rows of src2 into dst2 (K and V, or Q and dO, share their offsets). Each
// copy works out its own offset, so nothing need be published first. The caller commits and waits.
template <int D, bool Sw128 = false, typename Off>
TLS_DEVICE void load_rows_at(u16* dst, const void* src, int rows, Off off, u16* dst2 = nullptr, const void* src2 = nullptr)
{
    for (int idx = threadIdx.x; idx < rows * (D / 8); idx += blockDim.x)
    {
        const int row = idx / (D / 8), c = (idx % (D / 8)) * 8;
        const i64 o = off(row);
        cp_async_16(tile_at<D, Sw128>(dst, row, c), (const u16*)src + (o < 0 ? 0 : o + c), o < 0 ? 0 : 16);
        if (dst2) cp_async_16(tile_at<D, Sw128>(dst2, row, c), (const u16*)src2 + (o < 0 ? 0 : o + c), o < 0 ? 0 : 16);
    }
}

// load_rows_at with the offsets in an array row_off[rows] (< 0: zeros).
template <int D, bool Sw128 = false>
TLS_DEVICE void load_rows(u16* dst, const void* src, const i64* row_off, int rows)
{
    load_rows_at<D, Sw128>(dst, src, rows, [&](int r) { return row_off[r]; });
}

// Issues `count` shared rows from `n` consecutive rows of a row-major [*, D] bf16 tensor starting at element `first`
// (rows ld elements apart; rows past n are zero), one commit group; the caller waits. Sw128: as load_rows_at.
template <int D, bool Sw128 = false> TLS_DEVICE void issue_consecutive(u16* dst, const void* src, i64 first, int n, int count, int ld = D)
{
    load_rows_at<D, Sw128>(dst, src, count, [&](int r) { return r < n ? first + (i64)r * ld : (i64)-1; });
    cp_async_commit();
}

// issue_consecutive, then waits for the copies (all of this thread's groups) and the block.
template <int D> TLS_DEVICE void load_consecutive(u16* dst, const void* src, i64 first, int n, int count)
{
    issue_consecutive<D>(dst, src, first, n, count);
    cp_async_wait_all();
    __syncthreads();
}

TLS_DEVICE void zero(float acc[][4], int blocks)
{
    for (int nb = 0; nb < blocks; ++nb)
        for (int e = 0; e < 4; ++e) acc[nb][e] = 0.f;
}

// acc[16 × N] += A[16 × K] · B[N × K]ᵀ; A and B row-major bf16 in shared memory (strides in elements).
template <int K, int N>
TLS_DEVICE void mma_abt(float acc[N / 8][4], const u16* A, int sa, const u16* B, int sb)
{
    const int lane = threadIdx.x % 32;
    for (int kc = 0; kc < K / 16; ++kc)
    {
        unsigned a[4];
        ldmatrix_x4(a, A + (lane % 16) * sa + kc * 16 + (lane / 16) * 8);
        for (int np = 0; np < N / 16; ++np)
        {
            unsigned b[4];
            ldmatrix_x4(b, B + (np * 16 + lane % 8 + (lane / 16) * 8) * sb + kc * 16 + ((lane / 8) % 2) * 8);
            mma_bf16_16816(acc[2 * np], a, b, acc[2 * np]);
            mma_bf16_16816(acc[2 * np + 1], a, b + 2, acc[2 * np + 1]);
        }
    }
}

// acc[16 × N] += (hi + lo)[16 × 16] · B[16 rows × N], B row-major bf16 in shared memory: one k-chunk.
template <int N>
TLS_DEVICE void mma_split_chunk(float acc[N / 8][4], const unsigned hi[4], const unsigned lo[4], const u16* B, int sb)
{
    const int lane = threadIdx.x % 32;
    for (int np = 0; np < N / 16; ++np)
    {
        unsigned b[4];
        ldmatrix_x4_trans(b, B + (lane % 8 + ((lane / 8) % 2) * 8) * sb + np * 16 + (lane / 16) * 8);
        // hi before lo into each accumulator (the same sums), the two accumulators interleaved so that no mma waits on the one before
        mma_bf16_16816(acc[2 * np], hi, b, acc[2 * np]);
        mma_bf16_16816(acc[2 * np + 1], hi, b + 2, acc[2 * np + 1]);
        mma_bf16_16816(acc[2 * np], lo, b, acc[2 * np]);
        mma_bf16_16816(acc[2 * np + 1], lo, b + 2, acc[2 * np + 1]);
    }
}

// acc[16 × N] += X[16 × K] · B[K × N]; X fp32 in accumulator layout (registers), B row-major bf16 in shared.
template <int K, int N>
TLS_DEVICE void mma_xb(float acc[N / 8][4], const float x[K / 8][4], const u16* B, int sb)
{
    for (int kc = 0; kc < K / 16; ++kc)
    {
        unsigned hi[4], lo[4];
        split_bf16x2(x[2 * kc][0], x[2 * kc][1], hi[0], lo[0]);
        split_bf16x2(x[2 * kc][2], x[2 * kc][3], hi[1], lo[1]);
        split_bf16x2(x[2 * kc + 1][0], x[2 * kc + 1][1], hi[2], lo[2]);
        split_bf16x2(x[2 * kc + 1][2], x[2 * kc + 1][3], hi[3], lo[3]);
        mma_split_chunk<N>(acc, hi, lo, B + kc * 16 * sb, sb);
    }
}

// acc[16 × N] += X[16 × K] · B[K × N]; X stored as hi and lo bf16 [16][sx] in shared memory.
template <int K, int N>
TLS_DEVICE void mma_sb(float acc[N / 8][4], const u16* Xhi, const u16* Xlo, int sx, const u16* B, int sb)
{
    const int lane = threadIdx.x % 32;
    for (int kc = 0; kc < K / 16; ++kc)
    {
        unsigned hi[4], lo[4];
        int at = (lane % 16) * sx + kc * 16 + (lane / 16) * 8;
        ldmatrix_x4(hi, Xhi + at);
        ldmatrix_x4(lo, Xlo + at);
        mma_split_chunk<N>(acc, hi, lo, B + kc * 16 * sb, sb);
    }
}

// acc[16 × N] += Xᵀ[rows m0..m0+15 of Xᵀ] · B[k × N]: X stored as hi and lo bf16 [k][sx] in shared memory (so
// the product runs over X's rows, k of them, a multiple of 16), B row-major bf16 [k][sb] in shared memory.
template <int N>
TLS_DEVICE void mma_xtb(float acc[N / 8][4], const u16* Xhi, const u16* Xlo, int sx, int m0, int k, const u16* B, int sb)
{
    const int lane = threadIdx.x % 32;
    for (int kc = 0; kc < k / 16; ++kc)
    {
        unsigned hi[4], lo[4];
        int at = (kc * 16 + lane % 8 + (lane / 16) * 8) * sx + m0 + ((lane / 8) % 2) * 8;
        ldmatrix_x4_trans(hi, Xhi + at);
        ldmatrix_x4_trans(lo, Xlo + at);
        mma_split_chunk<N>(acc, hi, lo, B + kc * 16 * sb, sb);
    }
}

// Writes an accumulator-layout [16 × N] fp32 tile as hi and lo bf16 halves into rows row0.. of [*][sx] arrays.
template <int N>
TLS_DEVICE void store_split(const float x[N / 8][4], u16* hi, u16* lo, int sx, int row0)
{
    const int lane = threadIdx.x % 32;
    for (int nb = 0; nb < N / 8; ++nb)
        for (int h = 0; h < 2; ++h)
        {
            int at = (row0 + lane / 4 + 8 * h) * sx + nb * 8 + 2 * (lane % 4);
            split_bf16x2(x[nb][2 * h], x[nb][2 * h + 1], *(unsigned*)(hi + at), *(unsigned*)(lo + at));
        }
}

// Stores row `row` (0..15 of the warp's tile; this thread's half h) of an accumulator tile as bf16, times mul.
template <int N>
TLS_DEVICE void store_row_bf16(u16* dst, const float acc[N / 8][4], int h, float mul)
{
    const int lane = threadIdx.x % 32;
    for (int nb = 0; nb < N / 8; ++nb)
        *(unsigned*)(dst + nb * 8 + 2 * (lane % 4)) = pack_bf16x2(mul * acc[nb][2 * h], mul * acc[nb][2 * h + 1]);
}

// Adds a warp's accumulator tile to fp32 gradients in global memory, atomically (a key is shared by several
// blocks): dst[offs[row0 + r] + c] += mul·acc[r][c] + coef[row0 + r]·vec[c] (coef may be null), for the rows with
// an offset (offs < 0: no such key). Lanes 2q and 2q + 1 trade halves so that each adds 4 consecutive columns of
// one row (the even lane its row lane/4, the odd lane row lane/4 + 8) as one vector reduction.
template <int D>
TLS_DEVICE void add_rows(float* dst, const i64* offs, int row0, const float acc[D / 8][4], float mul, const float* coef, const float* vec)
{
    const int lane = threadIdx.x % 32, odd = lane & 1, row = row0 + lane / 4 + 8 * odd;
    const i64 off = offs[row];
    const float cf = coef ? coef[row] : 0.f;
    for (int nb = 0; nb < D / 8; ++nb)
    {
        // even lanes give their row-(lane/4 + 8) pair, odd lanes their row-lane/4 pair
        float s0 = __shfl_xor_sync(0xffffffffu, odd ? acc[nb][0] : acc[nb][2], 1);
        float s1 = __shfl_xor_sync(0xffffffffu, odd ? acc[nb][1] : acc[nb][3], 1);
        if (off < 0) continue;
        const int c = nb * 8 + 2 * (lane % 4 - odd);
        float x[4] = {odd ? s0 : acc[nb][0], odd ? s1 : acc[nb][1], odd ? acc[nb][2] : s0, odd ? acc[nb][3] : s1};
        for (int e = 0; e < 4; ++e) x[e] = mul * x[e] + (coef ? cf * vec[c + e] : 0.f);
        atomic_add4(dst + off + c, x[0], x[1], x[2], x[3]);
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

// One step of the online softmax for half h of a warp's score tile s[16 × N] (−inf = no key), the scale c (log2 e
// times the scores' own scale) folded into the exponent: turns s into 2^(s·c − m·c) for the new running max m of the unscaled scores, rescales the
// output accumulator o[16 × D] and the per-thread partial row sum l (the 4 lanes of a row share m, so their partial
// sums add at the end).
template <int N, int D>
TLS_DEVICE void online_softmax(float s[N / 8][4], float o[D / 8][4], float& m, float& l, int h, float c)
{
    float mx = -TLS_INF;
    for (int nb = 0; nb < N / 8; ++nb) mx = fmaxf(mx, fmaxf(s[nb][2 * h], s[nb][2 * h + 1]));
    const float mnew = fmaxf(m, quad_max(mx));
    const float base = mnew == -TLS_INF ? 0.f : mnew * c;  // no key yet: every exponential below is 0
    const float corr = fast_exp2(fmaf(m, c, -base));
    float sum = 0.f;
    for (int nb = 0; nb < N / 8; ++nb)
        for (int e = 2 * h; e < 2 * h + 2; ++e) { s[nb][e] = fast_exp2(fmaf(s[nb][e], c, -base)); sum += s[nb][e]; }
    for (int nb = 0; nb < D / 8; ++nb) { o[nb][2 * h] *= corr; o[nb][2 * h + 1] *= corr; }
    m = mnew;
    l = l * corr + sum;
}

// One key tile of a forward: scores s[16 × N] (−inf = no key) become probabilities under the running max of each
// row, and o += P·V with V [N rows × D] row-major bf16 in shared memory. sl2 = σ·log2 e (s unscaled; the caller
// passes σ·m to store_softmax_rows), or log2 e (s already the natural-log score): each probability is one FFMA and
// one ex2 (2^(s·sl2 − m·sl2)); m[] stays in the units of s. The backwards recompute P the same way.
template <int N, int D>
TLS_DEVICE void attend_tile(float s[N / 8][4], float o[D / 8][4], float m[2], float l[2], const u16* V, float sl2)
{
    online_softmax<N, D>(s, o, m[0], l[0], 0, sl2);
    online_softmax<N, D>(s, o, m[1], l[1], 1, sl2);
    mma_xb<N, D>(o, s, V, STRIDE(D));
}

// The end of a forward: writes this warp's rows of O = o / l (l: the per-thread partial sums) and the
// log-sum-exp, for rows < nq of the block; a row where keep(row) is false (a padded query) gets zeros.
// out and lse point at the block's first query; out's rows are ld elements apart.
template <int D, typename Keep>
TLS_DEVICE void store_softmax_rows(u16* out, float* lse, int nq, const float o[D / 8][4], const float m[2], const float l[2], Keep keep, int ld = D)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int h = 0; h < 2; ++h)
    {
        float sum = quad_sum(l[h]);
        int qi = warp * 16 + lane / 4 + 8 * h;
        if (qi >= nq) continue;
        bool ok = keep(qi) && sum > 0.f;
        store_row_bf16<D>(out + (i64)qi * ld, o, h, ok ? 1.f / sum : 0.f);
        if (lane % 4 == 0) lse[qi] = ok ? m[h] + logf(sum) : 0.f;
    }
}

// The start of a backward, per row of this thread: D_i = dO_i·O_i and the log-sum-exp, +inf where the row takes
// no part (past nq, or keep(row) false), so its probabilities are 0. o and lse_in point at the block's first query
// (o's rows ld elements apart).
// dout(qi, c): the output gradient's element c of row qi (from shared or global memory).
template <int D, typename Keep, typename DOut>
TLS_DEVICE void backward_rows(const void* o, const float* lse_in, DOut dout, int nq, Keep keep, float lse[2], float dd[2], int ld = D)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int h = 0; h < 2; ++h)
    {
        int qi = warp * 16 + lane / 4 + 8 * h;
        bool ok = qi < nq && keep(qi);
        float a = 0.f;
        if (ok)
            for (int c = lane % 4; c < D; c += 4) a += load<bf16>(o, (i64)qi * ld + c) * dout(qi, c);
        dd[h] = quad_sum(a);
        lse[h] = ok ? lse_in[qi] : TLS_INF;
    }
}
