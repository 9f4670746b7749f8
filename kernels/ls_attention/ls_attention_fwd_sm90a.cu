// Bidirectional Long-Short attention forward in bf16 on Hopper's warpgroup tensor cores (wgmma, sm_90a), d = 64, the
// wide blocks (w > 64): the same math, key list, tiles and outputs as ls_attention_fwd_mma_wide_d64 in
// ls_attention_mma.cu (reference sections 1.4-1.5), with each warpgroup's products as wgmma instead of mma.sync.
//
// A block owns QM = 128 queries of one segment, two warpgroups of 64 (warp w holds rows 16w..16w + 15, as in the
// mma.sync kernel, so the softmax and the stores are the same code). Per key tile of KT = 64 keys (landmark tiles first,
// then the window), each warpgroup computes S[64 × 64] = Q·Kᵀ with Q as register fragments and K from shared memory
// (K-major), runs the online softmax on its accumulators, then O += P·V with P as hi + lo bf16 register fragments
// (two products, as accurate as fp32 P) and V from shared memory read transposed (MN-major). K and V tiles are in the
// 128-byte swizzle (common/wgmma.cuh), double-buffered by cp.async.
//
// Built for the sm_90a target only (KernelLibrary: *_sm90a.cu on an sm_90 device with NVRTC 12+); elsewhere the kernel is
// empty and tls_sm90a = 0, so the launcher keeps to ls_attention_mma.cu.
#include "ls_attention/ls_attention_mma.cuh"
#include "common/wgmma.cuh"

// Shared memory: two buffers of key rows i64 [KT], Qs [QM] padded rows, then (1024-byte aligned, up to 1024 bytes of
// slack) two buffers of Ks, Vs [KT][64] swizzled.
#define WG_D 64
#define WG_SMEM (16 * KT + 2 * QM * STRIDE(WG_D) + 1024 + 4 * KT * WG_D * 2)
TLS_EXPORT(ls_attention_fwd_wgmma_smem, WG_SMEM)
TLS_EXPORT(ls_attention_fwd_wgmma_threads, QM_WARPS * 32)
TLS_EXPORT(ls_attention_fwd_wgmma_qb, QM)
TLS_EXPORT(ls_attention_fwd_wgmma_d, WG_D)

#if defined(TLS_SM90A)
TLS_DEVICE Smem start_wgmma(const LsAttentionParams& p, const Block& k, unsigned char* at)
{
    Smem s;
    s.rows[0] = (i64*)at;
    s.rows[1] = s.rows[0] + KT;
    s.Qs = (u16*)(s.rows[1] + KT);
    unsigned char* tiles = (unsigned char*)(s.Qs + QM * STRIDE(WG_D));
    tiles = sw128_align(tiles);
    s.Ks[0] = (u16*)tiles;
    s.Vs[0] = s.Ks[0] + KT * WG_D;
    s.Ks[1] = s.Vs[0] + KT * WG_D;
    s.Vs[1] = s.Ks[1] + KT * WG_D;
    issue_consecutive<WG_D>(s.Qs, p.q, q_row(p, k, k.q0), k.nq, QM, p.qld);
    return s;
}
#endif

extern "C" __global__ void __launch_bounds__(QM_WARPS * 32, 2) ls_attention_fwd_wgmma_d64(LsAttentionParams p)
{
#if defined(TLS_SM90A)
    constexpr int D = WG_D;
    extern __shared__ __align__(1024) unsigned char smem[];
    const Block k = block_of(p, QM);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const Smem sm = start_wgmma(p, k, smem);

    float o[D / 8][4] = {};
    float m[2] = {-TLS_INF, -TLS_INF}, l[2] = {0.f, 0.f};
    const float sl2 = p.scale * TLS_LOG2E;
    for_each_tile<D, true>(p, k, sm, [&](const u16* Ks, const u16* Vs, const i64* rows, bool full) {
        // This warp's Q fragments, loaded afresh for every tile (the queries arrived with the first one) and pinned around
        // the fence. Session 32's H100 run: this kernel with the fragments loaded once and kept gave a wrong S from exact
        // tiles, where one-buffer copies loading them per tile were right (bench/probes/wgmma_attention_probe.cu); which
        // of the two differences was the fault is not yet isolated.
        unsigned qa[D / 16][4];
        for (int kc = 0; kc < D / 16; ++kc) ldmatrix_x4(qa[kc], sm.Qs + (warp * 16 + lane % 16) * STRIDE(D) + kc * 16 + (lane / 16) * 8);
        // S = Q·Kᵀ: K [64 keys][64] K-major; k steps of 16 columns are 32 bytes into the swizzled rows.
        float s[KT / 8][4];
        zero(s, KT / 8);
        const u64 kd = sw128_desc(Ks, 1024, 1024);
        wgmma_pin_a<D / 16>(qa);
        wgmma_pin(s);
        wgmma_fence();
        for (int kc = 0; kc < D / 16; ++kc) wgmma_m64n64k16<0>(s, qa[kc], kd + 2 * kc, 1);
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_pin(s);
        wgmma_pin_a<D / 16>(qa);
        if (!full) mask_absent_keys<KT>(s, rows);
        online_softmax<KT, D>(s, o, m[0], l[0], 0, sl2);
        online_softmax<KT, D>(s, o, m[1], l[1], 1, sl2);
        wgmma_xb_split(o, s, Vs);  // O += P·V, V [64 keys][64] read transposed
    });

    const float ms[2] = {m[0] * p.scale, m[1] * p.scale};
    store_softmax_rows<D>((u16*)p.o + q_row(p, k, k.q0), p.lse + (i64)k.bh * p.n + k.q0, k.nq, o, ms, l,
                          [&](int qi) { return is_token(p, k.b, k.q0 + qi); }, p.qld);
#endif
}
