// Where the wgmma forward (kernels/ls_attention/ls_attention_fwd_sm90a.cu) goes wrong, on an sm_90 GPU:
//   nvcc -std=c++17 -gencode=arch=compute_90a,code=sm_90a -DTLS_SM90A=1 -I kernels bench/probes/wgmma_attention_probe.cu -o /tmp/wap && /tmp/wap
// B 1, H 1, n 256, d 64, w 128, e 64, r 64, random bf16, head-major. Runs the kernel itself against a double reference
// (o and lse per row: which rows are wrong), then a diagnostic copy of its tile loop that checks, per tile, the swizzled
// K and V in shared memory against global memory and the wgmma S against a scalar S read from those tiles.
#ifndef __CUDACC_RTC__  // (NVRTC builds the device part alone, as a syntax check)
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <vector>
#endif
#include "ls_attention/ls_attention_fwd_sm90a.cu"
#include "ls_attention/ls_attention_mma.cu"  // the mma.sync wide forward: the control

__device__ float dbg_max[16];  // [0..3] as printed; [4 + t]: S error of computed tile t (t < 8); [12 + b]: of buffer b
TLS_DEVICE void dbg(int i, float v) { atomicMax((int*)&dbg_max[i], __float_as_int(fabsf(v))); }

template <bool ONCE> __global__ void __launch_bounds__(256, 1) diag(LsAttentionParams p)
{
    constexpr int D = 64;
    extern __shared__ __align__(1024) unsigned char smem[];
    const Block k = block_of(p, QM);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const Smem sm = start_wgmma(p, k, smem);
    unsigned qa[4][4];
    bool have_q = false;
    int tile = 0;
    for_each_tile<D, true>(p, k, sm, [&](const u16* Ks, const u16* Vs, const i64* rows, bool full) {
        if (!ONCE || !have_q) { for (int kc = 0; kc < 4; ++kc) ldmatrix_x4(qa[kc], sm.Qs + (warp * 16 + lane % 16) * STRIDE(D) + kc * 16 + (lane / 16) * 8); have_q = true; }
        // (0) shared K, V vs global rows
        const bool lm = tile == 0;  // r = 64: the one landmark tile comes first and always holds keys
        for (int i = threadIdx.x; i < KT * D; i += blockDim.x)
        {
            const int r = i / D, c = i % D;
            const i64 o = rows[r];
            const float gk = o < 0 ? 0.f : bf(((const u16*)(lm ? p.kbar : p.k))[o + c]);
            const float gv = o < 0 ? 0.f : bf(((const u16*)(lm ? p.vbar : p.v))[o + c]);
            dbg(0, bf(*tile_at<D, true>((u16*)Ks, r, c)) - gk);
            dbg(1, bf(*tile_at<D, true>((u16*)Vs, r, c)) - gv);
        }
        float s[8][4];
        zero(s, 8);
        const u64 kd = sw128_desc(Ks, 1024, 1024);
        wgmma_pin(s);
        wgmma_fence();
        for (int kc = 0; kc < 4; ++kc) wgmma_m64n64k16<0>(s, qa[kc], kd + 2 * kc, 1);
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_pin(s);
        // (2) S vs scalar from the tiles
        for (int nb = 0; nb < 8; ++nb)
            for (int e = 0; e < 4; ++e)
            {
                const int row = warp * 16 + lane / 4 + 8 * (e / 2), key = nb * 8 + 2 * (lane % 4) + e % 2;
                float ref = 0.f;
                for (int c = 0; c < D; ++c) ref += bf(sm.Qs[row * STRIDE(D) + c]) * bf(*tile_at<D, true>((u16*)Ks, key, c));
                dbg(2, s[nb][e] - ref);
                if (tile < 8) dbg(4 + tile, s[nb][e] - ref);
                dbg(12 + (Ks == sm.Ks[1]), s[nb][e] - ref);
            }
        // (3) O = S·V (S as is, fp32) by xb_split vs scalar
        float o[8][4];
        zero(o, 8);
        wgmma_xb_split(o, s, Vs);
        for (int nb = 0; nb < 8; ++nb)
            for (int e = 0; e < 4; ++e)
            {
                const int row = warp * 16 + lane / 4 + 8 * (e / 2), col = nb * 8 + 2 * (lane % 4) + e % 2;
                float ref = 0.f;
                for (int j = 0; j < KT; ++j)
                {
                    float sj = 0.f;
                    for (int c = 0; c < D; ++c) sj += bf(sm.Qs[row * STRIDE(D) + c]) * bf(*tile_at<D, true>((u16*)Ks, j, c));
                    ref += sj * bf(*tile_at<D, true>((u16*)Vs, j, col));
                }
                dbg(3, (o[nb][e] - ref) / (1.f + fabsf(ref)));
            }
        ++tile;
    });
}


