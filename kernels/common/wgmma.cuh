// Hopper warpgroup tensor-core products (wgmma.mma_async, sm_90a only): the helpers of the *_sm90a.cu kernels.
// Everything here compiles only where TLS_SM90A is defined: KernelLibrary defines it when it builds a *_sm90a.cu file for
// the sm_90a target (an sm_90 device and NVRTC 12 or later); elsewhere such a file builds with empty kernels, and exports
// tls_sm90a = 0 so that its launcher keeps to the mma.sync kernels.
//
// A warpgroup is 4 consecutive warps (128 threads, the first warp a multiple of 4). For m64nNk16 its accumulator is
// 64 × N fp32: warp w of the group holds rows 16w..16w + 15 in the mma.sync m16n8k16 accumulator layout, one [4] per
// 8-column block (acc[n-block][e], as in mma_tiles.cuh); an A operand in registers is the m16n8k16 A fragment of the
// same 16 rows. B comes from shared memory through a matrix descriptor.
//
// Shared-memory tiles here are 64 bf16 (128 bytes) a row in the 128-byte swizzle: the 16-byte chunk c of row r sits at
// chunk c ^ (r % 8), rows 128 bytes apart, the tile 1024-byte aligned (the swizzle works on address bits 4-9).
// Descriptors (PTX ISA, "matrix descriptor"): start address >> 4 in bits 0-13, leading byte offset >> 4 in 16-29, stride
// byte offset >> 4 in 32-45, layout in 62-63 (1: 128-byte swizzle).
// - K-major B (B[n][k], k contiguous: the key tile of S = Q·Kᵀ): 8-row groups SBO = 1024 bytes apart; LBO unused
//   (CUTLASS writes 1; the kernels pass 1024 to both fields, so either reading of the two holds); step k by 16 elements
//   = 32 bytes by adding 2 to the start address field.
// - MN-major B (B[k][n], n contiguous, read transposed: the value tile of O = P·V): the 8 k-rows of a group 128 bytes
//   apart, groups SBO = 1024 bytes apart; LBO the distance between 64-column blocks (one block at n = 64: unused);
//   step k by 16 rows = 2048 bytes.
#pragma once
#include "common/mma_tiles.cuh"

#if defined(TLS_SM90A)
TLS_EXPORT(tls_sm90a, 1)
#else
TLS_EXPORT(tls_sm90a, 0)
#endif

#if defined(TLS_SM90A)
typedef unsigned long long u64;

TLS_DEVICE u64 sw128_desc(const void* tile, unsigned lbo, unsigned sbo)
{
    return (u64)((smem_addr(tile) & 0x3ffffu) >> 4) | ((u64)(lbo >> 4) << 16) | ((u64)(sbo >> 4) << 32) | (1ull << 62);
}

TLS_DEVICE void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
TLS_DEVICE void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> TLS_DEVICE void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

// Keeps the compiler from moving reads or writes of an accumulator across the asm statements around it.
TLS_DEVICE void wgmma_pin(float acc[8][4])
{
#pragma unroll
    for (int i = 0; i < 8; ++i)
        asm volatile("" : "+f"(acc[i][0]), "+f"(acc[i][1]), "+f"(acc[i][2]), "+f"(acc[i][3])::"memory");
}

// The same for N register fragments of an RS product's A operand (as CUTLASS fences its A fragments too): their values
// are in registers before the wgmma.fence that follows, so no copy of them lands between the fence and the product.
template <int N> TLS_DEVICE void wgmma_pin_a(unsigned a[N][4])
{
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+r"(a[i][0]), "+r"(a[i][1]), "+r"(a[i][2]), "+r"(a[i][3])::"memory");
}

// acc[64 × 64] (this thread's part, acc[8][4]) = (accumulate ? acc : 0) + A[64 × 16] · B[16 × 64]: A this warp's
// m16n8k16 fragment, B through desc; TransB: B MN-major (read transposed).
template <int TransB>
TLS_DEVICE void wgmma_m64n64k16(float acc[8][4], const unsigned a[4], u64 desc, int accumulate)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
        "{%32,%33,%34,%35}, %36, p, 1, 1, %38;\n}\n"
        : "+f"(acc[0][0]), "+f"(acc[0][1]), "+f"(acc[0][2]), "+f"(acc[0][3]), "+f"(acc[1][0]), "+f"(acc[1][1]), "+f"(acc[1][2]), "+f"(acc[1][3]),
          "+f"(acc[2][0]), "+f"(acc[2][1]), "+f"(acc[2][2]), "+f"(acc[2][3]), "+f"(acc[3][0]), "+f"(acc[3][1]), "+f"(acc[3][2]), "+f"(acc[3][3]),
          "+f"(acc[4][0]), "+f"(acc[4][1]), "+f"(acc[4][2]), "+f"(acc[4][3]), "+f"(acc[5][0]), "+f"(acc[5][1]), "+f"(acc[5][2]), "+f"(acc[5][3]),
          "+f"(acc[6][0]), "+f"(acc[6][1]), "+f"(acc[6][2]), "+f"(acc[6][3]), "+f"(acc[7][0]), "+f"(acc[7][1]), "+f"(acc[7][2]), "+f"(acc[7][3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate), "n"(TransB));
}

