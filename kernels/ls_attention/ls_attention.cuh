// What both bidirectional LS attention kernels share: the params (mirrored by LsAttentionParams in
// src/TransformerLS/Ops/LsAttention/LsAttentionCuda.cs) and which queries and keys a block owns.
// ls_attention.cu: fp32 on the CUDA cores; ls_attention_mma.cu (forward), ls_attention_bwd_mma.cu: bf16 on the tensor cores.
#pragma once
#include "common/prelude.cuh"

struct LsAttentionParams
{
    const void* q;       // [B, H, n, d] or token-major [B, n, H, d] (qld), unscaled
    const void* k;       // [B, H, n, d]
    const void* v;       // [B, H, n, d]
    const void* kbar;    // [B, H, r, d]
    const void* vbar;    // [B, H, r, d]
    const float* mask;   // [B, n], 1 = token, 0 = pad; may be null
    void* o;             // as q
    float* lse;          // [B, H, n]
    const void* dout;    // backward: as q
    void* dq;            // backward: as q
    float* dk;           // backward [B, H, n, d], in the inputs' dtype (written once by the window-key pass)
    float* dv;
    float* dkbar;        // [B, H, r, d], in the inputs' dtype (written by the landmark sum)
    float* dvbar;
    float* dd;           // backward: D_i = dO_i·O_i [B, H, n], written by the dQ pass for the key passes
    float* lpart_k;      // backward: per query group, the landmarks' partial dK̄, dV̄ [G, B·H, r, d] fp32
    float* lpart_v;
    double* lse64;       // backward, CUDA-core passes: each query's log-sum-exp in double [B, H, n], by the dQ pass
    int B, H, n, d, w, r, e, chunks;  // chunks = ceil(w / qb) query chunks per segment (qb: the kernel's block)
    int groups, group_tokens;         // query groups of the landmark pass (G groups of group_tokens queries)
    float scale;
    int qld;             // elements between consecutive tokens of q, o, dout, dq: d ([B, H, n, d]) or H·d ([B, n, H, d])
};

struct Block
{
    int b, bh, seg, q0, nq, wstart, total;
    i64 base;   // (b, h)'s first element in k, v, dk, dv
    i64 qbase;  // (b, h)'s first element in q, o, dout, dq (token i at qbase + i·qld)
};

// (b, h)'s first element in q, o, dout, dq: bh·n·d head-major; token-major b·n·H·d + h·d (the two agree at H = 1).
TLS_DEVICE i64 q_head_base(const LsAttentionParams& p, int bh)
{
    return p.qld == p.d ? (i64)bh * p.n * p.d : (i64)(bh / p.H) * p.n * p.qld + (i64)(bh % p.H) * p.d;
}

// A block owns up to qb queries [q0, q0 + nq) of segment seg; its key list is the r landmarks, then the
// window positions [wstart, wstart + w + 2e).
TLS_DEVICE Block block_of(const LsAttentionParams& p, int qb)
{
    Block k;
    k.bh = blockIdx.z;
    k.b = k.bh / p.H;
    k.seg = blockIdx.x / p.chunks;
    k.q0 = k.seg * p.w + (blockIdx.x % p.chunks) * qb;
    int seg_end = min((k.seg + 1) * p.w, p.n);
    k.nq = max(0, min(qb, seg_end - k.q0));
    k.wstart = k.seg * p.w - p.e;
    k.total = p.r + p.w + 2 * p.e;
    k.base = (i64)k.bh * p.n * p.d;
    k.qbase = q_head_base(p, k.bh);
    return k;
}

// Element offset of query i's row of (b, h) = k.bh in q, o, dout, dq (either layout).
TLS_DEVICE i64 q_row(const LsAttentionParams& p, const Block& k, int i) { return k.qbase + (i64)i * p.qld; }

TLS_DEVICE bool is_token(const LsAttentionParams& p, int b, int j) { return !p.mask || p.mask[(i64)b * p.n + j] != 0.f; }

TLS_PARAMS_LAYOUT(LsAttentionParams, qld, 192, 188)
