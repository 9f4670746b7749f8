// Checks the wgmma helpers of kernels/common/wgmma.cuh one product at a time against the host, on an sm_90 GPU:
//   nvcc -std=c++17 -gencode=arch=compute_90a,code=sm_90a -DTLS_SM90A=1 -I kernels bench/probes/wgmma_probe.cu -o /tmp/wgmma_probe && /tmp/wgmma_probe
// One warpgroup, 64 × 64 × 64 products on random bf16 data: (1) A fragments in registers · B K-major (S = Q·Kᵀ), (2) the
// same with A from shared memory, (3) A fragments · B MN-major read transposed (O = P·V), (4) an fp32 X as hi + lo
// fragments · B MN-major (wgmma_xb_split). Prints the largest error of each against a double product of the same bf16
// values (fp32 accumulation: ~1e-5 relative; a wrong layout or descriptor gives O(1)). Exit code 1 if any exceeds 1e-3.
// Then the rate of back-to-back RS and SS products (rate()), for choosing tile widths.
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <vector>
#include "common/wgmma.cuh"

__global__ void probe(const u16* a, const u16* bk, const u16* bn, const float* x, float* out)
{
    __shared__ __align__(1024) u16 As[64 * 64], Asw[64 * 64], Bks[64 * 64], Bns[64 * 64];
    __shared__ __align__(16) u16 Ap[64 * STRIDE(64)];
    const int t = threadIdx.x, lane = t % 32, warp = t / 32;
    for (int i = t; i < 64 * 64; i += 128)
    {
        const int r = i / 64, c = i % 64;
        Ap[r * STRIDE(64) + c] = a[i];
        Asw[sw128_offset(r, c) / 2] = a[i];
        Bks[sw128_offset(r, c) / 2] = bk[i];
        Bns[sw128_offset(r, c) / 2] = bn[i];
        As[i] = 0;
    }
    fence_proxy_async();
    __syncthreads();
    unsigned qa[4][4];
    for (int kc = 0; kc < 4; ++kc) ldmatrix_x4(qa[kc], Ap + (warp * 16 + lane % 16) * STRIDE(64) + kc * 16 + (lane / 16) * 8);
    float acc[4][8][4];
    for (int m = 0; m < 4; ++m) zero(acc[m], 8);
    const u64 kd = sw128_desc(Bks, 1024, 1024), nd = sw128_desc(Bns, 1024, 1024), ad = sw128_desc(Asw, 1024, 1024);
    for (int m = 0; m < 3; ++m) wgmma_pin(acc[m]);
    wgmma_fence();
    for (int kc = 0; kc < 4; ++kc) wgmma_m64n64k16<0>(acc[0], qa[kc], kd + 2 * kc, 1);
    for (int kc = 0; kc < 4; ++kc) wgmma_m64n64k16_ss<0>(acc[1], ad + 2 * kc, kd + 2 * kc, 1);
    for (int kc = 0; kc < 4; ++kc) wgmma_m64n64k16<1>(acc[2], qa[kc], nd + 128 * kc, 1);
    wgmma_commit();
    wgmma_wait<0>();
    for (int m = 0; m < 3; ++m) wgmma_pin(acc[m]);
    float xf[8][4];
    for (int nb = 0; nb < 8; ++nb)
        for (int e = 0; e < 4; ++e) xf[nb][e] = x[(warp * 16 + lane / 4 + 8 * (e / 2)) * 64 + nb * 8 + 2 * (lane % 4) + e % 2];
    wgmma_xb_split(acc[3], xf, Bns);
    for (int m = 0; m < 4; ++m)
        for (int nb = 0; nb < 8; ++nb)
            for (int e = 0; e < 4; ++e)
                out[m * 4096 + (warp * 16 + lane / 4 + 8 * (e / 2)) * 64 + nb * 8 + 2 * (lane % 4) + e % 2] = acc[m][nb][e];
}