// The same with A from shared memory too: A [64 rows][16] through adesc, K-major (read as stored).
template <int TransB>
TLS_DEVICE void wgmma_m64n64k16_ss(float acc[8][4], u64 adesc, u64 bdesc, int accumulate)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
        "%32, %33, p, 1, 1, 0, %35;\n}\n"
        : "+f"(acc[0][0]), "+f"(acc[0][1]), "+f"(acc[0][2]), "+f"(acc[0][3]), "+f"(acc[1][0]), "+f"(acc[1][1]), "+f"(acc[1][2]), "+f"(acc[1][3]),
          "+f"(acc[2][0]), "+f"(acc[2][1]), "+f"(acc[2][2]), "+f"(acc[2][3]), "+f"(acc[3][0]), "+f"(acc[3][1]), "+f"(acc[3][2]), "+f"(acc[3][3]),
          "+f"(acc[4][0]), "+f"(acc[4][1]), "+f"(acc[4][2]), "+f"(acc[4][3]), "+f"(acc[5][0]), "+f"(acc[5][1]), "+f"(acc[5][2]), "+f"(acc[5][3]),
          "+f"(acc[6][0]), "+f"(acc[6][1]), "+f"(acc[6][2]), "+f"(acc[6][3]), "+f"(acc[7][0]), "+f"(acc[7][1]), "+f"(acc[7][2]), "+f"(acc[7][3])
        : "l"(adesc), "l"(bdesc), "r"(accumulate), "n"(TransB));
}

// Two 64 × 64 × 64 products with every operand in shared memory (K-major, swizzled), in one commit group, waited on:
// x = XA·XBᵀ and y = YA·YBᵀ from zero (the backward's S and dP, or Sᵀ and dPᵀ, of one tile).
TLS_DEVICE void wgmma_ss_pair(float x[8][4], u64 xa, u64 xb, float y[8][4], u64 ya, u64 yb)
{
    zero(x, 8);
    zero(y, 8);
    wgmma_pin(x);
    wgmma_pin(y);
    wgmma_fence();
    for (int kc = 0; kc < 4; ++kc) wgmma_m64n64k16_ss<0>(x, xa + 2 * kc, xb + 2 * kc, 1);  // k steps of 16 columns: 32 bytes
    for (int kc = 0; kc < 4; ++kc) wgmma_m64n64k16_ss<0>(y, ya + 2 * kc, yb + 2 * kc, 1);
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_pin(x);
    wgmma_pin(y);
}

// acc[64 × 64] += X[64 × 64] · B[64 × 64]: X fp32 in this warpgroup's accumulator layout, entering as hi + lo bf16
// fragments (two products, as accurate as fp32 X); B [64 k-rows][64] swizzled, read transposed (MN-major).
TLS_DEVICE void wgmma_xb_split(float acc[8][4], const float x[8][4], const void* B)
{
    unsigned hi[4][4], lo[4][4];
    for (int kc = 0; kc < 4; ++kc)
    {
        split_bf16x2(x[2 * kc][0], x[2 * kc][1], hi[kc][0], lo[kc][0]);
        split_bf16x2(x[2 * kc][2], x[2 * kc][3], hi[kc][1], lo[kc][1]);
        split_bf16x2(x[2 * kc + 1][0], x[2 * kc + 1][1], hi[kc][2], lo[kc][2]);
        split_bf16x2(x[2 * kc + 1][2], x[2 * kc + 1][3], hi[kc][3], lo[kc][3]);
    }
    const u64 bd = sw128_desc(B, 1024, 1024);
    wgmma_pin_a<4>(hi);
    wgmma_pin_a<4>(lo);
    wgmma_pin(acc);
    wgmma_fence();
    for (int kc = 0; kc < 4; ++kc)
    {
        wgmma_m64n64k16<1>(acc, hi[kc], bd + 128 * kc, 1);  // 16 k-rows = 2048 bytes
        wgmma_m64n64k16<1>(acc, lo[kc], bd + 128 * kc, 1);
    }
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_pin(acc);
    wgmma_pin_a<4>(hi);
    wgmma_pin_a<4>(lo);
}
#endif
