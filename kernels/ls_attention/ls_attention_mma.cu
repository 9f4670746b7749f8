// Bidirectional Long-Short attention in bf16 on the tensor cores (mma.sync m16n8k16, fp32 accumulation), forward:
// the same math, key list and outputs as ls_attention.cu (see there and reference section 1.4-1.5). The backward is
// ls_attention_bwd_mma.cu.
//
// A block owns QB_FWD(D) = 64·MB queries of one segment, 16·MB per warp (MB row blocks of 16: 2 at d <= 64, where
// the registers allow, so every K and V fragment read from shared memory feeds two row blocks; 1 above); the key list
// streams through shared memory KT = 64 keys at a time, landmark tiles first, then window tiles that start at the
// segment's window start, so every query of the block sees the same keys and masking is one flag per key. Scores
// S = Q·Kᵀ and the products with V are mmas on bf16 inputs as given. Probabilities are fp32; they enter the P·V mma
// as hi + lo bf16 pairs (mma_tiles.cuh), which keeps the result as accurate as the fp32 kernel's.
#include "ls_attention/ls_attention_mma.cuh"

#define FWD_MB(D) ((D) <= 64 ? 2 : 1)
#define QB_FWD(D) (16 * NWARP * FWD_MB(D))
// Dynamic shared memory of the carve-up (start()): two buffers of key rows i64 [KT], Qs [QB_FWD(D)], two buffers of
// Ks, Vs [KT], rows of STRIDE(D) = D + 8 bf16. The launcher reads the block and these bytes by d / 16 − 1: one source.
#define FWD_SMEM(D) (16 * KT + 2 * (QB_FWD(D) + 4 * KT) * STRIDE(D))
TLS_EXPORT(ls_attention_mma_threads, NWARP * 32)
TLS_EXPORT_TABLE(ls_attention_fwd_mma_qb, 8, QB_FWD(16), QB_FWD(32), QB_FWD(48), QB_FWD(64), QB_FWD(80), QB_FWD(96), QB_FWD(112), QB_FWD(128))
TLS_EXPORT_TABLE(ls_attention_fwd_mma_smem, 8, FWD_SMEM(16), FWD_SMEM(32), FWD_SMEM(48), FWD_SMEM(64), FWD_SMEM(80), FWD_SMEM(96),
                 FWD_SMEM(112), FWD_SMEM(128))

template <int D> __device__ void ls_attention_fwd_mma(const LsAttentionParams& p)
{
    constexpr int MB = FWD_MB(D);
    extern __shared__ __align__(16) unsigned char smem[];
    const Block k = block_of(p, QB_FWD(D));
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    unsigned char* at = smem;
    const Smem sm = start<D, QB_FWD(D)>(p, k, at);

    float o[MB][D / 8][4] = {};
    float m[MB][2], l[MB][2];
#pragma unroll
    for (int mb = 0; mb < MB; ++mb) m[mb][0] = m[mb][1] = -TLS_INF, l[mb][0] = l[mb][1] = 0.f;
    for_each_tile<D>(p, k, sm, [&](const u16* Ks, const u16* Vs, const i64* rows, bool full) {
        float s[MB][KT / 8][4] = {};
        mma_abt_rows<MB, D, KT>(s, sm.Qs + warp * 16 * MB * STRIDE(D), STRIDE(D), Ks, STRIDE(D));
#pragma unroll
        for (int mb = 0; mb < MB; ++mb)
        {
#pragma unroll
            for (int nb = 0; nb < KT / 8; ++nb)
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    s[mb][nb][e] = full || rows[nb * 8 + 2 * (lane % 4) + e % 2] >= 0 ? s[mb][nb][e] * p.scale : -TLS_INF;
            online_softmax<KT, D, true>(s[mb], o[mb], m[mb][0], l[mb][0], 0);
            online_softmax<KT, D, true>(s[mb], o[mb], m[mb][1], l[mb][1], 1);
        }
        mma_xb_rows<MB, KT, D>(o, s, Vs, STRIDE(D));
    });

#pragma unroll
    for (int mb = 0; mb < MB; ++mb)
        store_softmax_rows<D>((u16*)p.o + k.base + (i64)k.q0 * D, p.lse + (i64)k.bh * p.n + k.q0, k.nq, o[mb], m[mb], l[mb],
                              [&](int qi) { return is_token(p, k.b, k.q0 + qi); }, (warp * MB + mb) * 16);
}

#define TLS_INSTANTIATE_MMA(D)                                                                                  \
    extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attention_fwd_mma_d##D(LsAttentionParams p) { ls_attention_fwd_mma<D>(p); }

TLS_INSTANTIATE_MMA(16)
TLS_INSTANTIATE_MMA(32)
TLS_INSTANTIATE_MMA(48)
TLS_INSTANTIATE_MMA(64)
TLS_INSTANTIATE_MMA(80)
TLS_INSTANTIATE_MMA(96)
TLS_INSTANTIATE_MMA(112)
TLS_INSTANTIATE_MMA(128)
