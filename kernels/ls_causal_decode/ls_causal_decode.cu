// One decode step of the causal LS attention: the newest position of each of B sequences attends, under one softmax,
// to its window ring (the last nw positions, Transformer-XL relative terms) and to its visible compressed keys (the
// block's Mc cache chunks in the cache-path ring, then the block's first qi block-path chunks). Reference:
// src/TransformerLS/Ops/LsCausalDecode/LsCausalDecode.Reference.cs (the math, the ring and the state layout).
//
// Split over keys, flash-decoding style, so that a batch of one still fills the GPU:
//   ls_causal_decode_*:         block = (sequence, head) x one split of split_keys keys of its key list (compressed keys
//                               first, then the window from the newest position back). The block first resolves each
//                               key's rows (pointers in shared memory); each warp scores DECODE_UNROLL keys at a time
//                               (lanes over the head dim, coalesced rows), the logits go to shared memory, the block
//                               finds their max and sum in a fixed order; for exp(s − m)·v warp w sums keys w, w + 4, …
//                               with lanes over channels and the warps' sums add in warp order. Writes the split's sums,
//                               max and sum (an empty split: max −inf, sum 0).
//   ls_causal_decode_combine_*: block = (sequence, head): o = Σ_s e^{m_s − M} acc_s / Σ_s e^{m_s − M} l_s, splits in order.
// The same bits every run.
#include "ls_causal_decode/ls_causal_decode.cuh"
#include "common/row_vectors.cuh"
#include "common/dependent_launch.cuh"

#define DECODE_THREADS 128
TLS_EXPORT(ls_causal_decode_threads, DECODE_THREADS)

// Block-wide reduction (max or sum) of one value per thread, in a fixed order.
template <bool MAX> TLS_DEVICE float block_reduce(float v, float* scratch)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float r = scratch[0];
    for (int k = 1; k < DECODE_THREADS / 32; ++k) r = MAX ? fmaxf(r, scratch[k]) : r + scratch[k];
    return r;
}

// Shared memory of a split block, bytes = per_key·split_keys + per_d·D (the launcher reads these: one source): the
// element pointers of each key's key, relative and value rows and its logit; σq, σq+u, σq+v and the warps' p·v sums.
TLS_EXPORT(ls_causal_decode_smem_per_key, 8 * 3 + 4)
TLS_EXPORT(ls_causal_decode_smem_per_d, 4 * (3 + DECODE_THREADS / 32))

#define DECODE_UNROLL 4  // keys a warp scores at once (their loads in flight together)

