// Dynamic projection of the bidirectional LS attention (reference section 1.3): P = softmax over the
// sequence axis of the scores S = X·Wp + bp (padding excluded), then K̄ = P·K and V̄ = P·V per head.
// P is never stored: the forward keeps each column's max and sum, the backward recomputes P from them.
// A column with no token at all gives P = 0 (zero landmarks), not NaN.
// Reference: src/TransformerLS/Ops/LsProjection/LsProjection.Reference.cs.
//
// Every sum over the sequence is two-stage and in a fixed order, so the bits never depend on scheduling: the
// launcher cuts the sequence into G groups of group_tokens consecutive tokens; stage 1 reduces each group (one
// block per group, column tile and batch or head), stage 2 adds the groups' partials in group order. No atomics.
// Tile ownership (compress and backward, 256 threads as 16 x 16): thread (ty, tx) owns rows ty·4 + i (i < 4) and
// columns tx + 16·j of a 64 x 64 output tile, so each shared load feeds four FMAs.
#include "ls_projection/ls_projection.cuh"

#define TT 64   // output tile: tokens (backward), ranks, columns
#define TCH 32  // tokens per step of the forward's compress
#define CCH 32  // columns per step of the backward's dot products
#define NT 256
TLS_EXPORT(ls_projection_threads, NT)
TLS_EXPORT(ls_projection_stats_columns, 64)  // columns per stats block (32 x 8 threads, a pair each)
// The backward's dynamic shared memory: Σ P·dP of the block's group, one double per rank (the tiles are static).
TLS_EXPORT(ls_projection_bwd_smem_per_r, 8)

// Dot products of the backward: double for fp32, where dS = P·(dP − Σ P·dP) cancels and dP's rounding would dominate
// dS; float for bf16, where the output's own rounding is 2^16 times larger.
template <typename T> struct Acc { typedef float type; };
template <> struct Acc<float> { typedef double type; };

// P of token t (< n), column col: exp(s − max) / sum; 0 for padding and for a column without tokens.
// fp32 takes exp in double: expf's 2-ulp error, times (dP − Σ P·dP) in the backward, was the largest error term.
template <typename T> TLS_DEVICE float prob(const LsProjectionParams& p, int b, int t, int col)
{
    const int hr = p.H * p.r;
    const float z = p.colsum[(i64)b * hr + col];
    if (!(z > 0.f) || !proj_token(p, b, t)) return 0.f;
    const float x = load<T>(p.s, ((i64)b * p.n + t) * hr + col) - p.colmax[(i64)b * hr + col];
    return sizeof(T) == 4 ? (float)(exp((double)x) / z) : expf(x) / z;
}

// Online softmax statistics: (m, s) with s = Σ exp(x − m) absorbs one score, or merges another pair. A is the sum's
// type (Acc<T>: double for fp32, float for bf16, whose P is rounded to 8 bits).
TLS_DEVICE double ex(double x) { return exp(x); }
TLS_DEVICE float ex(float x) { return fast_exp(x); }  // bf16 scores: ex2.approx (rel. error ~2^-22; expf made the stats pass instruction-bound)

template <typename A> TLS_DEVICE void absorb(float& m, A& s, float x)
{
    if (x == -TLS_INF) return;
    if (x > m) { s = s * ex((A)m - (A)x) + (A)1; m = x; }
    else s += ex((A)x - (A)m);
}

template <typename A> TLS_DEVICE void merge(float& m, A& s, float m2, A s2)
{
    if (m2 == -TLS_INF) return;
    if (m2 > m) { s = s * ex((A)m - (A)m2) + s2; m = m2; }
    else s += s2 * ex((A)m2 - (A)m);
}