template __global__ void diag<true>(LsAttentionParams);
template __global__ void diag<false>(LsAttentionParams);

// A simplified copy of the forward: one buffer, every tile computed; SYNC: K, V through plain loads and st.shared (not
// cp.async); QSS: Q swizzled in shared memory and S through the SS form (not ldmatrix fragments and RS); ONCE: the RS
// fragments loaded at the first tile and kept (as the kernel did before session 32), not loaded for every tile.
template <bool SYNC, bool QSS, bool ONCE = false> __global__ void __launch_bounds__(256, 1) variant(LsAttentionParams p)
{
    constexpr int D = 64;
    extern __shared__ __align__(1024) unsigned char smem[];
    const Block k = block_of(p, QM);
    if (k.nq <= 0) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, wg = warp / 4;
    unsigned char* base = sw128_align(smem);
    u16* Ks = (u16*)base;
    u16* Vs = Ks + KT * D;
    u16* Qsw = Vs + KT * D;          // [QM][64] swizzled
    u16* Qp = Qsw + QM * D;          // [QM][STRIDE] padded
    i64* rows = (i64*)(Qp + QM * STRIDE(D));
    for (int i = threadIdx.x; i < QM * D; i += blockDim.x)
    {
        const int r = i / D, c = i % D;
        const u16 x = r < k.nq ? ((const u16*)p.q)[q_row(p, k, k.q0 + r) + c] : (u16)0;
        Qp[r * STRIDE(D) + c] = x;
        *tile_at<D, true>(Qsw, r, c) = x;
    }
    float o[8][4] = {};
    float m[2] = {-TLS_INF, -TLS_INF}, l[2] = {0.f, 0.f};
    const float sl2 = p.scale * TLS_LOG2E;
    const int tiles = tile_count(p);
    unsigned qa[4][4];
    for (int tile = 0; tile < tiles; ++tile)
    {
        const Tile t = tile_of(p, k, tile);
        for (int i = threadIdx.x; i < KT; i += blockDim.x) rows[i] = key_row(p, k, t, i);
        if (SYNC)
        {
            for (int i = threadIdx.x; i < KT * D; i += blockDim.x)
            {
                const int r = i / D, c = i % D;
                const i64 off = key_row(p, k, t, r);
                *tile_at<D, true>(Ks, r, c) = off < 0 ? (u16)0 : ((const u16*)(t.landmarks ? p.kbar : p.k))[off + c];
                *tile_at<D, true>(Vs, r, c) = off < 0 ? (u16)0 : ((const u16*)(t.landmarks ? p.vbar : p.v))[off + c];
            }
        }
        else
        {
            load_rows_at<D, true>(Ks, t.landmarks ? p.kbar : p.k, KT, [&](int r) { return key_row(p, k, t, r); }, Vs, t.landmarks ? p.vbar : p.v);
            cp_async_commit();
            cp_async_wait_all();
        }
        fence_proxy_async();
        __syncthreads();
        float s[8][4];
        zero(s, 8);
        const u64 kd = sw128_desc(Ks, 1024, 1024), qd = sw128_desc(Qsw + wg * 64 * D, 1024, 1024);
        if (!QSS && (!ONCE || tile == 0))
            for (int kc = 0; kc < 4; ++kc) ldmatrix_x4(qa[kc], Qp + (warp * 16 + lane % 16) * STRIDE(D) + kc * 16 + (lane / 16) * 8);
        wgmma_pin(s);
        wgmma_fence();
        for (int kc = 0; kc < 4; ++kc)
        {
            if (QSS) wgmma_m64n64k16_ss<0>(s, qd + 2 * kc, kd + 2 * kc, 1);
            else wgmma_m64n64k16<0>(s, qa[kc], kd + 2 * kc, 1);
        }
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_pin(s);
        mask_absent_keys<KT>(s, rows);
        online_softmax<KT, D>(s, o, m[0], l[0], 0, sl2);
        online_softmax<KT, D>(s, o, m[1], l[1], 1, sl2);
        wgmma_xb_split(o, s, Vs);
        __syncthreads();
    }
    const float ms[2] = {m[0] * p.scale, m[1] * p.scale};
    store_softmax_rows<D>((u16*)p.o + q_row(p, k, k.q0), p.lse + (i64)k.bh * p.n + k.q0, k.nq, o, ms, l, [&](int) { return true; }, p.qld);
}
template __global__ void variant<false, false>(LsAttentionParams);
template __global__ void variant<true, false>(LsAttentionParams);
template __global__ void variant<false, true>(LsAttentionParams);
template __global__ void variant<true, true>(LsAttentionParams);
template __global__ void variant<false, false, true>(LsAttentionParams);
#define VARIANT_SMEM (1024 + 2 * KT * 64 * 2 + QM * 64 * 2 + QM * STRIDE(64) * 2 + 8 * KT)

