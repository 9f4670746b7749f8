// Causal Long-Short attention (enwik8 code, reference section 3): query i of a block of L attends under ONE
// softmax to the compressed keys of the chunks strictly before its own (cache chunks first) with the chunk
// relative term, and to the band of the last w positions (itself included; negative positions come from the
// P cached rows) with the Transformer-XL terms:
//   compressed (c, k): σq_i·(K̄_{c,k} + Rc_δ),  δ = (Mc + ⌊i/l⌋ − c)·r − 1 − k
//   window j:          (σq_i + u)·k_j + (σq_i + v)·R_{i−j}
// Reference: src/TransformerLS/Ops/LsCausalAttention/LsCausalAttention.cs.
//
// A block owns up to QB queries of ONE projection chunk, so all its queries see the same compressed keys and
// the same δ for each of them: the tile holds K̄ + Rc directly. Window tiles of KT positions bring the R rows of
// every δ the tile's (query, key) pairs can have (QB + KT − 1 rows); u·k_j and v·R_δ are per-key constants.
// fp32 math on the CUDA cores, one lane per key as in ls_attention.cu: the float32 path (bf16 runs on the
// tensor cores in ls_causal_attention_mma.cu).
#include "ls_causal_attention/ls_causal_attention.cuh"
#include "common/simt_tiles.cuh"

#define KT 32  // one key per lane: simt_tiles.cuh
#define QB 32
#define RT (QB + KT - 1)
#define NWARP 4
TLS_EXPORT(ls_causal_attention_f32_qb, QB)
TLS_EXPORT(ls_causal_attention_f32_threads, NWARP * 32)
// Dynamic shared memory of the carve-ups below, bytes = fixed + per_d·d (the launcher reads these: one source).
// Both start with carve_common: K, V tiles [KT][d + 1], R rows [RT][d + 1], u and v-bias [d], [KT] + [RT] + 2·[KT].
// Forward: + Qs, Acc [QB][d], M, L [QB]. Backward's dQ pass: three [QB] doubles (D_i, the running max then lse,
// the running sum) first, then carve_common, Qs, dOs, dQs [QB][d], qok [QB].
TLS_EXPORT(ls_causal_attention_fwd_f32_smem_per_d, 4 * (2 * KT + RT + 2 + 2 * QB))
TLS_EXPORT(ls_causal_attention_fwd_f32_smem_fixed, 4 * (5 * KT + 2 * RT + 2 * QB))
TLS_EXPORT(ls_causal_attention_bwd_dq_f32_smem_per_d, 4 * (2 * KT + RT + 2 + 3 * QB))
TLS_EXPORT(ls_causal_attention_bwd_dq_f32_smem_fixed, 4 * (5 * KT + 2 * RT + 7 * QB))

struct Smem
{
    float *Ks, *Vs, *Rs, *Us, *VBs, *ub, *vr;
    int *valid, *pos;
};