// Stats stage 1, block (32, 8) = 64 columns (a pair per thread) x token group blockIdx.y x batch blockIdx.z: each
// thread absorbs every 8th token of the group (four loads in flight), then row 0 merges the 8 in order into pmax,
// psum [b][g][c].
template <typename T> __device__ void ls_projection_stats(LsProjectionParams p)
{
    typedef typename Acc<T>::type A;
    __shared__ float sm[8][64];
    __shared__ A ss[8][64];
    const int hr = p.H * p.r, c = blockIdx.x * 64 + 2 * threadIdx.x, g = blockIdx.y, b = blockIdx.z;
    const int t1 = min(p.n, (g + 1) * p.group_tokens);
    float m[2] = {-TLS_INF, -TLS_INF};
    A s[2] = {0, 0};
    auto score = [&](int t, int j) { return c + j < hr && proj_token(p, b, t) ? load<T>(p.s, ((i64)b * p.n + t) * hr + c + j) : -TLS_INF; };
    int t = g * p.group_tokens + threadIdx.y;
    for (; t + 24 < t1; t += 32)
    {
        float x[4][2];
        for (int u = 0; u < 4; ++u)
            for (int j = 0; j < 2; ++j) x[u][j] = score(t + 8 * u, j);
        for (int u = 0; u < 4; ++u)
            for (int j = 0; j < 2; ++j) absorb(m[j], s[j], x[u][j]);
    }
    for (; t < t1; t += 8)
        for (int j = 0; j < 2; ++j) absorb(m[j], s[j], score(t, j));
    for (int j = 0; j < 2; ++j) { sm[threadIdx.y][2 * threadIdx.x + j] = m[j]; ss[threadIdx.y][2 * threadIdx.x + j] = s[j]; }
    __syncthreads();
    if (threadIdx.y != 0) return;
    for (int j = 0; j < 2; ++j)
    {
        if (c + j >= hr) continue;
        for (int y = 1; y < 8; ++y) merge(m[j], s[j], sm[y][2 * threadIdx.x + j], ss[y][2 * threadIdx.x + j]);
        const i64 o = ((i64)b * p.groups + g) * hr + c + j;
        p.pmax[o] = m[j];
        p.psum[o] = (double)s[j];
    }
}

// Stats stage 2, one warp per (b, column): lane l merges groups l, l + 32, … in group order, then the lanes meet in a
// fixed butterfly (so a batch of one with many groups still has 32 threads a column; the same bits every run).
template <typename T> __device__ void ls_projection_stats_sum(LsProjectionParams p)
{
    const int hr = p.H * p.r, lane = threadIdx.x % 32;
    const i64 i = (blockIdx.x * (i64)blockDim.x + threadIdx.x) / 32;
    if (i >= (i64)p.B * hr) return;  // whole warps only
    const i64 b = i / hr, c = i % hr;
    float m = -TLS_INF;
    double s = 0.0;
    for (int g = lane; g < p.groups; g += 32) merge(m, s, p.pmax[(b * p.groups + g) * hr + c], p.psum[(b * p.groups + g) * hr + c]);
    for (int off = 16; off; off >>= 1)
    {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, off);
        const double s2 = __shfl_xor_sync(0xffffffffu, s, off);
        merge(m, s, m2, s2);
    }
    if (lane != 0) return;
    p.colmax[i] = m;
    p.colsum[i] = (float)s;
}

