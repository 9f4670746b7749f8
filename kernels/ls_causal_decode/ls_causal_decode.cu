// One decode step of the causal LS attention: the newest position of each of B sequences attends, under one softmax,
// to its window ring (the last nw positions, Transformer-XL relative terms) and to its visible compressed keys (the
// block's Mc cache chunks in the cache-path ring, then the block's first qi block-path chunks). Reference:
// src/TransformerLS/Ops/LsCausalDecode/LsCausalDecode.Reference.cs (the math, the ring and the state layout).
//
// A block owns one (sequence, head); each warp takes keys in turn (lanes over the head dim, coalesced rows), the
// logits go to shared memory, the block finds their max and sum in a fixed order, and each thread owns output
// channels c = threadIdx.x, + blockDim.x, … summing p·v over the keys in key order: the same bits every run.
#include "ls_causal_decode/ls_causal_decode.cuh"

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

template <typename T> __device__ void ls_causal_decode(LsDecodeParams p)
{
    extern __shared__ float sm[];
    __shared__ float red[DECODE_THREADS / 32];
    const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H, D = p.D;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = DECODE_THREADS / 32;
    const int slot = (int)p.state[b * 4], nw = (int)p.state[b * 4 + 1], first = (int)p.state[b * 4 + 2], qi = (int)p.state[b * 4 + 3];
    const int nc = (p.Mc + qi) * p.R, keys = nc + nw;
    float *s = sm, *qs = sm + p.W + (p.Mc + p.Lb) * p.R, *qu = qs + D, *qv = qu + D;
    for (int c = threadIdx.x; c < D; c += DECODE_THREADS)
    {
        float x = p.scale * load<T>(p.q, (i64)bh * D + c);
        qs[c] = x;
        qu[c] = x + load<T>(p.u, (i64)h * D + c);
        qv[c] = x + load<T>(p.vb, (i64)h * D + c);
    }
    __syncthreads();

    // Key j < nc: compressed key n = j; else window age a = j − nc. Row offsets of its key/value and relative rows.
    auto rows = [&](int j, const void*& kv_k, const void*& kv_v, i64& row, i64& rrow) {
        if (j < nc)
        {
            if (j < p.Mc * p.R) { kv_k = p.kring; kv_v = p.vring; row = ((i64)bh * p.C * p.R + (i64)((first + j / p.R) % p.C) * p.R + j % p.R) * D; }
            else { kv_k = p.kblock; kv_v = p.vblock; row = ((i64)bh * p.Lb * p.R + j - p.Mc * p.R) * D; }
            rrow = ((i64)h * p.Nr + nc - 1 - j) * D;
        }
        else
        {
            const int a = j - nc;
            kv_k = p.kw; kv_v = p.vw;
            row = ((i64)bh * p.W + (slot - a + p.W) % p.W) * D;
            rrow = ((i64)h * p.W + a) * D;
        }
    };

    for (int j = warp; j < keys; j += warps)
    {
        const void *kk, *vv;
        i64 row, rrow;
        rows(j, kk, vv, row, rrow);
        float acc = 0.f;
        if (j < nc)
            for (int c = lane; c < D; c += 32) acc += qs[c] * (load<T>(kk, row + c) + load<T>(p.relc, rrow + c));
        else
            for (int c = lane; c < D; c += 32) acc += qu[c] * load<T>(kk, row + c) + qv[c] * load<T>(p.rel, rrow + c);
        acc = warp_sum(acc);
        if (lane == 0) s[j] = acc;
    }
    __syncthreads();

    float m = -TLS_INF;
    for (int j = threadIdx.x; j < keys; j += DECODE_THREADS) m = fmaxf(m, s[j]);
    m = block_reduce<true>(m, red);
    float l = 0.f;
    for (int j = threadIdx.x; j < keys; j += DECODE_THREADS) { float e = expf(s[j] - m); s[j] = e; l += e; }
    l = block_reduce<false>(l, red);
    __syncthreads();

    const float inv = 1.f / l;
    for (int c = threadIdx.x; c < D; c += DECODE_THREADS)
    {
        float acc = 0.f;
        for (int j = 0; j < keys; ++j)
        {
            const void *kk, *vv;
            i64 row, rrow;
            rows(j, kk, vv, row, rrow);
            acc += s[j] * load<T>(vv, row + c);
        }
        store<T>(p.o, (i64)bh * D + c, acc * inv);
    }
}

TLS_INSTANTIATE(ls_causal_decode, LsDecodeParams)
