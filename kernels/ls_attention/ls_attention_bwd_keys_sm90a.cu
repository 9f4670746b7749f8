// The key-major passes of the bidirectional LS attention backward in bf16 on Hopper's warpgroup tensor cores (wgmma,
// sm_90a), d = 64: ls_attention_bwd_kv_mma and ls_attention_bwd_lm_mma of ls_attention_bwd_keys.cuh (the same walk, masks,
// outputs and fixed-order landmark partials as the mma.sync kernels of ls_attention_bwd_mma.cu) with each query tile's
// products as wgmma (kv_tile_wgmma). A block is one warpgroup over KT = 64 keys; its tiles are in the 128-byte swizzle.
//
// Built for sm_90a only, as ls_attention_fwd_sm90a.cu; elsewhere the kernels are empty and tls_sm90a = 0.
#include "ls_attention/ls_attention_bwd_keys.cuh"
#include "common/wgmma.cuh"

// Shared memory: key rows i64 [KT], up to 1024 bytes of slack, Ks, Vs [KT][64] and two buffers of Qs, dOs [QB][64]
// (swizzled), then the two buffers' lse and D [QB] floats.
#define WG_D 64
TLS_EXPORT(ls_attention_bwd_keys_wgmma_smem, 8 * KT + 1024 + (2 * KT + 4 * QB) * WG_D * 2 + 4 * 4 * QB)
TLS_EXPORT(ls_attention_bwd_keys_wgmma_d, WG_D)

// Three blocks an SM, as the mma.sync key pass (registers capped at 168).
extern "C" __global__ void __launch_bounds__(NWARP * 32, 3) ls_attention_bwd_kv_wgmma_d64(LsAttentionParams p)
{
#if defined(TLS_SM90A)
    ls_attention_bwd_kv_mma<WG_D, true>(p);
#endif
}

extern "C" __global__ void __launch_bounds__(NWARP * 32) ls_attention_bwd_lm_wgmma_d64(LsAttentionParams p)
{
#if defined(TLS_SM90A)
    ls_attention_bwd_lm_mma<WG_D, true>(p);
#endif
}