// Compress stage 1, block (group, h, b): the group's partial K̄ = P·K, V̄ = P·V, output tile by output tile
// (ranks r0.., columns c0..), streaming the group's tokens TCH at a time; written to kpart, vpart [g][b][h].
template <typename T> __device__ void ls_projection_compress(LsProjectionParams p)
{
    __shared__ float Ps[TT][TCH + 1];  // P[rank][token]: the +1 keeps the rank-strided writes conflict-free
    __shared__ float Ks[TCH][TT], Vs[TCH][TT];
    const int g = blockIdx.x, h = blockIdx.y, b = blockIdx.z, tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int t0 = g * p.group_tokens, t1 = min(p.n, t0 + p.group_tokens), d = p.d;
    const i64 base = ((i64)b * p.H + h) * p.n * d, out = (((i64)g * p.B + b) * p.H + h) * p.r * d;
    for (int r0 = 0; r0 < p.r; r0 += TT)
        for (int c0 = 0; c0 < d; c0 += TT)
        {
            float ak[4][4] = {}, av[4][4] = {};
            for (int ts = t0; ts < t1; ts += TCH)
            {
                __syncthreads();
                for (int idx = threadIdx.x; idx < TT * TCH; idx += NT)
                {
                    const int kk = idx % TT, t = idx / TT;
                    Ps[kk][t] = r0 + kk < p.r && ts + t < t1 ? prob<T>(p, b, ts + t, h * p.r + r0 + kk) : 0.f;
                }
                for (int idx = threadIdx.x; idx < TCH * TT; idx += NT)
                {
                    const int t = idx / TT, c = idx % TT;
                    const bool in = ts + t < t1 && c0 + c < d;
                    const i64 off = base + (i64)(ts + t) * d + c0 + c;
                    Ks[t][c] = in ? load<T>(p.k, off) : 0.f;
                    Vs[t][c] = in ? load<T>(p.v, off) : 0.f;
                }
                __syncthreads();
#pragma unroll 4
                for (int t = 0; t < TCH; ++t)
                {
                    float a[4], x[4], y[4];
                    for (int i = 0; i < 4; ++i) a[i] = Ps[ty * 4 + i][t];
                    for (int j = 0; j < 4; ++j) { x[j] = Ks[t][tx + 16 * j]; y[j] = Vs[t][tx + 16 * j]; }
                    for (int i = 0; i < 4; ++i)
                        for (int j = 0; j < 4; ++j) { ak[i][j] += a[i] * x[j]; av[i][j] += a[i] * y[j]; }
                }
            }
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j)
                {
                    const int kk = r0 + ty * 4 + i, c = c0 + tx + 16 * j;
                    if (kk < p.r && c < d) { p.kpart[out + (i64)kk * d + c] = ak[i][j]; p.vpart[out + (i64)kk * d + c] = av[i][j]; }
                }
        }
}

// Compress stage 2: K̄, V̄ = the groups' partials added in group order, rounded once.
template <typename T> __device__ void ls_projection_compress_sum(LsProjectionParams p)
{
    sum_group_pair<T>(p.kpart, p.vpart, (i64)p.B * p.H * p.r * p.d, p.groups, p.kbar, p.vbar, p.kbar32, p.vbar32);
}

