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
// The same bits every run. The launcher's first choice is the vector kernel (ls_causal_decode_vec.cu); these kernels take
// the head dims and addresses it cannot.
#include "ls_causal_decode/ls_causal_decode_block.cuh"

TLS_EXPORT(ls_causal_decode_threads, DECODE_THREADS)

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
            rp[jj] = decode_rel_row<T>(p, h, nc, j, D);
        }
        else
        {
            const int a = j - nc;
            const i64 row = ((i64)bh * p.W + (slot - a + p.W) % p.W) * D;
            kp[jj] = (const T*)p.kw + row;
            vp[jj] = (const T*)p.vw + row;
            rp[jj] = decode_rel_row<T>(p, h, nc, j, D);
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
