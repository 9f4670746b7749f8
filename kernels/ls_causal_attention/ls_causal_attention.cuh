// What both causal LS attention kernels share: the params (mirrored by LsCausalAttentionParams in
// src/TransformerLS/Ops/LsCausalAttention/LsCausalAttentionCuda.cs) and which queries and keys a block owns.
// ls_causal_attention.cu: fp32 on the CUDA cores; ls_causal_attention_mma.cu: bf16 on the tensor cores.
#pragma once
#include "common/prelude.cuh"

struct LsCausalAttentionParams
{
    const void* q;       // [B, H, L, d], unscaled
    const void* k;       // [B, H, P + L, d]
    const void* v;
    const void* u;       // [H, d]
    const void* vb;      // [H, d]
    const void* rel;     // [H, w, d]
    const void* kc;      // [B, H, Nc, d]
    const void* vc;
    const void* relc;    // [H, Nc, d]
    const float* mask;   // [B, P + L] or null
    void* o;             // [B, H, L, d]
    float* lse;          // [B, H, L]
    const void* dout;
    void* dq;
    float *dk, *dv, *du, *dvb, *drel, *dkc, *dvc, *drelc;  // mma backward: fp32 accumulators, zeroed
    // CUDA-core backward (deterministic passes, ls_causal_attention_bwd.cu), its scratch: each query's log-sum-exp in
    // double [B, H, L]; per-(b, h) partials of the head-shared gradients: du [B·H, key tiles, d], dv_bias
    // [B·H, δ tiles, d], dR [B·H, w, d], dRc [B·H, Nc, d]. The CUDA-core passes write dk, dv, dkc, dvc (as T) once each.
    double* lse64;
    float *du_part, *dvb_part, *drel_part, *drelc_part;
    int B, H, L, P, d, w, l, r, mc, nc;
    int tiles, cpb;      // query blocks per chunk group, chunks per group (cpb > 1: one block spans cpb whole chunks)
    float scale;
};

struct Block
{
    int b, h, bh, q0, nq, ncmp, ncmp0, jlo, nwin;
    i64 qbase, kbase, cbase;
};

// Compressed keys visible to block query i: those of the chunks strictly before its own.
TLS_DEVICE int ncmp_of(const LsCausalAttentionParams& p, int i) { return (p.mc + i / p.l) * p.r; }

// A block owns up to qb queries [q0, q0 + nq) of one group of cpb chunks (cpb = 1: of ONE chunk, in `tiles`
// blocks); its first query sees ncmp0 compressed keys, its last ncmp (the most any of its queries sees), and
// together they see the window positions [jlo, q0 + nq).
TLS_DEVICE Block block_of(const LsCausalAttentionParams& p, int qb)
{
    Block k;
    k.bh = blockIdx.z;
    k.b = k.bh / p.H;
    k.h = k.bh % p.H;
    int chunk0 = blockIdx.x / p.tiles * p.cpb;
    k.q0 = chunk0 * p.l + (blockIdx.x % p.tiles) * qb;
    int qend = min(min(k.q0 + qb, (chunk0 + p.cpb) * p.l), p.L);
    k.nq = max(0, qend - k.q0);
    k.ncmp0 = ncmp_of(p, k.q0);
    k.ncmp = ncmp_of(p, max(k.q0, qend - 1));
    k.jlo = max(k.q0 - p.w + 1, -p.P);
    k.nwin = k.q0 + k.nq - k.jlo;
    k.qbase = (i64)k.bh * p.L * p.d;
    k.kbase = (i64)k.bh * (p.P + p.L) * p.d;
    k.cbase = (i64)k.bh * p.nc * p.d;
    return k;
}

TLS_DEVICE bool is_token(const LsCausalAttentionParams& p, int b, int j) { return !p.mask || p.mask[(i64)b * (p.P + p.L) + p.P + j] != 0.f; }

TLS_PARAMS_LAYOUT(LsCausalAttentionParams, scale, 272, 264)
