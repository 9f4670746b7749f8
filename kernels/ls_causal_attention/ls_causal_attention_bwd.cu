// Causal LS attention backward on the CUDA cores: the key-side passes, after ls_causal_attention.cu's dQ pass (which
// writes each query's log-sum-exp in double to lse64). Deterministic: every gradient element has one writer, and what
// all (b, h) share (du, dv_bias, dR, dRc) goes through per-(b, h) partials added in a fixed order (the sum kernel
// below). No float atomics. Reference: src/TransformerLS/Ops/LsCausalAttention/LsCausalAttention.Reference.cs.
//
// Passes, grid.z = B·H, a block's KT "columns" from c0 = blockIdx.x·KT:
//   keys  (columns: window rows P + j): dK_j = Σ_i dS_ij·σq_i + (Σ_i dS_ij)·u, dV_j = Σ_i P_ij·dO_i;
//                                       du partial Σ_j (Σ_i dS_ij)·k_j
//   rel   (columns: offsets δ; grid.y: query groups of REL_GROUP): dR_δ = Σ_i dS_{i,i−δ}·σq_i + (Σ_i dS)·v;
//                                       dv_bias partial Σ_δ (Σ_i dS)·R_δ
//   ckeys (columns: compressed rows n): dK̄_n = Σ_i dS_in·σq_i, dV̄_n = Σ_i P_in·dO_i
//   crel  (columns: offsets δ of Rc):   dRc_δ = Σ_i dS_{i,n}·σq_i, n = ncmp(i) − 1 − δ
// Logits as in the forward: (σq + u)·k_j + (σq + v)·R_{i−j} in the window, σq·(K̄_n + Rc_δ) compressed.
// A pass's own rows (its KT columns' keys and values, or R / Rc rows) stay in shared memory ("fixed"); the other side
// of each pair (the R rows its keys meet, or the keys its offsets meet) is loaded per query tile: QB + KT − 1
// "moving" rows. Per tile a warp per query and a lane per column put P and dS into shared [QB][KT + 1]; then the
// thread owning (column, c) adds Σ_i dS·σq_ic (and Σ_i P·dO_ic) over the tile's queries in query order, in double,
// rounded once a tile onto its fp32 total (as ls_attention.cu's key passes).
#include "ls_causal_attention/ls_causal_attention.cuh"

#define KT 32
#define QB 32
#define RT (QB + KT - 1)
#define NWARP 4
#define REL_GROUP 4096  // queries per rel-pass block (grid.y groups): bounds the serial walk, and the partials to G·w rows
TLS_EXPORT(ls_causal_attention_bwd_f32_kt, KT)
TLS_EXPORT(ls_causal_attention_bwd_f32_rel_group, REL_GROUP)
TLS_EXPORT(ls_causal_attention_bwd_f32_threads, NWARP * 32)
// Shared memory of pass_carve, bytes = fixed + per_d·d: dd, lse [QB] doubles; F0, F1 [KT][d + 1]; M0, M1 [RT][d + 1];
// fc [KT], mc [RT]; Us, VBs [d]; Qs, dOs [QB][d]; Ps, dSs [QB][KT + 1]; gA, gB [KT][d + 1]; gs [KT]; fok [KT], mok [RT].
TLS_EXPORT(ls_causal_attention_bwd_keys_f32_smem_per_d, 4 * (4 * KT + 2 * RT + 2 + 2 * QB))
TLS_EXPORT(ls_causal_attention_bwd_keys_f32_smem_fixed, 4 * (4 * QB + 7 * KT + 4 * RT + 2 * QB * (KT + 1)))

enum Pass { KEYS = 0, REL = 1, CKEYS = 2, CREL = 3 };

struct PassSmem
{
    double *dd, *lse;
    float *F0, *F1, *M0, *M1, *fc, *mc, *Us, *VBs, *Qs, *dOs, *Ps, *dSs, *gA, *gB, *gs;
    int *fok, *mok;
};

TLS_DEVICE float* take(float*& at, int n) { float* r = at; at += n; return r; }