// Compress stage 2 of the one-pass tensor-core compress (ls_projection_mma.cu), whose partials are relative to their
// group's own max m_g: K̄ = Σ_g exp(m_g − M)·K̄_g / Z, with M, Z the merged statistics (colmax, colsum); a group
// without tokens in the column (m_g = −inf) adds nothing, a column without any gives 0. Block (32, 8): elements
// 4·(blockIdx.x·32 + x) .. + 3 (one column: d is a multiple of 16 on the tensor-core path, so 16-byte loads of both
// partials), slice y adds groups y, y + 8, … in order, then row 0 adds the 8 slices in slice order.
template <typename T> __device__ void ls_projection_compress_sum_scaled(LsProjectionParams p)
{
    __shared__ float4 sk[8][32], sv[8][32];
    const int hr = p.H * p.r, x = threadIdx.x, y = threadIdx.y;
    const i64 per = (i64)p.B * p.H * p.r * p.d, i = 4 * (blockIdx.x * (i64)32 + x);
    const i64 col = i / p.d, b = col / hr, c = col % hr;  // col = b·H·r + h·r + k
    const bool in = i < per;
    const float mx = in ? p.colmax[col] : 0.f, z = in ? p.colsum[col] : 0.f;
    float4 a = {0.f, 0.f, 0.f, 0.f}, v = a;
    if (z > 0.f)
        for (int g = y; g < p.groups; g += 8)
        {
            const float mg = p.pmax[(b * p.groups + g) * hr + c];
            if (mg == -TLS_INF) continue;
            const float f = expf(mg - mx);
            const float4 kg = *(const float4*)(p.kpart + g * per + i), vg = *(const float4*)(p.vpart + g * per + i);
            a.x += f * kg.x; a.y += f * kg.y; a.z += f * kg.z; a.w += f * kg.w;
            v.x += f * vg.x; v.y += f * vg.y; v.z += f * vg.z; v.w += f * vg.w;
        }
    sk[y][x] = a;
    sv[y][x] = v;
    __syncthreads();
    if (y != 0 || !in) return;
    for (int k = 1; k < 8; ++k)
    {
        const float4 ak = sk[k][x], vk = sv[k][x];
        a.x += ak.x; a.y += ak.y; a.z += ak.z; a.w += ak.w;
        v.x += vk.x; v.y += vk.y; v.z += vk.z; v.w += vk.w;
    }
    const float zz = z > 0.f ? z : 1.f;
    const float4 av = {a.x / zz, a.y / zz, a.z / zz, a.w / zz}, vv = {v.x / zz, v.y / zz, v.z / zz, v.w / zz};
    const float ka[4] = {av.x, av.y, av.z, av.w}, va[4] = {vv.x, vv.y, vv.z, vv.w};
    for (int e = 0; e < 4; ++e) { store<T>(p.kbar, i + e, ka[e]); store<T>(p.vbar, i + e, va[e]); }
    if (p.kbar32) { *(float4*)(p.kbar32 + i) = av; *(float4*)(p.vbar32 + i) = vv; }
}