template <typename T> __device__ void ls_causal_decode(LsDecodeParams p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ float red[DECODE_THREADS / 32];
    const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H, D = p.D, split = blockIdx.y;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = DECODE_THREADS / 32;
    const int slot = (int)p.state[b * 4], nw = (int)p.state[b * 4 + 1], first = (int)p.state[b * 4 + 2], qi = (int)p.state[b * 4 + 3];
    const int nc = (p.Mc + qi) * p.R, keys = nc + nw;
    const int j0 = split * p.split_keys, j1 = min(keys, j0 + p.split_keys), n = j1 - j0;
    float* part = p.part + ((i64)bh * p.splits + split) * (D + 2);
    if (n <= 0)
    {
        for (int c = threadIdx.x; c < D; c += DECODE_THREADS) part[c] = 0.f;
        if (threadIdx.x == 0) { part[D] = -TLS_INF; part[D + 1] = 0.f; }
        return;
    }
    const T** kp = (const T**)smem;
    const T** rp = kp + p.split_keys;
    const T** vp = rp + p.split_keys;
    float* s = (float*)(vp + p.split_keys);
    float *qs = s + p.split_keys, *qu = qs + D, *qv = qu + D, *vpart = qv + D;
    for (int c = threadIdx.x; c < D; c += DECODE_THREADS)
    {
        float x = p.scale * load<T>(p.q, (i64)bh * D + c);
        qs[c] = x;
        qu[c] = x + load<T>(p.u, (i64)h * D + c);
        qv[c] = x + load<T>(p.vb, (i64)h * D + c);
    }
    // Key j < nc: compressed key n = j (cache ring, then block-path chunks), with the chunk relative row; else window age
    // a = j − nc (ring slot slot − a), with the Transformer-XL relative row of age a.
    for (int jj = threadIdx.x; jj < n; jj += DECODE_THREADS)
    {
        const int j = j0 + jj;
        if (j < nc)
        {
            i64 row = j < p.Mc * p.R ? ((i64)bh * p.C * p.R + (i64)((first + j / p.R) % p.C) * p.R + j % p.R) * D
                                     : ((i64)bh * p.Lb * p.R + j - p.Mc * p.R) * D;
            const T* kbase = (const T*)(j < p.Mc * p.R ? p.kring : p.kblock);
            const T* vbase = (const T*)(j < p.Mc * p.R ? p.vring : p.vblock);
            kp[jj] = kbase + row;
            vp[jj] = vbase + row;
            rp[jj] = (const T*)p.relc + ((i64)h * p.Nr + nc - 1 - j) * D;
        }
        else
        {
            const int a = j - nc;
            const i64 row = ((i64)bh * p.W + (slot - a + p.W) % p.W) * D;
            kp[jj] = (const T*)p.kw + row;
            vp[jj] = (const T*)p.vw + row;
            rp[jj] = (const T*)p.rel + ((i64)h * p.W + a) * D;
        }
    }
    __syncthreads();

    // Logits: s = x1·k + x2·r with (x1, x2) = (σq, σq) for compressed keys, (σq + u, σq + v) for window keys.
    for (int jb = warp * DECODE_UNROLL; jb < n; jb += warps * DECODE_UNROLL)
    {
        float acc[DECODE_UNROLL];
        for (int u = 0; u < DECODE_UNROLL; ++u)
        {
            const int jj = jb + u;
            acc[u] = 0.f;
            if (jj >= n) continue;
            const bool cmp = j0 + jj < nc;
            const float *x1 = cmp ? qs : qu, *x2 = cmp ? qs : qv;
            for (int c = lane; c < D; c += 32) acc[u] += x1[c] * load<T>(kp[jj], c) + x2[c] * load<T>(rp[jj], c);
        }
        for (int u = 0; u < DECODE_UNROLL; ++u)
        {
            const float a = warp_sum(acc[u]);
            if (lane == 0 && jb + u < n) s[jb + u] = a;
        }
    }
    __syncthreads();

    float m = -TLS_INF;
    for (int j = threadIdx.x; j < n; j += DECODE_THREADS) m = fmaxf(m, s[j]);
    m = block_reduce<true>(m, red);
    float l = 0.f;
    for (int j = threadIdx.x; j < n; j += DECODE_THREADS) { float e = expf(s[j] - m); s[j] = e; l += e; }
    l = block_reduce<false>(l, red);
    __syncthreads();

    // p·v: warp w sums keys w, w + warps, … (lanes over channels), then the warps' sums add in warp order.
    for (int c = lane; c < D; c += 32)
    {
        float acc = 0.f;
#pragma unroll 4
        for (int jj = warp; jj < n; jj += warps) acc += s[jj] * load<T>(vp[jj], c);
        vpart[warp * D + c] = acc;
    }
    __syncthreads();
    for (int c = threadIdx.x; c < D; c += DECODE_THREADS)
    {
        float acc = vpart[c];
        for (int w = 1; w < warps; ++w) acc += vpart[w * D + c];
        part[c] = acc;
    }
    if (threadIdx.x == 0) { part[D] = m; part[D + 1] = l; }
}

template <typename T> __device__ void ls_causal_decode_combine(LsDecodeParams p)
{
    const int bh = blockIdx.x, D = p.D;
    const float* part = p.part + (i64)bh * p.splits * (D + 2);
    float M = -TLS_INF;
    for (int s = 0; s < p.splits; ++s) M = fmaxf(M, part[s * (D + 2) + D]);
    float L = 0.f;
    for (int s = 0; s < p.splits; ++s)
    {
        const float ms = part[s * (D + 2) + D];
        if (ms != -TLS_INF) L += expf(ms - M) * part[s * (D + 2) + D + 1];
    }
    for (int c = threadIdx.x; c < D; c += blockDim.x)
    {
        float acc = 0.f;
        for (int s = 0; s < p.splits; ++s)
        {
            const float ms = part[s * (D + 2) + D];
            if (ms != -TLS_INF) acc += expf(ms - M) * part[s * (D + 2) + c];
        }
        store<T>(p.o, (i64)bh * D + c, acc / L);
    }
}

TLS_INSTANTIATE(ls_causal_decode, LsDecodeParams)
TLS_INSTANTIATE(ls_causal_decode_combine, LsDecodeParams)