TLS_DEVICE PassSmem pass_carve(float* sm, int d)
{
    const int ds = d + 1;
    PassSmem s;
    s.dd = (double*)sm;  // first: the dynamic shared base is 16-byte aligned
    s.lse = s.dd + QB;
    float* at = (float*)(s.lse + QB);
    s.F0 = take(at, KT * ds); s.F1 = take(at, KT * ds); s.M0 = take(at, RT * ds); s.M1 = take(at, RT * ds);
    s.fc = take(at, KT); s.mc = take(at, RT); s.Us = take(at, d); s.VBs = take(at, d);
    s.Qs = take(at, QB * d); s.dOs = take(at, QB * d); s.Ps = take(at, QB * (KT + 1)); s.dSs = take(at, QB * (KT + 1));
    s.gA = take(at, KT * ds); s.gB = take(at, KT * ds); s.gs = take(at, KT);
    s.fok = (int*)take(at, KT); s.mok = (int*)take(at, RT);
    return s;
}

TLS_DEVICE double dot_d(const float* a, const float* b, int d)
{
    double s = 0.0;
    for (int c = 0; c < d; ++c) s += (double)a[c] * b[c];
    return s;
}

// c[row] = y·X[row] for rows [0, n) of X [n][d + 1] (y null: zeros), one warp a row.
TLS_DEVICE void row_consts(float* c, const float* X, const float* y, int n, int d)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, ds = d + 1;
    for (int row = warp; row < n; row += NWARP)
    {
        float a = 0.f;
        if (y)
            for (int k = lane; k < d; k += 32) a += X[row * ds + k] * y[k];
        a = warp_sum(a);
        if (lane == 0) c[row] = a;
    }
}

// The first query whose compressed keys include row c (ncmp(i) > c); the same bound for a crel offset c.
TLS_DEVICE int first_seeing(const LsCausalAttentionParams& p, int c) { return max(0, (c / p.r - p.mc + 1) * p.l); }

// The end of a compressed pass's query tile from q0: at most QB queries whose ncmp spread is below QB, so that the
// moving rows (KT + spread of them) fit RT.
TLS_DEVICE int cmp_tile_end(const LsCausalAttentionParams& p, int q0, int qhi)
{
    int e = min(q0 + QB, qhi);
    while (e - 1 > q0 && ncmp_of(p, e - 1) - ncmp_of(p, q0) > QB - 1) --e;
    return e;
}

// Row `row` of a [*, d] tensor into X (stride d + 1), zeros where !ok; the block's threads over idx.
template <typename T>
TLS_DEVICE void load_row(float* X, int slot, int d, bool ok, const void* src, i64 first, int c)
{
    X[slot * (d + 1) + c] = ok ? load<T>(src, first + c) : 0.f;
}

