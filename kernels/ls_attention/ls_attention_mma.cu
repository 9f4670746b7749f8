// Bidirectional Long-Short attention in bf16 on the tensor cores (mma.sync m16n8k16, fp32 accumulation), forward:
// the same math, key list and outputs as ls_attention.cu (see there and reference section 1.4-1.5). The backward is
// ls_attention_bwd_mma.cu.
//
// A block owns QN queries of one segment (QB = 64, or the wide QM = 128 where w > 64), 16 per warp; the key list
// streams through shared memory KT = 64 keys at a time, landmark tiles first, then window tiles that start at the
// segment's window start, so every query of the block sees the same keys and masking is one flag per key. Scores
// S = Q·Kᵀ and the products with V, dO, K and Q are mmas on bf16 inputs as given. Probabilities and score gradients
// are fp32; they enter an mma as hi + lo bf16 pairs (mma_tiles.cuh), which keeps the result as accurate as the fp32
// kernel's.
#include "ls_attention/ls_attention_mma.cuh"

TLS_EXPORT(ls_attention_mma_qb, QB)
TLS_EXPORT(ls_attention_mma_threads, NWARP * 32)
TLS_EXPORT(ls_attention_mma_wide_qb, QM)
TLS_EXPORT(ls_attention_mma_wide_threads, QM_WARPS * 32)
// Dynamic shared memory of the carve-up (start()), bytes = fixed + per_d·D, rows of STRIDE(D) = D + 8 bf16: two buffers
// of key rows i64 [KT], Qs [QN], two buffers of Ks, Vs [KT]. The launcher reads these: one source.
#define FWD_SMEM_PER_D(QN) (2 * ((QN) + 4 * KT))
#define FWD_SMEM_FIXED(QN) (16 * KT + 2 * ((QN) + 4 * KT) * STRIDE(0))
TLS_EXPORT(ls_attention_fwd_mma_smem_per_d, FWD_SMEM_PER_D(QB))
TLS_EXPORT(ls_attention_fwd_mma_smem_fixed, FWD_SMEM_FIXED(QB))
TLS_EXPORT(ls_attention_fwd_mma_wide_smem_per_d, FWD_SMEM_PER_D(QM))
TLS_EXPORT(ls_attention_fwd_mma_wide_smem_fixed, FWD_SMEM_FIXED(QM))

template <int D, int QN> __device__ void ls_attention_fwd_mma(const LsAttentionParams& p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const Block k = block_of(p, QN);
    if (k.nq <= 0) return;
    const int warp = threadIdx.x / 32;
    unsigned char* at = smem;
    const Smem sm = start<D, QN>(p, k, at);

    float o[D / 8][4] = {};
    float m[2] = {-TLS_INF, -TLS_INF}, l[2] = {0.f, 0.f};  // running maxima of the unscaled scores, partial row sums
    const float sl2 = p.scale * TLS_LOG2E;
    for_each_tile<D>(p, k, sm, [&](const u16* Ks, const u16* Vs, const i64* rows, bool full) {
        float s[KT / 8][4] = {};
        mma_abt<D, KT>(s, sm.Qs + warp * 16 * STRIDE(D), STRIDE(D), Ks, STRIDE(D));
        if (!full) mask_absent_keys<KT>(s, rows);
        attend_tile<KT, D>(s, o, m, l, Vs, sl2);
    });

    const float ms[2] = {m[0] * p.scale, m[1] * p.scale};  // the running maxima in scaled units, for the lse
    store_softmax_rows<D>((u16*)p.o + q_row(p, k, k.q0), p.lse + (i64)k.bh * p.n + k.q0, k.nq, o, ms, l,
                          [&](int qi) { return is_token(p, k.b, k.q0 + qi); }, p.qld);
}

// The wide block asks for two blocks an SM (registers capped at 128): the same 16 warps an SM as four narrow blocks.
#define TLS_INSTANTIATE_MMA(D)                                                                                  \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attention_fwd_mma_d##D(LsAttentionParams p) { ls_attention_fwd_mma<D, QB>(p); } \
    extern "C" __global__ void __launch_bounds__(QM_WARPS * 32, 2) ls_attention_fwd_mma_wide_d##D(LsAttentionParams p) { ls_attention_fwd_mma<D, QM>(p); }

TLS_INSTANTIATE_MMA(16)
TLS_INSTANTIATE_MMA(32)
TLS_INSTANTIATE_MMA(48)
TLS_INSTANTIATE_MMA(64)
TLS_INSTANTIATE_MMA(80)
TLS_INSTANTIATE_MMA(96)
TLS_INSTANTIATE_MMA(112)
TLS_INSTANTIATE_MMA(128)