// ---------------------------------------------------------------------------------------------------------------------
// The vector kernel (the launcher's choice where d is a multiple of the 16-byte vector's N elements, d <= 64·N, and
// every pointer is 16-byte aligned): the same math and the same split of the key list, with
//   - lanes in groups of G (a power of two, G·N·VPL >= d): a group owns one key row, each lane VPL 16-byte vectors of it,
//     so a warp reads 32/G rows at a time and DECODE_VEC_ROWS rows per lane are in flight together;
//   - the _one kernels, for splits of at most DECODE_THREADS / G · DECODE_VEC_ROWS / VPL keys (small batches', and large
//     ones' while such splits number at most the launcher's MaxOnePassSplits), load the value rows with the key rows:
//     one round trip to memory instead of two;
//   - splits chosen by the launcher (one where B·H alone fills the GPU): with one split the block writes o itself;
//   - the combine fused: each split block writes its partial, counts itself in arrived[bh] (an integer atomic), and the
//     last one to arrive combines the splits in split order (the same bits whichever block is last) and zeroes the count;
//   - the append fused (p.kraw set): see decode_append.
// Shared memory: the append's age-0 key and value (2·d, as fp32 slots), split_keys logits, WARPS·d p·v sums, 2·splits
// combine weights (the launcher's size: one formula).
TLS_EXPORT(ls_causal_decode_vec_smem_per_key, 4)
TLS_EXPORT(ls_causal_decode_vec_smem_per_d, 4 * (DECODE_THREADS / 32 + 2))
TLS_EXPORT(ls_causal_decode_vec_smem_per_split, 8)

#define DECODE_VEC_ROWS 4  // key rows a lane loads before it uses them (divided by VPL)
// The most keys a split of the one-pass (_one) kernels holds: DECODE_THREADS / G key slots · DECODE_VEC_ROWS / VPL rows
// each, i.e. this over G·VPL.
TLS_EXPORT(ls_causal_decode_vec_one_pass, DECODE_THREADS * DECODE_VEC_ROWS)

// Key j of sequence b's list: pointers to its key, relative and value rows; whether it is compressed.
template <typename T> struct DecodeKey
{
    const T *k, *r, *v;
    bool cmp;
    TLS_DEVICE DecodeKey(const LsDecodeParams& p, int bh, int h, int j, int nc, int slot, int first)
    {
        cmp = j < nc;
        if (cmp)
        {
            const bool ring = j < p.Mc * p.R;
            const i64 row = ring ? ((i64)bh * p.C * p.R + (i64)((first + j / p.R) % p.C) * p.R + j % p.R) * p.D
                                 : ((i64)bh * p.Lb * p.R + j - p.Mc * p.R) * p.D;
            k = (const T*)(ring ? p.kring : p.kblock) + row;
            v = (const T*)(ring ? p.vring : p.vblock) + row;
            r = (const T*)p.relc + ((i64)h * p.Nr + nc - 1 - j) * p.D;
        }
        else
        {
            const int a = j - nc;
            const i64 row = ((i64)bh * p.W + (slot - a + p.W) % p.W) * p.D;
            k = (const T*)p.kw + row;
            v = (const T*)p.vw + row;
            r = (const T*)p.rel + ((i64)h * p.W + a) * p.D;
        }
    }
};

