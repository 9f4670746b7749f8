// The dQ pass of the bidirectional LS attention backward in bf16 on Hopper's warpgroup tensor cores (wgmma, sm_90a),
// d = 64, wide blocks (w > 64): the same math, key list and outputs as ls_attention_bwd_dq_mma_wide_d64 in
// ls_attention_bwd_mma.cu (see there: P = exp(σ·Q·Kᵀ − lse), dP = dO·Vᵀ, dS = P ∘ (dP − D), dQ = σ·dS·K; writes D_i).
//
// A block owns QM = 128 queries of one segment, two warpgroups of 64 (warp w holds rows 16w..16w + 15). Per key tile
// of KT = 64 keys, each warpgroup computes S = Q·Kᵀ and dP = dO·Vᵀ with Q, dO and K, V all from shared memory
// (K-major), forms dS in registers, then dQ += dS·K with dS as hi + lo bf16 register fragments and K read transposed
// (MN-major). Q, dO, K and V tiles are in the 128-byte swizzle (common/wgmma.cuh); K and V double-buffered by cp.async.
//
// Built for sm_90a only, as ls_attention_fwd_sm90a.cu; elsewhere the kernel is empty and tls_sm90a = 0.
#include "ls_attention/ls_attention_mma.cuh"
#include "common/wgmma.cuh"

// Shared memory: two buffers of key rows i64 [KT], then (1024-byte aligned, up to 1024 bytes of slack) Qs, dOs [QM][64]
// and two buffers of Ks, Vs [KT][64], all swizzled.
#define WG_D 64
#define WG_DQ_SMEM (16 * KT + 1024 + (2 * QM + 4 * KT) * WG_D * 2)
TLS_EXPORT(ls_attention_bwd_dq_wgmma_smem, WG_DQ_SMEM)
TLS_EXPORT(ls_attention_bwd_dq_wgmma_threads, QM_WARPS * 32)
TLS_EXPORT(ls_attention_bwd_dq_wgmma_qb, QM)
TLS_EXPORT(ls_attention_bwd_dq_wgmma_d, WG_D)

extern "C" __global__ void __launch_bounds__(QM_WARPS * 32, 2) ls_attention_bwd_dq_wgmma_d64(LsAttentionParams p)
{
#if defined(TLS_SM90A)
    constexpr int D = WG_D;
    extern __shared__ __align__(1024) unsigned char smem[];
    const Block k = block_of(p, QM);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, wg = warp / 4;

    Smem sm;
    sm.rows[0] = (i64*)smem;
    sm.rows[1] = sm.rows[0] + KT;
    unsigned char* tiles = (unsigned char*)(sm.rows[1] + KT);
    tiles = sw128_align(tiles);
    sm.Qs = (u16*)tiles;
    u16* dOs = sm.Qs + QM * D;
    sm.Ks[0] = dOs + QM * D;
    sm.Vs[0] = sm.Ks[0] + KT * D;
    sm.Ks[1] = sm.Vs[0] + KT * D;
    sm.Vs[1] = sm.Ks[1] + KT * D;
    issue_consecutive<D, true>(sm.Qs, p.q, q_row(p, k, k.q0), k.nq, QM, p.qld);
    issue_consecutive<D, true>(dOs, p.dout, q_row(p, k, k.q0), k.nq, QM, p.qld);

    // D_i from global memory: the dO rows in flight to shared memory are waited on with the first key tile.
    float lse[2], dd[2];
    dq_pass_rows<D>(p, k, lse, dd);

    const float sl2 = p.scale * TLS_LOG2E, lse2[2] = {lse[0] * TLS_LOG2E, lse[1] * TLS_LOG2E};
    // This warpgroup's 64 query rows of Q and dO (K-major A operands; k steps of 16 columns are 32 bytes).
    const u64 qd = sw128_desc(sm.Qs + wg * 64 * D, 1024, 1024), dod = sw128_desc(dOs + wg * 64 * D, 1024, 1024);
    float dq[D / 8][4] = {};
    for_each_tile<D, true>(p, k, sm, [&](const u16* Ks, const u16* Vs, const i64* rows, bool full) {
        float pr[KT / 8][4], ds[KT / 8][4];
        wgmma_ss_pair(pr, qd, sw128_desc(Ks, 1024, 1024), ds, dod, sw128_desc(Vs, 1024, 1024));  // S = Q·Kᵀ, dP = dO·Vᵀ
        dq_scores_to_ds<KT>(pr, ds, rows, full, sl2, lse2, dd, lane);
        wgmma_xb_split(dq, ds, Ks);  // dQ += dS·K, K [64 keys][64] read transposed
    });

    for (int h = 0; h < 2; ++h)
    {
        const int qi = warp * 16 + lane / 4 + 8 * h, i = k.q0 + qi;
        if (qi >= k.nq) continue;
        store_row_bf16<D>((u16*)p.dq + q_row(p, k, i), dq, h, lse[h] == TLS_INF ? 0.f : p.scale);
    }
#endif
}
