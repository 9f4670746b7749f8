// One decode step of the causal LS attention, the vector kernel: the math, the key list and its splits of
// ls_causal_decode.cu (see there; reference: src/TransformerLS/Ops/LsCausalDecode/LsCausalDecode.Reference.cs), streamed.
// The launcher's choice where d is a multiple of the 16-byte vector's N elements, d <= 64·N, and every pointer is 16-byte
// aligned.
//   - Lanes in groups of G (a power of two, G·N·VPL >= d): a group owns one key row at a time, each lane VPL 16-byte
//     vectors of it; group kk of the block takes the split's keys kk, kk + KPB, … (KPB = DECODE_THREADS / G), in
//     rounds of DECODE_VEC_ROWS / VPL keys a group.
//   - Each lane copies its vectors of a round's key, relative and value rows into its own shared-memory slots
//     (cp.async) DECODE_STAGES − 1 rounds ahead of using them: the copies in flight are bounded by shared memory, not
//     by registers, and no barrier is needed (a lane reads only what it copied).
//   - Each group keeps its own online softmax in registers (running max m, sum l, the p·v sums of its channels): no
//     logits in shared memory and no block barrier inside the key loop, and a split may hold any number of keys.
//   - The groups merge in a fixed order: within a warp a butterfly over the groups (lanes g, g + G, …), then the warps'
//     states in warp order: (m, l, acc) ∘ (m', l', acc') = (M, e^{m−M} l + e^{m'−M} l', e^{m−M} acc + e^{m'−M} acc').
//   - Splits chosen by the launcher (one where B·H alone fills the GPU): with one split the block writes o itself; else
//     each split block writes its partial, counts itself in arrived[bh] (an integer atomic), and the last one to arrive
//     combines the splits in split order (the same bits whichever block is last) and zeroes the count.
//   - The append fused (p.kraw set): see decode_append.
//   - PRE (the _rp kernels, opt-in: TLS_DECODE_REL=pre): the relative logits x2·r of the split's keys come first, into
//     shared memory (decode_rel_logits: the relative rows are the batch's, read through L2, four keys a group in flight),
//     and the key loop stages only the key and value rows: a third less shared memory a block (more blocks an SM; the
//     kernel is latency-bound at batch 64) and no relative row in a round's dependent chain.
// Shared memory: the copy stages (smem_stages, or smem_stages_pre), the append's age-0 key and value (2·d, as fp32
// slots), each key's cache row (split_keys ints) and, PRE, its relative logit (split_keys floats), the warps' p·v sums
// (WARPS·d), 2·splits combine weights (the launcher's size: one formula).
#include "ls_causal_decode/ls_causal_decode_block.cuh"

TLS_EXPORT(ls_causal_decode_vec_threads, DECODE_THREADS)
TLS_EXPORT(ls_causal_decode_vec_smem_per_key, 4)
TLS_EXPORT(ls_causal_decode_vec_pre_smem_per_key, 8)
TLS_EXPORT(ls_causal_decode_vec_smem_per_d, 4 * (DECODE_THREADS / 32 + 2))
TLS_EXPORT(ls_causal_decode_vec_smem_per_split, 8)

#define DECODE_VEC_ROWS 2  // vectors of each row kind a lane copies a round (U = DECODE_VEC_ROWS / VPL keys)
#define DECODE_STAGES 4    // rounds a lane has in shared memory: DECODE_STAGES − 1 in flight while it computes one
// Bytes of the copy stages: per stage and thread DECODE_VEC_ROWS 16-byte vectors of each row kind staged: key, relative
// and value (KINDS 3), or key and value (PRE: KINDS 2).
#define DECODE_STAGE_BYTES_OF(KINDS) (DECODE_STAGES * DECODE_VEC_ROWS * (KINDS) * 16 * DECODE_THREADS)
TLS_EXPORT(ls_causal_decode_vec_smem_stages, DECODE_STAGE_BYTES_OF(3))
TLS_EXPORT(ls_causal_decode_vec_smem_stages_pre, DECODE_STAGE_BYTES_OF(2))