// The append, by the block (sequence b, head h) whose split holds window age 0 (no other block of the launch reads or
// writes the rows it writes: age 0 is the only key in the window slot, and the chunk rows are read after the launch).
// LN_W over all H·d channels of this position's raw key and value (mean, then the mean squared deviation: the DualLN
// kernel's statistics), its head's slice rounded to T into kn, vn and, where rows_w[b] is the window slot (the only
// row the caller may name besides −1), into the window ring; its head's slices of h, s, kraw, vraw into the chunk
// buffers. Returns whether kn, vn are the age-0 key and value (else the ring's slot still is: nothing was written).
template <typename T> TLS_DEVICE bool decode_append(const LsDecodeParams& p, int b, int h, int slot, T* kn, T* vn, float* red)
{
    const int d = p.D, Dm = p.H * d, t = threadIdx.x;
    const i64 row = (i64)b * Dm;
    float sk = 0.f, sv = 0.f;
    for (int c = t; c < Dm; c += DECODE_THREADS) { sk += load<T>(p.kraw, row + c); sv += load<T>(p.vraw, row + c); }
    const float mk = block_reduce<false>(sk, red) / Dm, mv = block_reduce<false>(sv, red) / Dm;
    float qk = 0.f, qv = 0.f;
    for (int c = t; c < Dm; c += DECODE_THREADS)
    {
        const float ek = load<T>(p.kraw, row + c) - mk, ev = load<T>(p.vraw, row + c) - mv;
        qk += ek * ek;
        qv += ev * ev;
    }
    const float rk = 1.f / sqrtf(block_reduce<false>(qk, red) / Dm + p.eps), rv = 1.f / sqrtf(block_reduce<false>(qv, red) / Dm + p.eps);
    const int rw = (int)p.rows_w[b], rc = (int)p.rows_chunk[b];
    const bool wring = rw == slot, wchunk = rc >= 0 && rc < p.l;
    const i64 ring = ((i64)(b * p.H + h) * p.W + rw) * d, chunk = ((i64)b * p.l + rc) * Dm;
    for (int c = t; c < d; c += DECODE_THREADS)
    {
        const int x = h * d + c;
        store<T>(kn, c, (load<T>(p.kraw, row + x) - mk) * rk * p.gamma[x] + p.beta[x]);
        store<T>(vn, c, (load<T>(p.vraw, row + x) - mv) * rv * p.gamma[x] + p.beta[x]);
        if (wring) { ((T*)p.kw)[ring + c] = kn[c]; ((T*)p.vw)[ring + c] = vn[c]; }
        if (wchunk)
        {
            ((T*)p.hbuf)[chunk + x] = ((const T*)p.h_in)[row + x];
            ((T*)p.krbuf)[chunk + x] = ((const T*)p.kraw)[row + x];
            ((T*)p.vrbuf)[chunk + x] = ((const T*)p.vraw)[row + x];
        }
    }
    const int HR = p.H * p.R;
    if (wchunk)
        for (int r = t; r < p.R; r += DECODE_THREADS) ((T*)p.sbuf)[((i64)b * p.l + rc) * HR + h * p.R + r] = ((const T*)p.s_in)[(i64)b * HR + h * p.R + r];
    __syncthreads();
    return wring;
}

TLS_DEVICE float ld_cg(const float* p)
{
    float v;
    asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p) : "memory");
    return v;
}

