// Backward of the bidirectional LS attention in bf16 on the tensor cores (reference section 1.4-1.5), deterministic:
// every gradient has one writer, so no float atomics (FlashAttention-2's split of the backward into a query-major and
// a key-major pass). With P = exp(σ·Q·Kᵀ − lse) over each query's key list, dP = dO·Vᵀ, D_i = dO_i·O_i and
// dS = P ∘ (dP − D):
//   ls_attention_bwd_dq_mma:  block = QN queries of a segment (the forward's blocks, narrow or wide): dQ = σ·dS·K
//                             over the query's key list, in registers; writes D_i for the key passes.
//   ls_attention_bwd_kv_mma:  block = KT window positions j0.. of one (b, h): walks the query tiles of every segment
//                             whose window [s·w − e, (s+1)·w + e) holds one of them; dV = Pᵀ·dO, dK = σ·dSᵀ·Q in
//                             registers, written once (a position no window holds, or a padded key, gets zeros).
//   ls_attention_bwd_lm_mma:  block = KT landmarks x one query group: the same products over the group's queries into
//                             fp32 partials; ls_attention_bwd_lm_sum_bf16 (ls_attention.cu) adds the groups in order (two-stage, fixed order).
// Tile ownership in the key passes: warp w owns keys 16w.. of the tile; a query tile of QB queries is taken in two
// halves, the accumulator tile [16 keys x QB/2 queries], Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ; Pᵀ and dSᵀ enter the dV, dK
// products as hi + lo bf16 (mma_tiles.cuh). The key passes double-buffer their query tiles (kv_walk); their code is in
// ls_attention_bwd_keys.cuh, which ls_attention_bwd_keys_sm90a.cu instantiates with wgmma products.
#include "ls_attention/ls_attention_mma.cuh"
#include "ls_attention/ls_attention_bwd_keys.cuh"

TLS_EXPORT(ls_attention_bwd_mma_qb, QB)
TLS_EXPORT(ls_attention_bwd_dq_mma_wide_qb, QM)
TLS_EXPORT(ls_attention_bwd_dq_mma_wide_threads, QM_WARPS * 32)
TLS_EXPORT(ls_attention_bwd_mma_kt, KT)
TLS_EXPORT(ls_attention_bwd_mma_threads, NWARP * 32)
// Dynamic shared memory, bytes = fixed + per_d·D (rows of STRIDE(D) bf16). dQ pass: start()'s two buffers of key rows
// i64 [KT], Qs [QN], two buffers of Ks, Vs [KT], then dOs [QN]. Key passes (kv_start): key rows i64 [KT], Ks, Vs [KT],
// then two buffers of Qs, dOs [QB] and of the query tile's lse and D [QB] floats.
#define DQ_SMEM_PER_D(QN) (2 * (2 * (QN) + 4 * KT))
#define DQ_SMEM_FIXED(QN) (16 * KT + 2 * (2 * (QN) + 4 * KT) * STRIDE(0))
TLS_EXPORT(ls_attention_bwd_dq_mma_smem_per_d, DQ_SMEM_PER_D(QB))
TLS_EXPORT(ls_attention_bwd_dq_mma_smem_fixed, DQ_SMEM_FIXED(QB))
TLS_EXPORT(ls_attention_bwd_dq_mma_wide_smem_per_d, DQ_SMEM_PER_D(QM))
TLS_EXPORT(ls_attention_bwd_dq_mma_wide_smem_fixed, DQ_SMEM_FIXED(QM))
TLS_EXPORT(ls_attention_bwd_kv_mma_smem_per_d, 2 * (4 * QB + 2 * KT))
TLS_EXPORT(ls_attention_bwd_kv_mma_smem_fixed, 8 * KT + 2 * (4 * QB + 2 * KT) * STRIDE(0) + 4 * 4 * QB)

template <int D, int QN> __device__ void ls_attention_bwd_dq_mma(const LsAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const Block k = block_of(p, QN);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    unsigned char* at = smem;
    const Smem sm = start<D, QN>(p, k, at);
    u16* dOs = (u16*)at;
    issue_consecutive<D>(dOs, p.dout, q_row(p, k, k.q0), k.nq, QN, p.qld);

    // D_i from global memory: the dO rows in flight to shared memory are waited on with the first key tile.
    float lse[2], dd[2];
    dq_pass_rows<D>(p, k, lse, dd);

    // P = exp(σ·s − lse) = 2^(s·sl2 − lse·log2 e): one FFMA and one ex2 a probability.
    const float sl2 = p.scale * TLS_LOG2E, lse2[2] = {lse[0] * TLS_LOG2E, lse[1] * TLS_LOG2E};
    float dq[D / 8][4] = {};
    for_each_tile<D>(p, k, sm, [&](const u16* Ks, const u16* Vs, const i64* rows, bool full) {
        float pr[KT / 8][4] = {}, ds[KT / 8][4] = {};
        mma_abt<D, KT>(pr, sm.Qs + warp * 16 * STRIDE(D), STRIDE(D), Ks, STRIDE(D));
        mma_abt<D, KT>(ds, dOs + warp * 16 * STRIDE(D), STRIDE(D), Vs, STRIDE(D));
        dq_scores_to_ds<KT>(pr, ds, rows, full, sl2, lse2, dd, lane);
        mma_xb<KT, D>(dq, ds, Ks, STRIDE(D));
    });

    for (int h = 0; h < 2; ++h)
    {
        const int qi = warp * 16 + lane / 4 + 8 * h, i = k.q0 + qi;
        if (qi >= k.nq) continue;
        store_row_bf16<D>((u16*)p.dq + q_row(p, k, i), dq, h, lse[h] == TLS_INF ? 0.f : p.scale);
    }
}

// The dQ pass asks for 4 narrow or 2 wide blocks an SM (registers capped at 128; the compiler's 168 gave 3): B16 H8
// n4096 d64 w128 r64 on the H200, 482 -> 439 us (narrow). The key pass, its query tiles taken in halves, asks for 3 (it
// had 236 registers, 2 blocks; capped without the halves it measured 449 -> 454 us, with them 447 -> 406 us).
#define TLS_INSTANTIATE_BWD(D)                                                                                  \
    extern "C" __global__ void __launch_bounds__(NWARP * 32, 4) ls_attention_bwd_dq_mma_d##D(LsAttentionParams p) { ls_attention_bwd_dq_mma<D, QB>(p); } \
    extern "C" __global__ void __launch_bounds__(QM_WARPS * 32, 2) ls_attention_bwd_dq_mma_wide_d##D(LsAttentionParams p) { ls_attention_bwd_dq_mma<D, QM>(p); } \
    extern "C" __global__ void __launch_bounds__(NWARP * 32, 3) ls_attention_bwd_kv_mma_d##D(LsAttentionParams p) { ls_attention_bwd_kv_mma<D>(p); } \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attention_bwd_lm_mma_d##D(LsAttentionParams p) { ls_attention_bwd_lm_mma<D>(p); }

TLS_INSTANTIATE_BWD(16)
TLS_INSTANTIATE_BWD(32)
TLS_INSTANTIATE_BWD(48)
TLS_INSTANTIATE_BWD(64)
TLS_INSTANTIATE_BWD(80)
TLS_INSTANTIATE_BWD(96)
TLS_INSTANTIATE_BWD(112)
TLS_INSTANTIATE_BWD(128)