// The append, by the block (sequence b, head h) whose split holds window age 0 (no other block of the launch reads or
// writes the rows it writes: age 0 is the only key in the window slot, and the chunk rows are read after the launch).
// LN_W over all H·d channels of this position's raw key and value (mean, then the mean squared deviation: the DualLN
// kernel's statistics), its head's slice rounded to T into kn, vn and, where rows_w[b] is the window slot (the only
// row the caller may name besides −1), into the window ring; its head's slices of h, s, kraw, vraw into the chunk
// buffers. Returns whether kn, vn are the age-0 key and value (else the ring's slot still is: nothing was written).
template <typename T> TLS_DEVICE bool decode_append(const LsDecodeParams& p, int b, int h, int slot, T* kn, T* vn, float* red)
{
    const int d = p.D, Dm = p.H * d, t = threadIdx.x;
    const i64 row = (i64)b * Dm;
    float sk = 0.f, sv = 0.f;
    for (int c = t; c < Dm; c += DECODE_THREADS) { sk += load<T>(p.kraw, row + c); sv += load<T>(p.vraw, row + c); }
    const float mk = block_reduce<false>(sk, red) / Dm, mv = block_reduce<false>(sv, red) / Dm;
    float qk = 0.f, qv = 0.f;
    for (int c = t; c < Dm; c += DECODE_THREADS)
    {
        const float ek = load<T>(p.kraw, row + c) - mk, ev = load<T>(p.vraw, row + c) - mv;
        qk += ek * ek;
        qv += ev * ev;
    }
    const float rk = 1.f / sqrtf(block_reduce<false>(qk, red) / Dm + p.eps), rv = 1.f / sqrtf(block_reduce<false>(qv, red) / Dm + p.eps);
    const int rw = (int)p.rows_w[b], rc = (int)p.rows_chunk[b];
    const bool wring = rw == slot, wchunk = rc >= 0 && rc < p.l;
    const i64 ring = ((i64)(b * p.H + h) * p.W + rw) * d, chunk = ((i64)b * p.l + rc) * Dm;
    for (int c = t; c < d; c += DECODE_THREADS)
    {
        const int x = h * d + c;
        store<T>(kn, c, (load<T>(p.kraw, row + x) - mk) * rk * p.gamma[x] + p.beta[x]);
        store<T>(vn, c, (load<T>(p.vraw, row + x) - mv) * rv * p.gamma[x] + p.beta[x]);
        if (wring) { ((T*)p.kw)[ring + c] = kn[c]; ((T*)p.vw)[ring + c] = vn[c]; }
        if (wchunk)
        {
            ((T*)p.hbuf)[chunk + x] = ((const T*)p.h_in)[row + x];
            ((T*)p.krbuf)[chunk + x] = ((const T*)p.kraw)[row + x];
            ((T*)p.vrbuf)[chunk + x] = ((const T*)p.vraw)[row + x];
        }
    }
    const int HR = p.H * p.R;
    if (wchunk)
        for (int r = t; r < p.R; r += DECODE_THREADS) ((T*)p.sbuf)[((i64)b * p.l + rc) * HR + h * p.R + r] = ((const T*)p.s_in)[(i64)b * HR + h * p.R + r];
    __syncthreads();
    return wring;
}

TLS_DEVICE float ld_cg(const float* p)
{
    float v;
    asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p) : "memory");
    return v;
}

// Element e of a 16-byte vector of T's raw bits (the loads in flight hold 4 registers, converted at use).
template <typename T> TLS_DEVICE float raw_elem(const uint4& q, int e);
template <> TLS_DEVICE float raw_elem<float>(const uint4& q, int e)
{
    return __uint_as_float(e == 0 ? q.x : e == 1 ? q.y : e == 2 ? q.z : q.w);
}
template <> TLS_DEVICE float raw_elem<bf16>(const uint4& q, int e)
{
    const unsigned w = e / 2 == 0 ? q.x : e / 2 == 1 ? q.y : e / 2 == 2 ? q.z : q.w;
    return bf16x2_half(w, e % 2);
}

// This thread's copies into shared memory (cp.async, 16 bytes; source global) and the wait for all but the N most recent
// groups of them ("memory": no shared load of a stage moves across either).
TLS_DEVICE void decode_copy_16(void* smem, const void* gmem)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(smem)), "l"(gmem) : "memory");
}
template <int N> TLS_DEVICE void decode_copies_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// Slot (stage st, key u, row kind 0 k / 1 r / 2 v, or PRE 0 k / 1 v, vector w) of this thread: consecutive threads,
// consecutive 16 bytes.
template <int U, int VPL, bool PRE> TLS_DEVICE uint4* decode_slot(uint4* stage, int st, int u, int kind, int w)
{
    return stage + (((st * U + u) * (PRE ? 2 : 3) + kind) * VPL + w) * DECODE_THREADS + threadIdx.x;
}
#define DECODE_KIND_K 0
#define DECODE_KIND_R 1
#define DECODE_KIND_V(PRE) ((PRE) ? 1 : 2)