// Tile t0 of the compressed keys (window = false) or of the window positions (window = true).
template <typename T>
TLS_DEVICE void load_tile(const LsCausalAttentionParams& p, const Block& k, bool window, int t0, const Smem& s)
{
    const int d = p.d, ds = d + 1;
    for (int idx = threadIdx.x; idx < KT * d; idx += blockDim.x)
    {
        int kk = idx / d, c = idx % d, t = t0 + kk;
        float kv = 0.f, vv = 0.f;
        int ok = 0, at = 0;
        if (!window && t < k.ncmp)
        {
            i64 off = k.cbase + (i64)t * d + c;
            kv = load<T>(p.kc, off) + load<T>(p.relc, ((i64)k.h * p.nc + k.ncmp - 1 - t) * d + c);
            vv = load<T>(p.vc, off);
            ok = 1; at = t;
        }
        else if (window && t < k.nwin)
        {
            at = k.jlo + t;
            if (is_token(p, k.b, at))
            {
                i64 off = k.kbase + (i64)(p.P + at) * d + c;
                kv = load<T>(p.k, off); vv = load<T>(p.v, off); ok = 1;
            }
        }
        s.Ks[kk * ds + c] = kv;
        s.Vs[kk * ds + c] = vv;
        if (c == 0) { s.valid[kk] = ok; s.pos[kk] = at; }
    }
    if (!window) return;
    // R rows of δ = δ0 + row, δ0 = q0 − (jlo + t0) − KT + 1; rows outside [0, w) are never inside the band.
    int d0 = k.q0 - (k.jlo + t0) - KT + 1;
    for (int idx = threadIdx.x; idx < RT * d; idx += blockDim.x)
    {
        int row = idx / d, c = idx % d, delta = d0 + row;
        s.Rs[row * ds + c] = delta >= 0 && delta < p.w ? load<T>(p.rel, ((i64)k.h * p.w + delta) * d + c) : 0.f;
    }
    __syncthreads();
    // Per-key and per-δ constants: u·k_j and v·R_δ, one warp per row.
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int row = warp; row < KT + RT; row += NWARP)
    {
        const float* x = row < KT ? s.Ks + row * ds : s.Rs + (row - KT) * ds;
        const float* y = row < KT ? s.Us : s.VBs;
        float a = 0.f;
        for (int c = lane; c < d; c += 32) a += x[c] * y[c];
        a = warp_sum(a);
        if (lane == 0) { if (row < KT) s.ub[row] = a; else s.vr[row - KT] = a; }
    }
}

// Logits are sums of four dot products here (content, u, relative, v terms); accumulating in double keeps the
// fp32 kernel within 2x of a float32 CPU evaluation of the same sum (plain fp32 missed it for du and dK̄).
TLS_DEVICE double row_dot(const float* a, const float* b, int d)
{
    double s = 0.0;
    for (int c = 0; c < d; ++c) s += (double)a[c] * b[c];
    return s;
}

// Logit of query qi against the tile's key `lane`, or −inf where the key is not in qi's set.
TLS_DEVICE double logit_d(const LsCausalAttentionParams& p, const Block& k, bool window, int t0, const Smem& s, const float* qs, int qi, int lane)
{
    const int ds = p.d + 1;
    if (!window) return t0 + lane < k.ncmp ? row_dot(qs, s.Ks + lane * ds, p.d) : -TLS_INF;
    int i = k.q0 + qi, j = s.pos[lane];
    if (t0 + lane >= k.nwin || !s.valid[lane] || j > i || j <= i - p.w) return -TLS_INF;
    int row = qi + KT - 1 - lane;
    return row_dot(qs, s.Ks + lane * ds, p.d) + s.ub[lane] + row_dot(qs, s.Rs + row * ds, p.d) + s.vr[row];
}

TLS_DEVICE float logit(const LsCausalAttentionParams& p, const Block& k, bool window, int t0, const Smem& s, const float* qs, int qi, int lane)
{
    return (float)logit_d(p, k, window, t0, s, qs, qi, lane);
}

// u and v of the block's head (r_w_bias, r_r_bias), used by every window tile.
template <typename T> TLS_DEVICE void load_biases(const LsCausalAttentionParams& p, const Block& k, const Smem& s)
{
    for (int c = threadIdx.x; c < p.d; c += blockDim.x)
    {
        s.Us[c] = load<T>(p.u, (i64)k.h * p.d + c);
        s.VBs[c] = load<T>(p.vb, (i64)k.h * p.d + c);
    }
}

TLS_DEVICE float* carve(float*& at, int n) { float* r = at; at += n; return r; }

TLS_DEVICE Smem carve_common(float*& at, int d)
{
    Smem s;
    const int ds = d + 1;
    s.Ks = carve(at, KT * ds); s.Vs = carve(at, KT * ds); s.Rs = carve(at, RT * ds);
    s.Us = carve(at, d); s.VBs = carve(at, d); s.ub = carve(at, KT); s.vr = carve(at, RT);
    s.valid = (int*)carve(at, KT); s.pos = (int*)carve(at, KT);
    return s;
}