// Backward, block (group, h, b), two launches (phase 0, then phase 1 after ls_projection_coldot):
//   dP[t][k] = K_t·dK̄_k + V_t·dV̄_k, recomputed in both phases, TT tokens x TT ranks at a time;
//   phase 0: the group's Σ_t P·dP per rank (in shared memory, fixed order) into cpart; dK_t (+)= Σ_k P[t][k]·dK̄_k,
//            dV likewise (each token belongs to one group: written directly);
//   phase 1: dS = P ∘ (dP − coldot), the softmax backward over the sequence.
template <typename T> __device__ void ls_projection_bwd(LsProjectionParams p)
{
    typedef typename Acc<T>::type A;
    // Step A: K, V [TT tokens][CCH + 1] and dK̄, dV̄ [TT ranks][CCH + 1]. Step B: P [TT tokens][TT + 1], dK̄, dV̄ [TT ranks][CCH].
    __shared__ float tiles[4 * TT * (CCH + 1)];
    __shared__ double red[16][TT];
    extern __shared__ double colacc[];  // [r]
    const int g = blockIdx.x, h = blockIdx.y, b = blockIdx.z, tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int hr = p.H * p.r, tg = g * p.group_tokens, t1 = min(p.n, tg + p.group_tokens), d = p.d, S = CCH + 1;
    const i64 base = ((i64)b * p.H + h) * p.n * d, lbase = ((i64)b * p.H + h) * p.r * d;
    if (p.phase == 0)
        for (int k = threadIdx.x; k < p.r; k += NT) colacc[k] = 0.0;
    for (int t0 = tg; t0 < t1; t0 += TT)
    {
        for (int r0 = 0; r0 < p.r; r0 += TT)
        {
            float *Ks = tiles, *Vs = Ks + TT * S, *dKs = Vs + TT * S, *dVs = dKs + TT * S;
            A dp[4][4] = {};
            for (int c0 = 0; c0 < d; c0 += CCH)
            {
                __syncthreads();
                for (int idx = threadIdx.x; idx < TT * CCH; idx += NT)
                {
                    const int row = idx / CCH, c = idx % CCH;
                    const bool tin = t0 + row < t1 && c0 + c < d, kin = r0 + row < p.r && c0 + c < d;
                    const i64 to = base + (i64)(t0 + row) * d + c0 + c, ko = lbase + (i64)(r0 + row) * d + c0 + c;
                    Ks[row * S + c] = tin ? load<T>(p.k, to) : 0.f;
                    Vs[row * S + c] = tin ? load<T>(p.v, to) : 0.f;
                    dKs[row * S + c] = kin ? load<T>(p.dkbar, ko) : 0.f;
                    dVs[row * S + c] = kin ? load<T>(p.dvbar, ko) : 0.f;
                }
                __syncthreads();
#pragma unroll 4
                for (int c = 0; c < CCH; ++c)
                {
                    float kx[4], vx[4], gk[4], gv[4];
                    for (int i = 0; i < 4; ++i) { kx[i] = Ks[(ty * 4 + i) * S + c]; vx[i] = Vs[(ty * 4 + i) * S + c]; }
                    for (int j = 0; j < 4; ++j) { gk[j] = dKs[(tx + 16 * j) * S + c]; gv[j] = dVs[(tx + 16 * j) * S + c]; }
                    for (int i = 0; i < 4; ++i)
                        for (int j = 0; j < 4; ++j) dp[i][j] += (A)kx[i] * gk[j] + (A)vx[i] * gv[j];
                }
            }
            float pr[4][4];
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j)
                {
                    const int t = t0 + ty * 4 + i, kk = r0 + tx + 16 * j;
                    pr[i][j] = t < t1 && kk < p.r ? prob<T>(p, b, t, h * p.r + kk) : 0.f;
                }
            if (p.phase == 0)
            {
                for (int j = 0; j < 4; ++j)
                {
                    double s = 0.0;
                    for (int i = 0; i < 4; ++i) s += (double)pr[i][j] * (double)dp[i][j];
                    red[ty][tx + 16 * j] = s;
                }
                __syncthreads();
                if (threadIdx.x < TT && r0 + threadIdx.x < p.r)
                {
                    double s = colacc[r0 + threadIdx.x];
                    for (int y = 0; y < 16; ++y) s += red[y][threadIdx.x];
                    colacc[r0 + threadIdx.x] = s;
                }
            }
            else
                for (int i = 0; i < 4; ++i)
                    for (int j = 0; j < 4; ++j)
                    {
                        const int t = t0 + ty * 4 + i, kk = r0 + tx + 16 * j, col = h * p.r + kk;
                        if (t < t1 && kk < p.r)
                            store<T>(p.ds, ((i64)b * p.n + t) * hr + col, (float)(pr[i][j] * ((double)dp[i][j] - p.coldot[(i64)b * hr + col])));
                    }
        }
        if (p.phase != 0) continue;
        // Step B: dK = P·dK̄, dV = P·dV̄ for the tile's tokens, CCH columns at a time over all ranks.
        float *Ps = tiles, *dKs = Ps + TT * (TT + 1), *dVs = dKs + TT * CCH;
        for (int c0 = 0; c0 < d; c0 += CCH)
        {
            float gk[4][2] = {}, gv[4][2] = {};
            for (int r0 = 0; r0 < p.r; r0 += TT)
            {
                __syncthreads();
                for (int idx = threadIdx.x; idx < TT * TT; idx += NT)
                {
                    const int t = idx / TT, kk = idx % TT;
                    Ps[t * (TT + 1) + kk] = t0 + t < t1 && r0 + kk < p.r ? prob<T>(p, b, t0 + t, h * p.r + r0 + kk) : 0.f;
                }
                for (int idx = threadIdx.x; idx < TT * CCH; idx += NT)
                {
                    const int kk = idx / CCH, c = idx % CCH;
                    const bool in = r0 + kk < p.r && c0 + c < d;
                    const i64 ko = lbase + (i64)(r0 + kk) * d + c0 + c;
                    dKs[kk * CCH + c] = in ? load<T>(p.dkbar, ko) : 0.f;
                    dVs[kk * CCH + c] = in ? load<T>(p.dvbar, ko) : 0.f;
                }
                __syncthreads();
#pragma unroll 4
                for (int kk = 0; kk < TT; ++kk)
                {
                    float a[4], x[2], y[2];
                    for (int i = 0; i < 4; ++i) a[i] = Ps[(ty * 4 + i) * (TT + 1) + kk];
                    for (int j = 0; j < 2; ++j) { x[j] = dKs[kk * CCH + tx + 16 * j]; y[j] = dVs[kk * CCH + tx + 16 * j]; }
                    for (int i = 0; i < 4; ++i)
                        for (int j = 0; j < 2; ++j) { gk[i][j] += a[i] * x[j]; gv[i][j] += a[i] * y[j]; }
                }
            }
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 2; ++j)
                {
                    const int t = t0 + ty * 4 + i, c = c0 + tx + 16 * j;
                    if (t >= t1 || c >= d) continue;
                    const i64 off = base + (i64)t * d + c;
                    float a = gk[i][j], v = gv[i][j];
                    if (p.accumulate) { a += load<T>(p.dk, off); v += load<T>(p.dv, off); }
                    store<T>(p.dk, off, a);
                    store<T>(p.dv, off, v);
                }
        }
    }
    if (p.phase != 0) return;
    __syncthreads();
    for (int k = threadIdx.x; k < p.r; k += NT) p.cpart[((i64)b * p.groups + g) * hr + h * p.r + k] = colacc[k];
}