template <typename T, int PASS> __device__ void ls_causal_attention_bwd_pass(LsCausalAttentionParams p)
{
    extern __shared__ float sm[];
    constexpr bool window = PASS == KEYS || PASS == REL;
    constexpr bool values_fixed = PASS == KEYS || PASS == CKEYS;  // the columns are keys (else offsets: R or Rc rows)
    const int d = p.d, ds = d + 1, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int bh = blockIdx.z, b = bh / p.H, h = bh % p.H, c0 = blockIdx.x * KT;
    const i64 qbase = (i64)bh * p.L * d, kbase = (i64)bh * (p.P + p.L) * d, cbase = (i64)bh * p.nc * d;
    const PassSmem s = pass_carve(sm, d);

    // The block's own rows (fixed) and zeroed sums.
    for (int idx = threadIdx.x; idx < KT * d; idx += blockDim.x)
    {
        const int kk = idx / d, c = idx % d, col = c0 + kk;
        bool ok;
        if (PASS == KEYS)
        {
            ok = col < p.P + p.L && is_token(p, b, col - p.P);
            load_row<T>(s.F0, kk, d, ok, p.k, kbase + (i64)col * d, c);
            load_row<T>(s.F1, kk, d, ok, p.v, kbase + (i64)col * d, c);
        }
        else if (PASS == REL) { ok = col < p.w; load_row<T>(s.F0, kk, d, ok, p.rel, ((i64)h * p.w + col) * d, c); }
        else if (PASS == CKEYS)
        {
            ok = col < p.nc;
            load_row<T>(s.F0, kk, d, ok, p.kc, cbase + (i64)col * d, c);
            load_row<T>(s.F1, kk, d, ok, p.vc, cbase + (i64)col * d, c);
        }
        else { ok = col < p.nc; load_row<T>(s.F0, kk, d, ok, p.relc, ((i64)h * p.nc + col) * d, c); }
        s.gA[kk * ds + c] = 0.f;
        s.gB[kk * ds + c] = 0.f;
        if (c == 0) { s.fok[kk] = ok; s.gs[kk] = 0.f; }
    }
    for (int c = threadIdx.x; c < d; c += blockDim.x)
    {
        s.Us[c] = load<T>(p.u, (i64)h * d + c);
        s.VBs[c] = load<T>(p.vb, (i64)h * d + c);
    }
    __syncthreads();
    row_consts(s.fc, s.F0, PASS == KEYS ? s.Us : PASS == REL ? s.VBs : nullptr, KT, d);  // u·k_j, v·R_δ, or 0

    // The queries that can meet a column: keys j0 = c0 − P.. are seen by i in [j0, j0 + KT + w − 2]; offset δ by
    // i >= δ − P; compressed row (or Rc offset) c by i >= first_seeing(c).
    int qlo, qhi = p.L;
    if (PASS == KEYS) { qlo = max(c0 - p.P, 0); qhi = min(c0 - p.P + KT + p.w - 1, p.L); }
    else if (PASS == REL)
    {
        qlo = max(max(c0 - p.P, 0), (int)blockIdx.y * REL_GROUP);
        qhi = min(p.L, ((int)blockIdx.y + 1) * REL_GROUP);
    }
    else qlo = first_seeing(p, c0);

    for (int q0 = qlo, q1; q0 < qhi; q0 = q1)
    {
        q1 = window ? min(q0 + QB, qhi) : cmp_tile_end(p, q0, qhi);
        const int nq = q1 - q0, nc0 = ncmp_of(p, q0);
        __syncthreads();  // the previous tile's readers are done
        for (int idx = threadIdx.x; idx < nq * d; idx += blockDim.x)
        {
            const i64 off = qbase + (i64)q0 * d + idx;
            s.Qs[idx] = p.scale * load<T>(p.q, off);
            s.dOs[idx] = load<T>(p.dout, off);
        }
        // Moving row m: KEYS: R_δ, δ = q0 − j0 − KT + 1 + m; REL: position j = q0 − c0 − KT + 1 + m;
        // CKEYS: Rc_δ, δ = ncmp(q0) − c0 − KT + m; CREL: compressed row n = ncmp(q0) − c0 − KT + m.
        for (int idx = threadIdx.x; idx < RT * d; idx += blockDim.x)
        {
            const int m = idx / d, c = idx % d;
            bool ok;
            if (PASS == KEYS)
            {
                const int delta = q0 - (c0 - p.P) - KT + 1 + m;
                ok = delta >= 0 && delta < p.w;
                load_row<T>(s.M0, m, d, ok, p.rel, ((i64)h * p.w + delta) * d, c);
            }
            else if (PASS == REL)
            {
                const int j = q0 - c0 - KT + 1 + m;
                ok = j >= -p.P && j < p.L && is_token(p, b, j);
                load_row<T>(s.M0, m, d, ok, p.k, kbase + (i64)(p.P + j) * d, c);
                load_row<T>(s.M1, m, d, ok, p.v, kbase + (i64)(p.P + j) * d, c);
            }
            else if (PASS == CKEYS)
            {
                const int delta = nc0 - c0 - KT + m;
                ok = delta >= 0 && delta < p.nc;
                load_row<T>(s.M0, m, d, ok, p.relc, ((i64)h * p.nc + delta) * d, c);
            }
            else
            {
                const int n = nc0 - c0 - KT + m;
                ok = n >= 0 && n < p.nc;
                load_row<T>(s.M0, m, d, ok, p.kc, cbase + (i64)n * d, c);
                load_row<T>(s.M1, m, d, ok, p.vc, cbase + (i64)n * d, c);
            }
            if (c == 0) s.mok[m] = ok;
        }
        __syncthreads();
        // D_i = dO_i·O_i in double, as the dQ pass computes it; lse from the dQ pass (TLS_INF: a padded query).
        for (int qi = warp; qi < nq; qi += NWARP)
        {
            double a = 0.0;
            for (int c = lane; c < d; c += 32) a += (double)s.dOs[qi * d + c] * load<T>(p.o, qbase + (i64)(q0 + qi) * d + c);
            a = warp_sum(a);
            if (lane == 0) { s.dd[qi] = a; s.lse[qi] = p.lse64[(i64)bh * p.L + q0 + qi]; }
        }
        row_consts(s.mc, s.M0, PASS == KEYS ? s.VBs : PASS == REL ? s.Us : nullptr, RT, d);  // v·R_δ, u·k_j, or 0
        __syncthreads();
        for (int qi = warp; qi < nq; qi += NWARP)
        {
            const int i = q0 + qi, col = c0 + lane;
            // The pair's moving row: the offsets and positions line up so that m = qi − lane + KT − 1 in the window,
            // and m = (ncmp(i) − ncmp(q0)) − lane + KT − 1 for the compressed passes.
            const int m = window ? qi - lane + KT - 1 : ncmp_of(p, i) - nc0 - lane + KT - 1;
            bool ok = s.lse[qi] != TLS_INF && s.fok[lane] && s.mok[m];
            if (PASS == KEYS) { const int delta = i - (col - p.P); ok = ok && delta >= 0 && delta < p.w; }
            if (PASS == CKEYS) ok = ok && col < ncmp_of(p, i);
            float pr = 0.f, dsv = 0.f;
            if (ok)
            {
                const float* key = values_fixed ? s.F0 + lane * ds : s.M0 + m * ds;
                const float* rel = values_fixed ? s.M0 + m * ds : s.F0 + lane * ds;
                const float* val = values_fixed ? s.F1 + lane * ds : s.M1 + m * ds;
                const float kc = values_fixed ? s.fc[lane] : s.mc[m], rc = values_fixed ? s.mc[m] : s.fc[lane];
                const double x = dot_d(s.Qs + qi * d, key, d) + kc + dot_d(s.Qs + qi * d, rel, d) + rc;
                const double e = exp(x - s.lse[qi]);
                pr = (float)e;
                dsv = (float)(e * (dot_d(s.dOs + qi * d, val, d) - s.dd[qi]));
            }
            s.Ps[qi * (KT + 1) + lane] = pr;
            s.dSs[qi * (KT + 1) + lane] = dsv;
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < KT * d; idx += blockDim.x)
        {
            const int kk = idx / d, c = idx % d;
            double ga = 0.0, gb = 0.0, gs = 0.0;
            for (int qi = 0; qi < nq; ++qi)
            {
                const double g = s.dSs[qi * (KT + 1) + kk];
                ga += g * s.Qs[qi * d + c];
                if (values_fixed) gb += (double)s.Ps[qi * (KT + 1) + kk] * s.dOs[qi * d + c];
                if (window && c == 0) gs += g;
            }
            s.gA[kk * ds + c] += (float)ga;
            if (values_fixed) s.gB[kk * ds + c] += (float)gb;
            if (window && c == 0) s.gs[kk] += (float)gs;
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < KT * d; idx += blockDim.x)
    {
        const int kk = idx / d, c = idx % d, col = c0 + kk;
        const float ga = s.gA[kk * ds + c];
        if (PASS == KEYS && col < p.P + p.L)
        {
            store<T>(p.dk, kbase + (i64)col * d + c, ga + s.gs[kk] * s.Us[c]);
            store<T>(p.dv, kbase + (i64)col * d + c, s.gB[kk * ds + c]);
        }
        if (PASS == REL && col < p.w)
            p.drel_part[(((i64)bh * gridDim.y + blockIdx.y) * p.w + col) * d + c] = ga + s.gs[kk] * s.VBs[c];
        if (PASS == CKEYS && col < p.nc)
        {
            store<T>(p.dkc, cbase + (i64)col * d + c, ga);
            store<T>(p.dvc, cbase + (i64)col * d + c, s.gB[kk * ds + c]);
        }
        if (PASS == CREL && col < p.nc) p.drelc_part[((i64)bh * p.nc + col) * d + c] = ga;
    }
    // du (keys) and dv_bias (rel): this block's Σ_column (Σ_i dS)·row, in column order.
    if (window)
        for (int c = threadIdx.x; c < d; c += blockDim.x)
        {
            float a = 0.f;
            for (int kk = 0; kk < KT; ++kk) a += s.gs[kk] * s.F0[kk * ds + c];
            float* part = PASS == KEYS ? p.du_part : p.dvb_part;
            part[(((i64)bh * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) * d + c] = a;
        }
}

// Stage 2: drel [H, w, d], drelc [H, Nc, d], du, dv_bias [H, d] from the partials, each a sum over b (then over the
// groups and tiles of a (b, h)) in that fixed order, in double, rounded once to T.
template <typename T> __device__ void ls_causal_attention_bwd_sum(LsCausalAttentionParams p)
{
    const int d = p.d, H = p.H, groups = (p.L + REL_GROUP - 1) / REL_GROUP;
    const int ktiles = (p.P + p.L + KT - 1) / KT, dtiles = (p.w + KT - 1) / KT;
    const i64 nrel = (i64)H * p.w * d, nrelc = (i64)H * p.nc * d, nbias = (i64)H * d;
    GRID_STRIDE(i, nrel + nrelc + 2 * nbias)
    {
        double a = 0.0;
        if (i < nrel)
        {
            const i64 h = i / ((i64)p.w * d), rest = i % ((i64)p.w * d);
            for (int b = 0; b < p.B; ++b)
                for (int g = 0; g < groups; ++g) a += p.drel_part[(((i64)b * H + h) * groups + g) * p.w * d + rest];
            store<T>(p.drel, i, (float)a);
            continue;
        }
        i64 j = i - nrel;
        if (j < nrelc)
        {
            const i64 h = j / ((i64)p.nc * d), rest = j % ((i64)p.nc * d);
            for (int b = 0; b < p.B; ++b) a += p.drelc_part[((i64)b * H + h) * p.nc * d + rest];
            store<T>(p.drelc, j, (float)a);
            continue;
        }
        j -= nrelc;
        const bool du = j < nbias;
        if (!du) j -= nbias;
        const i64 h = j / d, c = j % d;
        const int per = du ? ktiles : groups * dtiles;
        const float* part = du ? p.du_part : p.dvb_part;
        for (int b = 0; b < p.B; ++b)
            for (int t = 0; t < per; ++t) a += part[(((i64)b * H + h) * per + t) * d + c];
        store<T>(du ? (void*)p.du : (void*)p.dvb, j, (float)a);
    }
}

#define TLS_INSTANTIATE_PASSES(name, T)                                                                                         \
    extern "C" __global__ void ls_causal_attention_bwd_keys_##name(LsCausalAttentionParams p) { ls_causal_attention_bwd_pass<T, KEYS>(p); }   \
    extern "C" __global__ void ls_causal_attention_bwd_rel_##name(LsCausalAttentionParams p) { ls_causal_attention_bwd_pass<T, REL>(p); }     \
    extern "C" __global__ void ls_causal_attention_bwd_ckeys_##name(LsCausalAttentionParams p) { ls_causal_attention_bwd_pass<T, CKEYS>(p); } \
    extern "C" __global__ void ls_causal_attention_bwd_crel_##name(LsCausalAttentionParams p) { ls_causal_attention_bwd_pass<T, CREL>(p); }   \
    extern "C" __global__ void ls_causal_attention_bwd_sum_##name(LsCausalAttentionParams p) { ls_causal_attention_bwd_sum<T>(p); }

TLS_INSTANTIATE_PASSES(f32, float)
TLS_INSTANTIATE_PASSES(bf16, bf16)