template <typename T> __device__ void ls_causal_attention_fwd(LsCausalAttentionParams p)
{
    extern __shared__ float sm[];
    const Block k = block_of(p, QB);
    if (k.nq <= 0) return;
    const int d = p.d, lane = threadIdx.x % 32, warp = threadIdx.x / 32, ds = d + 1;
    float* at = sm;
    const Smem s = carve_common(at, d);
    float* Qs = carve(at, QB * d);
    float* Acc = carve(at, QB * d);
    float* M = carve(at, QB);
    float* Lsum = carve(at, QB);

    for (int idx = threadIdx.x; idx < k.nq * d; idx += blockDim.x)
    {
        Qs[idx] = p.scale * load<T>(p.q, k.qbase + (i64)k.q0 * d + idx);
        Acc[idx] = 0.f;
    }
    load_biases<T>(p, k, s);
    for (int i = threadIdx.x; i < QB; i += blockDim.x) { M[i] = -TLS_INF; Lsum[i] = 0.f; }

    for (int phase = 0; phase < 2; ++phase)
    {
        const bool window = phase == 1;
        const int count = window ? k.nwin : k.ncmp;
        for (int t0 = 0; t0 < count; t0 += KT)
        {
            __syncthreads();
            load_tile<T>(p, k, window, t0, s);
            __syncthreads();
            for (int qi = warp; qi < k.nq; qi += NWARP)
            {
                float sc = logit(p, k, window, t0, s, Qs + qi * d, qi, lane);
                warp_online_softmax(sc, M[qi], Lsum[qi], Acc + qi * d, s.Vs, d, ds);
            }
        }
    }
    __syncthreads();
    store_softmax_rows<T>(p.o, k.qbase + (i64)k.q0 * d, p.lse + (i64)k.bh * p.L + k.q0, k.nq, d, Acc, M, Lsum,
                          [&](int qi) { return is_token(p, k.b, k.q0 + qi); });
}