// Between the phases, one thread per (b, column): coldot = the groups' Σ P·dP added in group order.
template <typename T> __device__ void ls_projection_coldot(LsProjectionParams p)
{
    const int hr = p.H * p.r;
    const i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x;
    if (i >= (i64)p.B * hr) return;
    const i64 b = i / hr, c = i % hr;
    double s = 0.0;
    for (int g = 0; g < p.groups; ++g) s += p.cpart[(b * p.groups + g) * hr + c];
    p.coldot[i] = s;
}

// Before the one-pass backward (ls_projection_mma.cu, phase 2), one warp per (b, column): coldot = Σ_t P·dP by the
// softmax identity Σ_t P_tk·(K_t·dK̄_k + V_t·dV̄_k) = K̄_k·dK̄_k + V̄_k·dV̄_k, from the forward's unrounded K̄, V̄
// (kbar32, vbar32), in double; lanes stride over d and meet in a fixed shuffle tree.
template <typename T> __device__ void ls_projection_coldot_landmarks(LsProjectionParams p)
{
    const i64 i = (blockIdx.x * (i64)blockDim.x + threadIdx.x) / 32;  // column b·H·r + h·r + k: its landmark row starts at i·d
    const int lane = threadIdx.x % 32;
    if (i >= (i64)p.B * p.H * p.r) return;  // whole warps only
    double s = 0.0;
    for (int j = lane; j < p.d; j += 32)
    {
        const i64 o = i * p.d + j;
        s += (double)p.kbar32[o] * load<T>(p.dkbar, o) + (double)p.vbar32[o] * load<T>(p.dvbar, o);
    }
    for (int off = 16; off; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) p.coldot[i] = s;
}

TLS_INSTANTIATE(ls_projection_stats, LsProjectionParams)
TLS_INSTANTIATE(ls_projection_stats_sum, LsProjectionParams)
TLS_INSTANTIATE(ls_projection_compress, LsProjectionParams)
TLS_INSTANTIATE(ls_projection_compress_sum, LsProjectionParams)
TLS_INSTANTIATE(ls_projection_compress_sum_scaled, LsProjectionParams)
TLS_INSTANTIATE(ls_projection_bwd, LsProjectionParams)
TLS_INSTANTIATE(ls_projection_coldot, LsProjectionParams)
TLS_INSTANTIATE(ls_projection_coldot_landmarks, LsProjectionParams)