// Throughput of back-to-back m64n64k16 products, A in registers (RS) or shared memory (SS), B K-major from shared
// memory: `iters` batches of 4 a warpgroup, `wgs` warpgroups a block. Answers whether n = 64 tiles leave the
// tensor cores waiting on shared memory (SS reads A and B, 4 KB an instruction).
template <bool SS>
__global__ void __launch_bounds__(256) rate(float* sink, int iters)
{
    __shared__ __align__(1024) u16 A[2][64 * 64], B[64 * 64];
    for (int i = threadIdx.x; i < 64 * 64; i += blockDim.x) { A[0][i] = A[1][i] = B[i] = (u16)(0x3c00 + (i & 7)); }
    fence_proxy_async();
    __syncthreads();
    const int wg = threadIdx.x / 128;
    unsigned qa[4][4];
    for (int kc = 0; kc < 4; ++kc)
        for (int j = 0; j < 4; ++j) qa[kc][j] = 0x3c003c00u;
    float acc[8][4];
    zero(acc, 8);
    const u64 ad = sw128_desc(A[wg & 1], 1024, 1024), bd = sw128_desc(B, 1024, 1024);
    for (int it = 0; it < iters; ++it)
    {
        wgmma_fence();
        for (int kc = 0; kc < 4; ++kc)
        {
            if (SS) wgmma_m64n64k16_ss<0>(acc, ad + 2 * kc, bd + 2 * kc, 1);
            else wgmma_m64n64k16<0>(acc, qa[kc], bd + 2 * kc, 1);
        }
        wgmma_commit();
        wgmma_wait<0>();
    }
    float t = 0.f;
    for (int nb = 0; nb < 8; ++nb) t += acc[nb][0] + acc[nb][1] + acc[nb][2] + acc[nb][3];
    if (t == 12345.f) sink[threadIdx.x] = t;  // keeps the products alive
}

template <bool SS> static void time_rate(float* sink)
{
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    const int iters = 4096, blocks = sms * 4;
    cudaEvent_t a, b;
    cudaEventCreate(&a); cudaEventCreate(&b);
    rate<SS><<<blocks, 256>>>(sink, 64);
    cudaEventRecord(a);
    rate<SS><<<blocks, 256>>>(sink, iters);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0.f;
    cudaEventElapsedTime(&ms, a, b);
    const double flops = 2.0 * 64 * 64 * 16 * 4 * iters * 2.0 * blocks;  // 2 warpgroups a block
    printf("rate %s m64n64k16 (4 blocks of 2 warpgroups an SM): %.1f TFLOP/s (%s)\n", SS ? "SS" : "RS", flops / ms / 1e9,
           cudaGetErrorString(cudaGetLastError()));
}

static u16 to_bf16(float f) { unsigned u; memcpy(&u, &f, 4); u += 0x7fffu + ((u >> 16) & 1u); return (u16)(u >> 16); }
static double from_bf16(u16 b) { unsigned u = (unsigned)b << 16; float f; memcpy(&f, &u, 4); return f; }

int main()
{
    srand(1234);
    std::vector<u16> a(4096), bk(4096), bn(4096);
    std::vector<float> x(4096), out(4 * 4096, NAN);
    auto rnd = [] { return (float)rand() / RAND_MAX * 2.f - 1.f; };
    for (int i = 0; i < 4096; ++i) { a[i] = to_bf16(rnd()); bk[i] = to_bf16(rnd()); bn[i] = to_bf16(rnd()); x[i] = rnd(); }
    u16 *da, *dbk, *dbn; float *dx, *dout;
    cudaMalloc(&da, 8192); cudaMalloc(&dbk, 8192); cudaMalloc(&dbn, 8192); cudaMalloc(&dx, 16384); cudaMalloc(&dout, 65536);
    cudaMemcpy(da, a.data(), 8192, cudaMemcpyHostToDevice); cudaMemcpy(dbk, bk.data(), 8192, cudaMemcpyHostToDevice);
    cudaMemcpy(dbn, bn.data(), 8192, cudaMemcpyHostToDevice); cudaMemcpy(dx, x.data(), 16384, cudaMemcpyHostToDevice);
    cudaMemset(dout, 0xff, 65536);
    probe<<<1, 128>>>(da, dbk, dbn, dx, dout);
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) { printf("probe kernel: %s\n", cudaGetErrorString(e)); return 2; }
    cudaMemcpy(out.data(), dout, 65536, cudaMemcpyDeviceToHost);
    const char* names[4] = {"RS  A regs . B K-major (S = Q.K^T)", "SS  A smem . B K-major", "RS  A regs . B MN-major (O = P.V)", "xb_split fp32 X (hi+lo) . B MN-major"};
    int bad = 0;
    for (int m = 0; m < 4; ++m)
    {
        double worst = 0;
        for (int i = 0; i < 64; ++i)
            for (int j = 0; j < 64; ++j)
            {
                double ref = 0;
                for (int k = 0; k < 64; ++k)
                {
                    double av = m == 3 ? (double)x[i * 64 + k] : from_bf16(a[i * 64 + k]);
                    ref += av * (m < 2 ? from_bf16(bk[j * 64 + k]) : from_bf16(bn[k * 64 + j]));
                }
                double got = out[m * 4096 + i * 64 + j];
                double err = std::isnan(got) ? INFINITY : fabs(got - ref);
                if (err > worst) worst = err;
            }
        printf("%-40s max |err| %.3g %s\n", names[m], worst, worst < 1e-3 ? "ok" : "WRONG");
        bad |= worst >= 1e-3;
    }
    time_rate<false>(dout);
    time_rate<true>(dout);
    return bad;
}