// Backward, dQ pass (the first of the deterministic CUDA-core backward; the key-side passes are in
// ls_causal_attention_bwd.cu): block = the forward's QB queries. dS = P ∘ (dP − D), D_i = dO_i·O_i, and
// dQ = σ·Σ dS·(key + R or Rc). Logits, D and dP in double; each query's log-sum-exp is taken again in double over
// the logits in double (the forward's fp32 lse, rounded, would put up to half an ulp of |lse| into every P) and
// written to lse64 for the key passes (TLS_INF for a padded query, which takes no part).
template <typename T> __device__ void ls_causal_attention_bwd_dq(LsCausalAttentionParams p)
{
    extern __shared__ float sm[];
    const Block k = block_of(p, QB);
    if (k.nq <= 0) return;
    const int d = p.d, lane = threadIdx.x % 32, warp = threadIdx.x / 32, ds = d + 1;
    double* Dd = (double*)sm;      // first: the dynamic shared base is 16-byte aligned
    double* Lse = Dd + QB;         // the running max, then the log-sum-exp
    double* Sum = Lse + QB;
    float* at = (float*)(Sum + QB);
    const Smem s = carve_common(at, d);
    float* Qs = carve(at, QB * d);
    float* dOs = carve(at, QB * d);
    float* dQs = carve(at, QB * d);
    int* qok = (int*)carve(at, QB);

    for (int idx = threadIdx.x; idx < k.nq * d; idx += blockDim.x)
    {
        i64 off = k.qbase + (i64)k.q0 * d + idx;
        Qs[idx] = p.scale * load<T>(p.q, off);
        dOs[idx] = load<T>(p.dout, off);
        dQs[idx] = 0.f;
    }
    load_biases<T>(p, k, s);
    __syncthreads();
    // D_i in double, like dP: where one key holds all the weight, dP − D must cancel to ~0, not to fp32 noise.
    for (int qi = warp; qi < k.nq; qi += NWARP)
    {
        int i = k.q0 + qi;
        double a = 0.0;
        for (int c = lane; c < d; c += 32) a += (double)dOs[qi * d + c] * load<T>(p.o, k.qbase + (i64)i * d + c);
        a = warp_sum(a);
        if (lane == 0) { Dd[qi] = a; Lse[qi] = -TLS_INF; Sum[qi] = 0.0; qok[qi] = is_token(p, k.b, i); }
    }

    for (int sweep = 0; sweep < 2; ++sweep)  // 0: the log-sum-exp; 1: dQ
    {
        for (int phase = 0; phase < 2; ++phase)
        {
            const bool window = phase == 1;
            const int count = window ? k.nwin : k.ncmp;
            for (int t0 = 0; t0 < count; t0 += KT)
            {
                __syncthreads();
                load_tile<T>(p, k, window, t0, s);
                __syncthreads();
                for (int qi = warp; qi < k.nq; qi += NWARP)
                {
                    if (!qok[qi]) continue;
                    const double x = logit_d(p, k, window, t0, s, Qs + qi * d, qi, lane);
                    if (sweep == 0)
                    {
                        double mt = x;
                        for (int o = 16; o > 0; o >>= 1) mt = fmax(mt, __shfl_xor_sync(0xffffffffu, mt, o));
                        if (mt == -TLS_INF) continue;  // the whole warp: no key of this tile
                        const double m = fmax(Lse[qi], mt), e = warp_sum(x == -TLS_INF ? 0.0 : exp(x - m));
                        if (lane == 0) { Sum[qi] = Sum[qi] * exp(Lse[qi] - m) + e; Lse[qi] = m; }
                        continue;
                    }
                    float dsv = 0.f;
                    if (x != -TLS_INF)
                    {
                        const double pr = exp(x - Lse[qi]);
                        dsv = (float)(pr * (row_dot(dOs + qi * d, s.Vs + lane * ds, d) - Dd[qi]));
                    }
                    // Any head dim: every lane runs every 32-column step (the shuffles need the whole warp); lanes
                    // past d read and write nothing.
                    for (int c0 = 0; c0 < d; c0 += 32)
                    {
                        const int c = c0 + lane;
                        const bool in = c < d;
                        float g = 0.f;
                        for (int kk = 0; kk < KT; ++kk)
                        {
                            float w = __shfl_sync(0xffffffffu, dsv, kk);
                            if (!in) continue;
                            float key = s.Ks[kk * ds + c];
                            if (window) key += s.Rs[(qi + KT - 1 - kk) * ds + c];
                            g += w * key;
                        }
                        if (in) dQs[qi * d + c] += g;
                    }
                }
            }
        }
        if (sweep == 1) break;
        __syncthreads();
        for (int qi = threadIdx.x; qi < k.nq; qi += blockDim.x)
        {
            Lse[qi] = qok[qi] && Sum[qi] > 0.0 ? Lse[qi] + log(Sum[qi]) : TLS_INF;
            p.lse64[(i64)k.bh * p.L + k.q0 + qi] = Lse[qi];
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < k.nq * d; idx += blockDim.x)
        store<T>(p.dq, k.qbase + (i64)k.q0 * d + idx, qok[idx / d] ? p.scale * dQs[idx] : 0.f);
}

extern "C" __global__ void ls_causal_attention_fwd_f32(LsCausalAttentionParams p) { ls_causal_attention_fwd<float>(p); }
extern "C" __global__ void ls_causal_attention_bwd_dq_f32(LsCausalAttentionParams p) { ls_causal_attention_bwd_dq<float>(p); }
// bf16 at head dims the tensor-core kernels do not take (d % 16 != 0 or d > 128): the same CUDA-core math.
extern "C" __global__ void ls_causal_attention_fwd_bf16(LsCausalAttentionParams p) { ls_causal_attention_fwd<bf16>(p); }
extern "C" __global__ void ls_causal_attention_bwd_dq_bf16(LsCausalAttentionParams p) { ls_causal_attention_bwd_dq<bf16>(p); }