#ifndef __CUDACC_RTC__
static u16 to_bf16(float f) { unsigned u; memcpy(&u, &f, 4); u += 0x7fffu + ((u >> 16) & 1u); return (u16)(u >> 16); }
static double fb(u16 b) { unsigned u = (unsigned)b << 16; float f; memcpy(&f, &u, 4); return f; }

int main()
{
    const int n = 256, d = 64, w = 128, e = 64, r = 64;
    srand(7);
    auto rnd = [] { return (float)rand() / RAND_MAX * 2.f - 1.f; };
    std::vector<u16> q(n * d), kk(n * d), v(n * d), kb(r * d), vb(r * d), o(n * d);
    for (auto* a : {&q, &kk, &v}) for (auto& x : *a) x = to_bf16(rnd());
    for (auto* a : {&kb, &vb}) for (auto& x : *a) x = to_bf16(rnd());
    std::vector<float> lse(n);
    u16 *dq, *dk, *dv, *dkb, *dvb, *dout; float* dlse;
    cudaMalloc(&dq, n * d * 2); cudaMalloc(&dk, n * d * 2); cudaMalloc(&dv, n * d * 2); cudaMalloc(&dkb, r * d * 2); cudaMalloc(&dvb, r * d * 2);
    cudaMalloc(&dout, n * d * 2); cudaMalloc(&dlse, n * 4);
    cudaMemcpy(dq, q.data(), n * d * 2, cudaMemcpyHostToDevice); cudaMemcpy(dk, kk.data(), n * d * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dv, v.data(), n * d * 2, cudaMemcpyHostToDevice); cudaMemcpy(dkb, kb.data(), r * d * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dvb, vb.data(), r * d * 2, cudaMemcpyHostToDevice);
    cudaMemset(dout, 0xff, n * d * 2); cudaMemset(dlse, 0xff, n * 4);
    LsAttentionParams p{};
    p.q = dq; p.k = dk; p.v = dv; p.kbar = dkb; p.vbar = dvb; p.mask = nullptr; p.o = dout; p.lse = dlse;
    p.B = 1; p.H = 1; p.n = n; p.d = d; p.w = w; p.r = r; p.e = e; p.chunks = (w + QM - 1) / QM; p.scale = 0.125f; p.qld = d;
    dim3 grid((n + w - 1) / w * p.chunks, 1, 1);
    auto check = [&](const char* name, auto launch) {
        cudaMemset(dout, 0xff, n * d * 2); cudaMemset(dlse, 0xff, n * 4);
        launch();
        cudaError_t err = cudaDeviceSynchronize();
        cudaMemcpy(o.data(), dout, n * d * 2, cudaMemcpyDeviceToHost); cudaMemcpy(lse.data(), dlse, n * 4, cudaMemcpyDeviceToHost);
        double worst_o[2] = {0, 0}, worst_l[2] = {0, 0};
        for (int i = 0; i < n; ++i)
        {
            const int s = i / w;
            std::vector<double> sc; std::vector<const u16*> vr;
            for (int j = 0; j < r; ++j) { double a = 0; for (int c = 0; c < d; ++c) a += fb(q[i * d + c]) * fb(kb[j * d + c]); sc.push_back(a * p.scale); vr.push_back(&vb[j * d]); }
            for (int j = s * w - e; j < (s + 1) * w + e; ++j)
                if (j >= 0 && j < n) { double a = 0; for (int c = 0; c < d; ++c) a += fb(q[i * d + c]) * fb(kk[j * d + c]); sc.push_back(a * p.scale); vr.push_back(&v[j * d]); }
            double m = -1e300; for (double x : sc) m = fmax(m, x);
            double z = 0; for (double x : sc) z += exp(x - m);
            const int half = (i % w) >= 64;
            double le = fabs(lse[i] - (m + log(z))); if (std::isnan(lse[i])) le = INFINITY;
            worst_l[half] = fmax(worst_l[half], le);
            for (int c = 0; c < d; ++c)
            {
                double a = 0; for (size_t j = 0; j < sc.size(); ++j) a += exp(sc[j] - m) / z * fb(vr[j][c]);
                double oe = fabs(fb(o[i * d + c]) - a); if (std::isnan(oe)) oe = INFINITY;
                worst_o[half] = fmax(worst_o[half], oe);
            }
        }
        printf("%-34s %s: rows 0-63 of a block: lse err %.3g, o err %.3g; rows 64-127: lse err %.3g, o err %.3g\n", name, cudaGetErrorString(err), worst_l[0], worst_o[0], worst_l[1], worst_o[1]);
    };
    const int control_smem = FWD_SMEM_FIXED(QM) + FWD_SMEM_PER_D(QM) * 64;
    cudaFuncSetAttribute(ls_attention_fwd_mma_wide_d64, cudaFuncAttributeMaxDynamicSharedMemorySize, control_smem);
    check("control: mma.sync wide kernel", [&] { ls_attention_fwd_mma_wide_d64<<<grid, 256, control_smem>>>(p); });
    cudaFuncSetAttribute(ls_attention_fwd_wgmma_d64, cudaFuncAttributeMaxDynamicSharedMemorySize, WG_SMEM);
    check("the kernel (nvcc build, Q per tile)", [&] { ls_attention_fwd_wgmma_d64<<<grid, 256, WG_SMEM>>>(p); });
    cudaFuncSetAttribute(variant<false, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, VARIANT_SMEM + 1024);
    cudaFuncSetAttribute(variant<true, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, VARIANT_SMEM + 1024);
    cudaFuncSetAttribute(variant<false, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, VARIANT_SMEM + 1024);
    cudaFuncSetAttribute(variant<true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, VARIANT_SMEM + 1024);
    check("variant cp.async, Q RS", [&] { variant<false, false><<<grid, 256, VARIANT_SMEM + 1024>>>(p); });
    check("variant st.shared, Q RS", [&] { variant<true, false><<<grid, 256, VARIANT_SMEM + 1024>>>(p); });
    check("variant cp.async, Q SS", [&] { variant<false, true><<<grid, 256, VARIANT_SMEM + 1024>>>(p); });
    cudaFuncSetAttribute(variant<false, false, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, VARIANT_SMEM + 1024);
    check("variant cp.async, Q RS loaded once", [&] { variant<false, false, true><<<grid, 256, VARIANT_SMEM + 1024>>>(p); });
    check("variant st.shared, Q SS", [&] { variant<true, true><<<grid, 256, VARIANT_SMEM + 1024>>>(p); });
    for (int once = 1; once >= 0; --once)
    {
        float zero16[16] = {};
        cudaMemcpyToSymbol(dbg_max, zero16, sizeof zero16);
        auto kern = once ? diag<true> : diag<false>;
        cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, WG_SMEM);
        kern<<<grid, 256, WG_SMEM>>>(p);
        printf("diag (Q fragments %s): %s\n", once ? "loaded once" : "per tile", cudaGetErrorString(cudaDeviceSynchronize()));
        float got[16];
        cudaMemcpyFromSymbol(got, dbg_max, sizeof got);
        printf("  max |err|: smem K vs global %.3g, smem V vs global %.3g, wgmma S vs scalar S from smem %.3g, xb_split S.V vs scalar (rel) %.3g\n", got[0], got[1], got[2], got[3]);
        printf("  S err by computed tile:");
        for (int t = 0; t < 8; ++t) printf(" %.3g", got[4 + t]);
        printf("; by buffer: %.3g %.3g\n", got[12], got[13]);
    }
    return 0;
}
#endif
