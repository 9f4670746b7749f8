// What the CUDA-core (float32) attention kernels share: one warp per query row, one lane per key of a 32-key
// tile. The tensor-core kernels have their counterpart in mma_tiles.cuh.
#pragma once
#include "common/prelude.cuh"

// One 32-key tile of a query row's online softmax: lane kk holds the logit of key kk (−inf: not in the row's
// key set). Rescales the row's accumulator acc[0, d) and updates its running max m and sum l (shared memory).
TLS_DEVICE void warp_online_softmax(float s, float& m, float& l, float* acc, const float* Vs, int d, int ds)
{
    const int lane = threadIdx.x % 32;
    float mold = m, mnew = fmaxf(mold, warp_max(s));
    if (mnew == -TLS_INF) return;  // no key yet (uniform across the warp)
    float pr = s == -TLS_INF ? 0.f : expf(s - mnew);
    float corr = expf(mold - mnew);
    float lsum = warp_sum(pr);
    // Every lane runs every 32-column step (the shuffles need the whole warp); lanes past d read and write nothing.
    for (int c0 = 0; c0 < d; c0 += 32)
    {
        const int c = c0 + lane;
        const bool in = c < d;
        float a = in ? acc[c] * corr : 0.f;
        for (int kk = 0; kk < 32; ++kk)
        {
            float w = __shfl_sync(0xffffffffu, pr, kk);
            if (in) a += w * Vs[kk * ds + c];
        }
        if (in) acc[c] = a;
    }
    __syncwarp();
    if (lane == 0) { m = mnew; l = l * corr + lsum; }
    __syncwarp();
}

// The end of a forward: O = acc / l and lse = m + log l for the block's nq rows; a row where keep(row) is false
// (a padded query) gets zeros. Row qi of O starts at element o_first + qi·ld (ld < 0: qi·d); lse points at the first row's.
template <typename T, typename Keep>
TLS_DEVICE void store_softmax_rows(void* o, i64 o_first, float* lse, int nq, int d, const float* acc, const float* m, const float* l, Keep keep, int ld = -1)
{
    for (int idx = threadIdx.x; idx < nq * d; idx += blockDim.x)
    {
        int qi = idx / d;
        bool ok = keep(qi);
        store<T>(o, o_first + (ld < 0 ? idx : (i64)qi * ld + idx % d), ok ? acc[idx] / l[qi] : 0.f);
        if (idx % d == 0) lse[qi] = ok ? m[qi] + logf(l[qi]) : 0.f;
    }
}