template <typename T, int G, int VPL, bool ONE> __device__ void ls_causal_decode_vec(LsDecodeParams p)
{
    constexpr int N = RowVec<T>::N, WARPS = DECODE_THREADS / 32, KPB = DECODE_THREADS / G, U = DECODE_VEC_ROWS / VPL;
    extern __shared__ __align__(16) float sm[];
    __shared__ float red[WARPS];
    __shared__ int last;
    const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H, D = p.D, split = blockIdx.y;
    const int t = threadIdx.x, g = t % G, kk = t / G, lane = t % 32, warp = t / 32;
    // A dependent launch (the launcher's, sm_90+): q, the state and the append's rows are the previous kernels'; every
    // block waits before its first load, so this grid ends after them (what a later dependent kernel relies on).
    grid_dependents_launch();
    grid_dependency_wait();
    const int slot = (int)p.state[b * 4], nw = (int)p.state[b * 4 + 1], first = (int)p.state[b * 4 + 2], qi = (int)p.state[b * 4 + 3];
    const int nc = (p.Mc + qi) * p.R, keys = nc + nw;
    const int j0 = split * p.split_keys, n = max(0, min(keys, j0 + p.split_keys) - j0);
    T* kn = (T*)sm;                      // [D] the append's age-0 key, then [D] value (2·D fp32 slots, 16-byte aligned)
    T* vn = kn + D;
    float* s = sm + 2 * D;               // [split_keys] logits, then weights
    float* pv = s + p.split_keys;        // [WARPS, D]
    float m = -TLS_INF, l = 0.f;
    float acc[VPL][N];
#pragma unroll
    for (int v = 0; v < VPL; ++v)
#pragma unroll
        for (int e = 0; e < N; ++e) acc[v][e] = 0.f;

    // This lane's channels of σq, σq + u, σq + v (loaded before the state's key count is known: their loads overlap).
    float qs[VPL][N], qu[VPL][N], qv[VPL][N];
#pragma unroll
    for (int v = 0; v < VPL; ++v)
    {
        const int c = (v * G + g) * N;
        if (c < D)
        {
            float u[N], w[N];
            RowVec<T>::load(p.q, (i64)bh * D + c, qs[v]);
            RowVec<T>::load(p.u, (i64)h * D + c, u);
            RowVec<T>::load(p.vb, (i64)h * D + c, w);
#pragma unroll
            for (int e = 0; e < N; ++e) { qs[v][e] *= p.scale; qu[v][e] = qs[v][e] + u[e]; qv[v][e] = qs[v][e] + w[e]; }
        }
        else
#pragma unroll
            for (int e = 0; e < N; ++e) qs[v][e] = qu[v][e] = qv[v][e] = 0.f;
    }
    // The append (uniform over the block): the split holding window age 0, key nc, makes that key and value itself.
    const int a0 = nc - j0;
    const bool app = p.kraw != nullptr && a0 >= 0 && a0 < n && decode_append<T>(p, b, h, slot, kn, vn, red);
    if (n > 0) // uniform over the block
    {
        // ONE (the launcher's choice where split_keys <= KPB·U): the split is one pass, its value rows load with its key
        // rows and wait in registers.
        constexpr bool one = ONE;
        float vr1[U][VPL][N];
        // Logits: s = x1·k + x2·r, (x1, x2) = (σq, σq) for compressed keys, (σq + u, σq + v) for window keys.
        for (int base = 0; base < n; base += KPB * U)
        {
            float kr[U][VPL][N], rr[U][VPL][N];
            bool cmp[U];
#pragma unroll
            for (int u = 0; u < U; ++u)
            {
                const int jj = base + u * KPB + kk;
                cmp[u] = false;
                if (jj >= n) continue;
                DecodeKey<T> key(p, bh, h, j0 + jj, nc, slot, first);
                if (app && jj == a0) { key.k = kn; key.v = vn; }
                cmp[u] = key.cmp;
#pragma unroll
                for (int v = 0; v < VPL; ++v)
                    if ((v * G + g) * N < D)
                    {
                        RowVec<T>::load(key.k, (v * G + g) * N, kr[u][v]);
                        RowVec<T>::load(key.r, (v * G + g) * N, rr[u][v]);
                        if (one) RowVec<T>::load(key.v, (v * G + g) * N, vr1[u][v]);
                    }
            }
#pragma unroll
            for (int u = 0; u < U; ++u)
            {
                const int jj = base + u * KPB + kk;
                float a = 0.f;
                if (jj < n)
#pragma unroll
                    for (int v = 0; v < VPL; ++v)
                        if ((v * G + g) * N < D)
#pragma unroll
                            for (int e = 0; e < N; ++e)
                                a += (cmp[u] ? qs[v][e] : qu[v][e]) * kr[u][v][e] + (cmp[u] ? qs[v][e] : qv[v][e]) * rr[u][v][e];
#pragma unroll
                for (int o = G / 2; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
                if (g == 0 && jj < n) s[jj] = a;
            }
        }
        __syncthreads();
        for (int j = t; j < n; j += DECODE_THREADS) m = fmaxf(m, s[j]);
        m = block_reduce<true>(m, red);
        for (int j = t; j < n; j += DECODE_THREADS) { const float e = expf(s[j] - m); s[j] = e; l += e; }
        l = block_reduce<false>(l, red);
        __syncthreads();
        // p·v: the group of key slot kk sums the keys kk, kk + KPB, … of the split (its channels in registers).
        if (one)
#pragma unroll
            for (int u = 0; u < U; ++u)
            {
                const int jj = u * KPB + kk;
                if (jj < n)
#pragma unroll
                    for (int v = 0; v < VPL; ++v)
                        if ((v * G + g) * N < D)
#pragma unroll
                            for (int e = 0; e < N; ++e) acc[v][e] += s[jj] * vr1[u][v][e];
            }
        for (int base = 0; !one && base < n; base += KPB * U)
        {
            float vr[U][VPL][N], pr[U];
#pragma unroll
            for (int u = 0; u < U; ++u)
            {
                const int jj = base + u * KPB + kk;
                pr[u] = 0.f;
                if (jj >= n) continue;
                DecodeKey<T> key(p, bh, h, j0 + jj, nc, slot, first);
                if (app && jj == a0) key.v = vn;
                pr[u] = s[jj];
#pragma unroll
                for (int v = 0; v < VPL; ++v)
                    if ((v * G + g) * N < D) RowVec<T>::load(key.v, (v * G + g) * N, vr[u][v]);
            }
#pragma unroll
            for (int u = 0; u < U; ++u)
                if (base + u * KPB + kk < n)
#pragma unroll
                    for (int v = 0; v < VPL; ++v)
                        if ((v * G + g) * N < D)
#pragma unroll
                            for (int e = 0; e < N; ++e) acc[v][e] += pr[u] * vr[u][v][e];
        }
    }
    // The key slots' sums: across the warp's slots (lanes g, g + G, … in a fixed tree), then the warps in order.
#pragma unroll
    for (int v = 0; v < VPL; ++v)
#pragma unroll
        for (int e = 0; e < N; ++e)
#pragma unroll
            for (int o = G; o < 32; o <<= 1) acc[v][e] += __shfl_xor_sync(0xffffffffu, acc[v][e], o);
    if (lane < G)
#pragma unroll
        for (int v = 0; v < VPL; ++v)
            if ((v * G + g) * N < D)
#pragma unroll
                for (int e = 0; e < N; ++e) pv[warp * D + (v * G + g) * N + e] = acc[v][e];
    __syncthreads();
    if (p.splits == 1)
    {
        for (int c = t; c < D; c += DECODE_THREADS)
        {
            float x = pv[c];
            for (int w = 1; w < WARPS; ++w) x += pv[w * D + c];
            store<T>(p.o, (i64)bh * D + c, x / l);
        }
        return;
    }
    float* part = p.part + ((i64)bh * p.splits + split) * (D + 2);
    for (int c = t; c < D; c += DECODE_THREADS)
    {
        float x = pv[c];
        for (int w = 1; w < WARPS; ++w) x += pv[w * D + c];
        part[c] = x;
    }
    if (t == 0) { part[D] = m; part[D + 1] = l; }
    // Arrive; the last split block of (sequence, head) combines: o = Σ_s e^{m_s − M} acc_s / Σ_s e^{m_s − M} l_s.
    __threadfence();
    __syncthreads();
    if (t == 0) last = atomicAdd(p.arrived + bh, 1) == p.splits - 1;
    __syncthreads();
    if (!last) return;
    if (t == 0) p.arrived[bh] = 0;       // every split has counted itself: the count is free for the next launch
    __threadfence();
    const float* parts = p.part + (i64)bh * p.splits * (D + 2);
    float* wt = s;                       // [splits] weights, then [splits] weighted sums (reuses the logits)
    float M = -TLS_INF;
    for (int q = t; q < p.splits; q += DECODE_THREADS) M = fmaxf(M, ld_cg(parts + (i64)q * (D + 2) + D));
    M = block_reduce<true>(M, red);
    for (int q = t; q < p.splits; q += DECODE_THREADS)
    {
        const float ms = ld_cg(parts + (i64)q * (D + 2) + D);
        const float w = ms == -TLS_INF ? 0.f : expf(ms - M);
        wt[q] = w;
        wt[p.splits + q] = w * ld_cg(parts + (i64)q * (D + 2) + D + 1);
    }
    __syncthreads();
    float L = 0.f;
    for (int q = 0; q < p.splits; ++q) L += wt[p.splits + q];
    // Eight splits' loads issued together (ld_cg is volatile: one at a time in a plain loop, a round trip to L2 each).
    for (int c = t; c < D; c += DECODE_THREADS)
    {
        float x = 0.f;
        for (int q0 = 0; q0 < p.splits; q0 += 8)
        {
            float y[8];
#pragma unroll
            for (int u = 0; u < 8; ++u) y[u] = q0 + u < p.splits ? ld_cg(parts + (i64)(q0 + u) * (D + 2) + c) : 0.f;
#pragma unroll
            for (int u = 0; u < 8; ++u)
                if (q0 + u < p.splits && wt[q0 + u] != 0.f) x += wt[q0 + u] * y[u];
        }
        store<T>(p.o, (i64)bh * D + c, x / L);
    }
}

#define DECODE_VEC(G, VPL)                                                                                              \
    extern "C" __global__ void ls_causal_decode_vec_g##G##_v##VPL##_f32(LsDecodeParams p) { ls_causal_decode_vec<float, G, VPL, false>(p); } \
    extern "C" __global__ void ls_causal_decode_vec_g##G##_v##VPL##_bf16(LsDecodeParams p) { ls_causal_decode_vec<bf16, G, VPL, false>(p); } \
    extern "C" __global__ void ls_causal_decode_vec_g##G##_v##VPL##_one_f32(LsDecodeParams p) { ls_causal_decode_vec<float, G, VPL, true>(p); } \
    extern "C" __global__ void ls_causal_decode_vec_g##G##_v##VPL##_one_bf16(LsDecodeParams p) { ls_causal_decode_vec<bf16, G, VPL, true>(p); }
DECODE_VEC(1, 1)
DECODE_VEC(2, 1)
DECODE_VEC(4, 1)
DECODE_VEC(8, 1)
DECODE_VEC(16, 1)
DECODE_VEC(32, 1)
DECODE_VEC(32, 2)
