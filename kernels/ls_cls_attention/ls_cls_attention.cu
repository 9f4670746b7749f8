// The CLS token's attention in the LRA last layer (reference section 1.6): the CLS query attends under one
// softmax to its own key and to the attention OUTPUTS C_t of the real tokens, which serve as keys and values:
//   logits = [σq·k, σq·C_t (pads −inf)],  o = p_0·v + Σ_t p_t·C_t.
// Reference: src/TransformerLS/Ops/LsClsAttention/LsClsAttention.cs.
// One block per (batch, head); each warp runs an online softmax over a strided share of the tokens, lanes
// holding channels; the warps' partial states merge in shared memory. Dot products and D = dO·O in double, so
// dP − D cancels exactly when one key holds all the weight (a sequence of padding only); the softmax
// statistics too, so the saved lse carries no expf/logf ulps into the backward's p (fp32 missed the 2x rule
// for dk on one seed in eight with a single token).
#include "ls_cls_attention/ls_cls_attention.cuh"

#define NWARP 8
#define MAXC 4   // channels per lane: d <= 128
TLS_EXPORT(ls_cls_attention_threads, NWARP * 32)

template <typename T> TLS_DEVICE double dot_lanes(const float* a, const void* x, i64 base, int d)
{
    double s = 0.0;
    for (int j = 0; j < MAXC; ++j)
    {
        int ch = (threadIdx.x % 32) + 32 * j;
        if (ch < d) s += (double)a[j] * load<T>(x, base + ch);
    }
    return warp_sum(s);
}

TLS_DEVICE bool token(const LsClsAttentionParams& p, int b, int t) { return !p.mask || p.mask[(i64)b * p.n + t] != 0.f; }

template <typename T> __device__ void ls_cls_attention_fwd(LsClsAttentionParams p)
{
    __shared__ double wm[NWARP], wl[NWARP];
    __shared__ float wacc[NWARP][128];
    const int bh = blockIdx.x, b = bh / p.H, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const i64 vb = (i64)bh * p.d, cb = (i64)bh * p.n * p.d;
    float qs[MAXC], acc[MAXC];
    for (int j = 0; j < MAXC; ++j)
    {
        int ch = lane + 32 * j;
        qs[j] = ch < p.d ? p.scale * load<T>(p.q, vb + ch) : 0.f;
        acc[j] = 0.f;
    }
    double m = -TLS_INF, l = 0.0;  // the softmax statistics in double: the backward's p = exp(s − lse) depends on them
    // Key -1 is the CLS token's own (k, v), taken by warp 0; then the tokens, strided over the warps.
    for (int t = warp == 0 ? -1 : warp; t < p.n; t += (t == -1 ? 1 : NWARP))
    {
        if (t >= 0 && !token(p, b, t)) continue;
        const void* key = t < 0 ? p.k : p.c;
        i64 base = t < 0 ? vb : cb + (i64)t * p.d;
        double s = dot_lanes<T>(qs, key, base, p.d);
        double mn = fmax(m, s), corr = exp(m - mn), e = exp(s - mn);
        const void* val = t < 0 ? p.v : p.c;
        for (int j = 0; j < MAXC; ++j)
        {
            int ch = lane + 32 * j;
            if (ch < p.d) acc[j] = (float)(acc[j] * corr + e * load<T>(val, base + ch));
        }
        l = l * corr + e;
        m = mn;
    }
    if (lane == 0) { wm[warp] = m; wl[warp] = l; }
    for (int j = 0; j < MAXC; ++j) if (lane + 32 * j < p.d) wacc[warp][lane + 32 * j] = acc[j];
    __syncthreads();
    double M = -TLS_INF;
    for (int w = 0; w < NWARP; ++w) M = fmax(M, wm[w]);  // finite: warp 0 always has the CLS key
    double L = 0.0;
    for (int w = 0; w < NWARP; ++w) L += wm[w] == -TLS_INF ? 0.0 : wl[w] * exp(wm[w] - M);
    for (int ch = threadIdx.x; ch < p.d; ch += blockDim.x)
    {
        double a = 0.0;
        for (int w = 0; w < NWARP; ++w) if (wm[w] != -TLS_INF) a += wacc[w][ch] * exp(wm[w] - M);
        store<T>(p.o, vb + ch, (float)(a / L));
    }
    if (threadIdx.x == 0) p.lse[bh] = (float)(M + log(L));
}

// ds = p·(dP − D); dq = σ·(ds_cls·k + Σ ds_t·C_t); dk = ds_cls·σq; dv = p_cls·dO; dC_t (+)= ds_t·σq + p_t·dO.
template <typename T> __device__ void ls_cls_attention_bwd(LsClsAttentionParams p)
{
    __shared__ float wdq[NWARP][128];
    __shared__ double Dsh;
    const int bh = blockIdx.x, b = bh / p.H, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const i64 vb = (i64)bh * p.d, cb = (i64)bh * p.n * p.d;
    const float lse = p.lse[bh];
    float qs[MAXC], dO[MAXC], dq[MAXC];
    for (int j = 0; j < MAXC; ++j)
    {
        int ch = lane + 32 * j;
        qs[j] = ch < p.d ? p.scale * load<T>(p.q, vb + ch) : 0.f;
        dO[j] = ch < p.d ? load<T>(p.dout, vb + ch) : 0.f;
        dq[j] = 0.f;
    }
    if (warp == 0)
    {
        double D = dot_lanes<T>(dO, p.o, vb, p.d);
        if (lane == 0) Dsh = D;
    }
    __syncthreads();
    const double D = Dsh;
    for (int t = warp == 0 ? -1 : warp; t < p.n; t += (t == -1 ? 1 : NWARP))
    {
        bool tok = t < 0 || token(p, b, t);
        const void* key = t < 0 ? p.k : p.c;
        i64 base = t < 0 ? vb : cb + (i64)t * p.d;
        float pr = 0.f, ds = 0.f;
        if (tok)
        {
            pr = (float)exp(dot_lanes<T>(qs, key, base, p.d) - lse);
            const void* val = t < 0 ? p.v : p.c;
            ds = (float)(pr * (dot_lanes<T>(dO, val, base, p.d) - D));
        }
        for (int j = 0; j < MAXC; ++j)
        {
            int ch = lane + 32 * j;
            if (ch >= p.d) continue;
            if (tok) dq[j] += ds * load<T>(key, base + ch);
            if (t < 0)
            {
                store<T>(p.dk, vb + ch, ds * qs[j]);
                store<T>(p.dv, vb + ch, pr * dO[j]);
            }
            else
            {
                float g = ds * qs[j] + pr * dO[j];  // C_t is key and value
                i64 off = base + ch;
                store<T>(p.dc, off, p.accumulate ? load<T>(p.dc, off) + g : g);
            }
        }
    }
    for (int j = 0; j < MAXC; ++j) if (lane + 32 * j < p.d) wdq[warp][lane + 32 * j] = dq[j];
    __syncthreads();
    for (int ch = threadIdx.x; ch < p.d; ch += blockDim.x)
    {
        float a = 0.f;
        for (int w = 0; w < NWARP; ++w) a += wdq[w][ch];
        store<T>(p.dq, vb + ch, p.scale * a);
    }
}

TLS_INSTANTIATE(ls_cls_attention_fwd, LsClsAttentionParams)
TLS_INSTANTIATE(ls_cls_attention_bwd, LsClsAttentionParams)