// Round `round` of decode_keys: this lane's copies of its keys' rows into stage round mod DECODE_STAGES.
template <typename T, int G, int VPL, bool PRE>
TLS_DEVICE void decode_issue(const LsDecodeParams& p, uint4* stage, const int* rows, int bh, int h, int j0, int nc, int n, int a0,
                             const T* kn, const T* vn, int round)
{
    constexpr int N = RowVec<T>::N, KPB = DECODE_THREADS / G, U = DECODE_VEC_ROWS / VPL, per = KPB * U, S = DECODE_STAGES;
    const int D = p.D, g = threadIdx.x % G, kk = threadIdx.x / G;
#pragma unroll
    for (int u = 0; u < U; ++u)
    {
        const int jj = round * per + u * KPB + kk, j = j0 + jj;
        if (jj >= n) continue;
        const T *k, *v, *r;
        if (j < nc)
        {
            const bool ring = j < p.Mc * p.R;
            const i64 off = ((i64)bh * (ring ? p.C * p.R : p.Lb * p.R) + rows[jj]) * D;
            k = (const T*)(ring ? p.kring : p.kblock) + off;
            v = (const T*)(ring ? p.vring : p.vblock) + off;
            r = decode_rel_row<T>(p, h, nc, j, D);
        }
        else
        {
            const i64 off = ((i64)bh * p.W + rows[jj]) * D;
            k = (const T*)p.kw + off;
            v = (const T*)p.vw + off;
            r = decode_rel_row<T>(p, h, nc, j, D);
        }
        const int st = round % S;
#pragma unroll
        for (int w = 0; w < VPL; ++w)
        {
            const int c = (w * G + g) * N;
            if (c >= D) continue;
            if (!PRE) decode_copy_16(decode_slot<U, VPL, PRE>(stage, st, u, DECODE_KIND_R, w), r + c);
            if (jj == a0) { *decode_slot<U, VPL, PRE>(stage, st, u, DECODE_KIND_K, w) = *(const uint4*)(kn + c); *decode_slot<U, VPL, PRE>(stage, st, u, DECODE_KIND_V(PRE), w) = *(const uint4*)(vn + c); }
            else { decode_copy_16(decode_slot<U, VPL, PRE>(stage, st, u, DECODE_KIND_K, w), k + c); decode_copy_16(decode_slot<U, VPL, PRE>(stage, st, u, DECODE_KIND_V(PRE), w), v + c); }
        }
    }
}

// One round of decode_keys from stage slots sb (this thread's slot 0 of the stage): the keys jj0 + u·KPB (u < U) of the
// group, all compressed (MODE 0), all window (MODE 1) or either (MODE 2: key jj compressed where jj < ncs; the x's
// chosen per key). MODE is uniform over the warp (the shuffles are the warp's). PRE: x2·r is rl[jj], not staged.
template <typename T, int G, int VPL, int MODE, bool PRE>
TLS_DEVICE void decode_round(const uint4* sb, int jj0, int n, int ncs, const float (&qs)[VPL][RowVec<T>::N], const float (&qu)[VPL][RowVec<T>::N],
                             const float (&qv)[VPL][RowVec<T>::N], int D, float& m, float& l, float (&acc)[VPL][RowVec<T>::N], const float* rl)
{
    constexpr int N = RowVec<T>::N, KPB = DECODE_THREADS / G, U = DECODE_VEC_ROWS / VPL, KINDS = PRE ? 2 : 3;
    const int g = threadIdx.x % G;
    float s[U], mx = m;
#pragma unroll
    for (int u = 0; u < U; ++u)
    {
        const int jj = jj0 + u * KPB;
        const bool cmp = MODE == 0 || (MODE == 2 && jj < ncs);
        float a = 0.f;
        if (jj < n)
#pragma unroll
            for (int w = 0; w < VPL; ++w)
                if ((w * G + g) * N < D)
                {
                    const uint4 kr = sb[((u * KINDS + DECODE_KIND_K) * VPL + w) * DECODE_THREADS];
                    if (PRE)
#pragma unroll
                        for (int e = 0; e < N; ++e) a += (cmp ? qs[w][e] : qu[w][e]) * raw_elem<T>(kr, e);
                    else
                    {
                        const uint4 rr = sb[((u * KINDS + DECODE_KIND_R) * VPL + w) * DECODE_THREADS];
#pragma unroll
                        for (int e = 0; e < N; ++e)
                            a += (cmp ? qs[w][e] : qu[w][e]) * raw_elem<T>(kr, e) + (cmp ? qs[w][e] : qv[w][e]) * raw_elem<T>(rr, e);
                    }
                }
#pragma unroll
        for (int o = G / 2; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
        if (PRE && jj < n) a += rl[jj];
        s[u] = jj < n ? a : -TLS_INF;
        mx = fmaxf(mx, s[u]);
    }
    // A group without a key this round keeps its state (mx = m; while m = −inf, l and acc are still 0).
    const float sc = m == -TLS_INF ? 0.f : expf(m - mx);
    l *= sc;
#pragma unroll
    for (int w = 0; w < VPL; ++w)
#pragma unroll
        for (int e = 0; e < N; ++e) acc[w][e] *= sc;
#pragma unroll
    for (int u = 0; u < U; ++u)
        if (jj0 + u * KPB < n)
        {
            const float pr = expf(s[u] - mx);
            l += pr;
#pragma unroll
            for (int w = 0; w < VPL; ++w)
                if ((w * G + g) * N < D)
                {
                    const uint4 vr = sb[((u * KINDS + DECODE_KIND_V(PRE)) * VPL + w) * DECODE_THREADS];
#pragma unroll
                    for (int e = 0; e < N; ++e) acc[w][e] += pr * raw_elem<T>(vr, e);
                }
        }
    m = mx;
}

// The split's keys [0, n) in rounds of KPB·U (group kk takes keys kk, kk + KPB, … of a round): each lane copies its
// vectors of a round's key, relative and value rows into its own slots of stage (round mod DECODE_STAGES) and uses them
// DECODE_STAGES − 1 rounds later, so those rounds' copies are in flight while it computes (no registers hold them, and
// no barrier: a lane reads only what it copied). Logit s = x1·k + x2·r, (x1, x2) = (σq, σq) for compressed keys
// (relative row Rc_{nc−1−j}), (σq + u, σq + v) for window keys (R_a; key a0 of the split is the append's kn, vn, if
// any); then the group's online softmax (m, l, acc) over them. PRE: x2·r is rl[jj] (decode_rel_logits), not staged.
template <typename T, int G, int VPL, bool PRE>
TLS_DEVICE void decode_keys(const LsDecodeParams& p, uint4* stage, const int* rows, int bh, int h, int j0, int nc, int n, int a0,
                            const T* kn, const T* vn, const float (&qs)[VPL][RowVec<T>::N], const float (&qu)[VPL][RowVec<T>::N],
                            const float (&qv)[VPL][RowVec<T>::N], float& m, float& l, float (&acc)[VPL][RowVec<T>::N], const float* rl)
{
    constexpr int KPB = DECODE_THREADS / G, U = DECODE_VEC_ROWS / VPL, S = DECODE_STAGES, WARP_GROUPS = 32 / G;
    const int kk = threadIdx.x / G, per = KPB * U, rounds = (n + per - 1) / per, ncs = nc - j0;
    // The warp's first and last key of a round, relative to the round's start: its mode (uniform over the warp).
    const int first_kk = threadIdx.x / 32 * WARP_GROUPS, last = (U - 1) * KPB + first_kk + WARP_GROUPS - 1;
    for (int round = 0; round < S - 1; ++round)
    {
        if (round < rounds) decode_issue<T, G, VPL, PRE>(p, stage, rows, bh, h, j0, nc, n, a0, kn, vn, round);
        cp_async_commit();
    }
    for (int round = 0; round < rounds; ++round)
    {
        if (round + S - 1 < rounds) decode_issue<T, G, VPL, PRE>(p, stage, rows, bh, h, j0, nc, n, a0, kn, vn, round + S - 1);
        cp_async_commit();
        decode_copies_wait<S - 1>(); // this round's group is complete
        const uint4* sb = decode_slot<U, VPL, PRE>(stage, round % S, 0, 0, 0);
        const int r0 = round * per;
        if (r0 + last < ncs) decode_round<T, G, VPL, 0, PRE>(sb, r0 + kk, n, ncs, qs, qu, qv, p.D, m, l, acc, rl);
        else if (r0 + first_kk >= ncs) decode_round<T, G, VPL, 1, PRE>(sb, r0 + kk, n, ncs, qs, qu, qv, p.D, m, l, acc, rl);
        else decode_round<T, G, VPL, 2, PRE>(sb, r0 + kk, n, ncs, qs, qu, qv, p.D, m, l, acc, rl);
    }
}

// PRE: the split's relative logits rl[jj] = x2·r into shared memory before the key loop: x2 = σq and row Rc_{nc−1−j} for
// a compressed key j < nc, σq + v and row R_a for window age a = j − nc (the rows decode_issue stages otherwise). Group kk
// takes the keys it scores in the loop (kk, kk + KPB, …), DECODE_REL_KEYS at once so that their loads are in flight
// together; plain loads, since every sequence of the batch reads the same rows (from L2). Every lane runs every
// iteration (the shuffles are the warp's); the caller's barrier publishes rl.
#define DECODE_REL_KEYS 4
template <typename T, int G, int VPL>
TLS_DEVICE void decode_rel_logits(const LsDecodeParams& p, int h, int j0, int nc, int n, const float (&qs)[VPL][RowVec<T>::N],
                                  const float (&qv)[VPL][RowVec<T>::N], float* rl)
{
    constexpr int N = RowVec<T>::N, KPB = DECODE_THREADS / G, RK = DECODE_REL_KEYS;
    const int D = p.D, g = threadIdx.x % G, kk = threadIdx.x / G;
    for (int b0 = 0; b0 < n; b0 += KPB * RK)
    {
        uint4 x[RK][VPL];
#pragma unroll
        for (int u = 0; u < RK; ++u)
        {
            const int jj = b0 + u * KPB + kk, j = j0 + jj;
            const T* r = decode_rel_row<T>(p, h, nc, j, D);
#pragma unroll
            for (int w = 0; w < VPL; ++w)
            {
                const int c = (w * G + g) * N;
                x[u][w] = jj < n && c < D ? *(const uint4*)(r + c) : uint4{0u, 0u, 0u, 0u};
            }
        }
#pragma unroll
        for (int u = 0; u < RK; ++u)
        {
            const int jj = b0 + u * KPB + kk;
            const bool cmp = j0 + jj < nc;
            float a = 0.f;
#pragma unroll
            for (int w = 0; w < VPL; ++w)
#pragma unroll
                for (int e = 0; e < N; ++e) a += (cmp ? qs[w][e] : qv[w][e]) * raw_elem<T>(x[u][w], e);
#pragma unroll
            for (int o = G / 2; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
            if (g == 0 && jj < n) rl[jj] = a;
        }
    }
}

template <typename T, int G, int VPL, bool PRE> __device__ void ls_causal_decode_vec(LsDecodeParams p)
{
    constexpr int N = RowVec<T>::N, WARPS = DECODE_THREADS / 32;
    extern __shared__ __align__(16) float sm[];
    __shared__ float red[WARPS], wm[WARPS], wl[WARPS];
    __shared__ int last;
    const int bh = blockIdx.x, b = bh / p.H, h = bh % p.H, D = p.D, split = blockIdx.y;
    const int t = threadIdx.x, g = t % G, lane = t % 32, warp = t / 32;
    // A dependent launch (the launcher's, sm_90+): q, the state and the append's rows are the previous kernels'; every
    // block waits before its first load, so this grid ends after them (what a later dependent kernel relies on).
    grid_dependents_launch();
    grid_dependency_wait();
    const int slot = (int)p.state[b * 4], nw = (int)p.state[b * 4 + 1], first = (int)p.state[b * 4 + 2], qi = (int)p.state[b * 4 + 3];
    const int nc = (p.Mc + qi) * p.R, keys = nc + nw;
    const int j0 = split * p.split_keys, n = max(0, min(keys, j0 + p.split_keys) - j0);
    uint4* stage = (uint4*)sm;           // the copy stages (decode_keys)
    T* kn = (T*)(sm + DECODE_STAGE_BYTES_OF(PRE ? 2 : 3) / 4); // [D] the append's age-0 key, then [D]
    T* vn = kn + D;                            // value (2·D fp32 slots, 16-byte aligned)
    int* rows = (int*)((float*)kn + 2 * D); // [split_keys] each key's row in its cache, of (sequence, head) b·H + h
    float* rl = (float*)(rows + p.split_keys); // PRE: [split_keys] each key's relative logit
    float* pv = rl + (PRE ? p.split_keys : 0); // [WARPS, D]
    float* wt = pv + WARPS * D;          // [2·splits] the combine's weights and weighted sums
    float m = -TLS_INF, l = 0.f;
    float acc[VPL][N];
#pragma unroll
    for (int v = 0; v < VPL; ++v)
#pragma unroll
        for (int e = 0; e < N; ++e) acc[v][e] = 0.f;

    // This lane's channels of σq, σq + u, σq + v (loaded before the state's key count is known: their loads overlap).
    float qs[VPL][N], qu[VPL][N], qv[VPL][N];
#pragma unroll
    for (int v = 0; v < VPL; ++v)
    {
        const int c = (v * G + g) * N;
        if (c < D)
        {
            float u[N], w[N];
            RowVec<T>::load(p.q, (i64)bh * D + c, qs[v]);
            RowVec<T>::load(p.u, (i64)h * D + c, u);
            RowVec<T>::load(p.vb, (i64)h * D + c, w);
#pragma unroll
            for (int e = 0; e < N; ++e) { qs[v][e] *= p.scale; qu[v][e] = qs[v][e] + u[e]; qv[v][e] = qs[v][e] + w[e]; }
        }
        else
#pragma unroll
            for (int e = 0; e < N; ++e) qs[v][e] = qu[v][e] = qv[v][e] = 0.f;
    }
    if (PRE) decode_rel_logits<T, G, VPL>(p, h, j0, nc, n, qs, qv, rl);  // published by the barrier before decode_keys
    // The append (uniform over the block): the split holding window age 0, key nc, makes that key and value itself.
    const int a0 = nc - j0;
    const bool app = p.kraw != nullptr && a0 >= 0 && a0 < n && decode_append<T>(p, b, h, slot, kn, vn, red);
    // Key j's row: compressed key j < Mc·r in the cache ring (chunk slot (first + ⌊j/r⌋) mod C), else the block's
    // compressed row j − Mc·r; window age a = j − nc in ring slot (slot − a) mod w.
    for (int jj = t; jj < n; jj += DECODE_THREADS)
    {
        const int j = j0 + jj;
        rows[jj] = j < p.Mc * p.R ? ((first + j / p.R) % p.C) * p.R + j % p.R : j < nc ? j - p.Mc * p.R : (slot - (j - nc) + p.W) % p.W;
    }
    __syncthreads();

    decode_keys<T, G, VPL, PRE>(p, stage, rows, bh, h, j0, nc, n, app ? a0 : -1, kn, vn, qs, qu, qv, m, l, acc, rl);

    // The groups of a warp merge in a butterfly (lanes g, g + G, …; a fixed tree), then the warps in order.
#pragma unroll
    for (int o = G; o < 32; o <<= 1)
    {
        const float mo = __shfl_xor_sync(0xffffffffu, m, o), lo = __shfl_xor_sync(0xffffffffu, l, o), M = fmaxf(m, mo);
        const float w1 = m == -TLS_INF ? 0.f : expf(m - M), w2 = mo == -TLS_INF ? 0.f : expf(mo - M);
        l = w1 * l + w2 * lo;
#pragma unroll
        for (int w = 0; w < VPL; ++w)
#pragma unroll
            for (int e = 0; e < N; ++e) acc[w][e] = w1 * acc[w][e] + w2 * __shfl_xor_sync(0xffffffffu, acc[w][e], o);
        m = M;
    }
    if (lane < G)
#pragma unroll
        for (int w = 0; w < VPL; ++w)
            if ((w * G + g) * N < D)
#pragma unroll
                for (int e = 0; e < N; ++e) pv[warp * D + (w * G + g) * N + e] = acc[w][e];
    if (lane == 0) { wm[warp] = m; wl[warp] = l; }
    __syncthreads();
    float M = wm[0], ww[WARPS], L = 0.f;
#pragma unroll
    for (int w = 1; w < WARPS; ++w) M = fmaxf(M, wm[w]);
#pragma unroll
    for (int w = 0; w < WARPS; ++w) { ww[w] = wm[w] == -TLS_INF ? 0.f : expf(wm[w] - M); L += ww[w] * wl[w]; }
    if (p.splits == 1)
    {
        for (int c = t; c < D; c += DECODE_THREADS)
        {
            float x = 0.f;
#pragma unroll
            for (int w = 0; w < WARPS; ++w) x += ww[w] * pv[w * D + c];
            store<T>(p.o, (i64)bh * D + c, x / L);
        }
        return;
    }
    float* part = p.part + ((i64)bh * p.splits + split) * (D + 2);
    for (int c = t; c < D; c += DECODE_THREADS)
    {
        float x = 0.f;
#pragma unroll
        for (int w = 0; w < WARPS; ++w) x += ww[w] * pv[w * D + c];
        part[c] = x;
    }
    if (t == 0) { part[D] = M; part[D + 1] = L; }
    // Arrive; the last split block of (sequence, head) combines: o = Σ_s e^{m_s − M} acc_s / Σ_s e^{m_s − M} l_s.
    __threadfence();
    __syncthreads();
    if (t == 0) last = atomicAdd(p.arrived + bh, 1) == p.splits - 1;
    __syncthreads();
    if (!last) return;
    if (t == 0) p.arrived[bh] = 0;       // every split has counted itself: the count is free for the next launch
    __threadfence();
    const float* parts = p.part + (i64)bh * p.splits * (D + 2);
    M = -TLS_INF;
    for (int q = t; q < p.splits; q += DECODE_THREADS) M = fmaxf(M, ld_cg(parts + (i64)q * (D + 2) + D));
    M = block_reduce<true>(M, red);
    for (int q = t; q < p.splits; q += DECODE_THREADS)
    {
        const float ms = ld_cg(parts + (i64)q * (D + 2) + D);
        const float w = ms == -TLS_INF ? 0.f : expf(ms - M);
        wt[q] = w;
        wt[p.splits + q] = w * ld_cg(parts + (i64)q * (D + 2) + D + 1);
    }
    __syncthreads();
    L = 0.f;
    for (int q = 0; q < p.splits; ++q) L += wt[p.splits + q];
    // Eight splits' loads issued together (ld_cg is volatile: one at a time in a plain loop, a round trip to L2 each).
    for (int c = t; c < D; c += DECODE_THREADS)
    {
        float x = 0.f;
        for (int q0 = 0; q0 < p.splits; q0 += 8)
        {
            float y[8];
#pragma unroll
            for (int u = 0; u < 8; ++u) y[u] = q0 + u < p.splits ? ld_cg(parts + (i64)(q0 + u) * (D + 2) + c) : 0.f;
#pragma unroll
            for (int u = 0; u < 8; ++u)
                if (q0 + u < p.splits && wt[q0 + u] != 0.f) x += wt[q0 + u] * y[u];
        }
        store<T>(p.o, (i64)bh * D + c, x / L);
    }
}

#define DECODE_VEC(G, VPL)                                                                                              \
    extern "C" __global__ void ls_causal_decode_vec_g##G##_v##VPL##_f32(LsDecodeParams p) { ls_causal_decode_vec<float, G, VPL, false>(p); } \
    extern "C" __global__ void ls_causal_decode_vec_g##G##_v##VPL##_bf16(LsDecodeParams p) { ls_causal_decode_vec<bf16, G, VPL, false>(p); } \
    extern "C" __global__ void ls_causal_decode_vec_g##G##_v##VPL##_f32_rp(LsDecodeParams p) { ls_causal_decode_vec<float, G, VPL, true>(p); } \
    extern "C" __global__ void ls_causal_decode_vec_g##G##_v##VPL##_bf16_rp(LsDecodeParams p) { ls_causal_decode_vec<bf16, G, VPL, true>(p); }
DECODE_VEC(1, 1)
DECODE_VEC(2, 1)
DECODE_VEC(4, 1)
DECODE_VEC(4, 2)
DECODE_VEC(8, 2)
DECODE_VEC(16, 2)
DECODE_VEC(32, 2)
