// TransformerLS.Native kernel prelude: handed to NVRTC as an in-memory header, because NVRTC finds no
// toolkit headers at run time. bf16 is a 16-bit integer in a struct (a distinct type for overloads);
// tensor-core and async-copy instructions go through inline PTX. Compiles with NVRTC 11.8 and 13.x.
#pragma once

typedef long long i64;

struct bf16 { unsigned short bits; };

#define TLS_INF __int_as_float(0x7f800000)
#define TLS_DEVICE __device__ __forceinline__

TLS_DEVICE float to_float(float x) { return x; }
TLS_DEVICE float to_float(bf16 x) { return __uint_as_float(((unsigned)x.bits) << 16); }

template <typename T> TLS_DEVICE T from_float(float x);
template <> TLS_DEVICE float from_float<float>(float x) { return x; }
// Round to nearest even, NaN stays NaN: bit-identical to the CPU backend's conversion.
template <> TLS_DEVICE bf16 from_float<bf16>(float x)
{
    unsigned u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{(unsigned short)((u >> 16) | 0x40u)};
    u += 0x7fffu + ((u >> 16) & 1u);
    return bf16{(unsigned short)(u >> 16)};
}

template <typename T> TLS_DEVICE float load(const void* p, i64 i) { return to_float(((const T*)p)[i]); }
template <typename T> TLS_DEVICE void store(void* p, i64 i, float v) { ((T*)p)[i] = from_float<T>(v); }

TLS_DEVICE float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// The double version, where a sum must cancel exactly against another taken in a different order (dP − D).
TLS_DEVICE double warp_sum(double v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

TLS_DEVICE float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Two bf16 packed into one 32-bit register, low half first (the mma operand layout): one cvt.rn.bf16x2 (sm_80+),
// round to nearest even like from_float<bf16> (a NaN becomes the canonical NaN).
TLS_DEVICE unsigned pack_bf16x2(float lo, float hi)
{
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// Element e of a bf16 pair as fp32 (exact): e = 0 the low 16 bits (the pair's first element), e = 1 the high 16.
TLS_DEVICE float bf16x2_half(unsigned w, int e) { return __uint_as_float(e ? w & 0xffff0000u : w << 16); }

// Eight bf16 elements, packed in pairs as one 16-byte load gives them, as fp32 (exact).
TLS_DEVICE void bf16x8_unpack(const unsigned w[4], float v[8])
{
#pragma unroll
    for (int k = 0; k < 4; ++k) { v[2 * k] = bf16x2_half(w[k], 0); v[2 * k + 1] = bf16x2_half(w[k], 1); }
}

// e^x as ex2.approx(x·log2 e): two instructions instead of expf's range reduction; relative error ~2^-22 plus
// |x|·2^-24 from the product, so the terms that matter in a softmax (x near 0) keep nearly full fp32 accuracy.
#define TLS_LOG2E 1.4426950408889634f

TLS_DEVICE float fast_exp(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x * TLS_LOG2E));
    return y;
}

// 2^x, one instruction (the caller folds log2 e into its scale: exp(σ·s − m) = 2^(s·σ·log2 e − m·log2 e) in one FFMA).
TLS_DEVICE float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// D = A(16x16, row) * B(16x8, col) + C, bf16 inputs, fp32 accumulation (sm_80+).
TLS_DEVICE void mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2], const float c[4])
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

TLS_DEVICE unsigned smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

// Four 8x8 b16 matrices from shared memory into the mma fragment layout.
TLS_DEVICE void ldmatrix_x4(unsigned r[4], const void* smem_row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(smem_row)));
}

TLS_DEVICE void ldmatrix_x2_trans(unsigned r[2], const void* smem_row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(smem_addr(smem_row)));
}

TLS_DEVICE void ldmatrix_x4_trans(unsigned r[4], const void* smem_row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(smem_row)));
}

// x = hi + lo with both halves bf16: an fp32 value (a probability, a score gradient) that must enter an mma
// keeps ~16 significant bits through two mmas instead of the 8 a single bf16 rounding leaves.
TLS_DEVICE void split_bf16x2(float x0, float x1, unsigned& hi, unsigned& lo)
{
    hi = pack_bf16x2(x0, x1);
    lo = pack_bf16x2(x0 - bf16x2_half(hi, 0), x1 - bf16x2_half(hi, 1));
}

// dst[0..3] += v[0..3] atomically (dst 16-byte aligned): one vector reduction on sm_90 with NVRTC 12.1+ (PTX 8.1
// red.v4.f32: one L2 operation instead of four), four scalar atomics elsewhere. Same values either way.
TLS_DEVICE void atomic_add4(float* dst, float v0, float v1, float v2, float v3)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && (__CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 1))
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" :: "l"(dst), "f"(v0), "f"(v1), "f"(v2), "f"(v3) : "memory");
#else
    atomicAdd(dst, v0); atomicAdd(dst + 1, v1); atomicAdd(dst + 2, v2); atomicAdd(dst + 3, v3);
#endif
}

// 16-byte global -> shared copy that bypasses registers; src_bytes < 16 zero-fills the rest. The copy and the waits clobber
// "memory": the compiler must not move this thread's shared-memory reads of a buffer past the copy that overwrites it, nor
// its reads of the copied rows above the wait (the barriers that follow every wait here order other threads' accesses).
TLS_DEVICE void cp_async_16(void* smem, const void* gmem, int src_bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(smem_addr(smem)), "l"(gmem), "r"(src_bytes) : "memory");
}
TLS_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
TLS_DEVICE void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
// Waits for all but the most recent commit group (double buffering: the current tile's copies, not the next one's).
TLS_DEVICE void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }
// The generic-proxy writes of this thread to shared memory (stores, cp.async once waited on) become visible to the
// tensor cores' reads (async proxy) after the next barrier. A no-op where there are no wgmma kernels.
TLS_DEVICE void fence_proxy_async()
{
#if defined(TLS_SM90A)
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// The layout contract of a params struct shared with C#: its size and the offset of its last field. The same numbers
// are read back from these lines by the C# LayoutContractTests and compared with the mirror's Marshal layout. No
// NVRTC has __builtin_offsetof; NVRTC 11 (CI) folds the classic null-pointer offset to a constant, NVRTC 12+ does
// not, so there the offset is checked by the C# test alone and sizeof by both.
#if __CUDACC_VER_MAJOR__ < 12
#define TLS_OFFSET_ASSERT(T, last, offset) \
    static_assert((unsigned long long)&(((T*)0)->last) == (offset), #T "." #last ": offset changed; update the C# mirror and this line");
#else
#define TLS_OFFSET_ASSERT(T, last, offset)
#endif
#define TLS_PARAMS_LAYOUT(T, last, size, offset)                                                    \
    static_assert(sizeof(T) == (size), #T ": sizeof changed; update the C# mirror and this line"); \
    TLS_OFFSET_ASSERT(T, last, offset)

// A number the C# launcher must agree with (a tile size, a block shape): exported from the module, read back by
// CudaBackend.Constant, so it is written here alone.
#define TLS_EXPORT(name, value) extern "C" __device__ const int name = (value);
// A table of such numbers (e.g. the shared memory of one carve-up per head dim), read by index.
#define TLS_EXPORT_TABLE(name, n, ...) extern "C" __device__ const int name[n] = {__VA_ARGS__};

// Grid-stride loop over n elements for the flat kernels.
#define GRID_STRIDE(i, n) for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// The flat kernels move 8 elements a thread: one 16-byte access for bf16, two for fp32. GRID_STRIDE8 walks the first
// element i of each group of 8; load_span8 / store_span8 move the m = min(8, n − i) elements from i, as vectors where
// vec (every pointer of the kernel 16-byte aligned, see aligned16) and m == 8, else one by one.
#define GRID_STRIDE8(i, n) for (i64 i = (blockIdx.x * (i64)blockDim.x + threadIdx.x) * 8; i < (n); i += (i64)gridDim.x * blockDim.x * 8)

TLS_DEVICE uint4 u4(unsigned x, unsigned y, unsigned z, unsigned w) { uint4 u; u.x = x; u.y = y; u.z = z; u.w = w; return u; }
TLS_DEVICE bool aligned16(const void* p) { return ((unsigned long long)p & 15ull) == 0; }

// Eight elements from i (a multiple of 8) of a 16-byte aligned array, as floats.
template <typename T> TLS_DEVICE void load8(const void* p, i64 i, float v[8]);
template <> TLS_DEVICE void load8<bf16>(const void* p, i64 i, float v[8])
{
    const uint4 u = ((const uint4*)p)[i >> 3];
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
    bf16x8_unpack(w, v);
}
template <> TLS_DEVICE void load8<float>(const void* p, i64 i, float v[8])
{
    const uint4 a = ((const uint4*)p)[i >> 2], b = ((const uint4*)p)[(i >> 2) + 1];
    v[0] = __uint_as_float(a.x); v[1] = __uint_as_float(a.y); v[2] = __uint_as_float(a.z); v[3] = __uint_as_float(a.w);
    v[4] = __uint_as_float(b.x); v[5] = __uint_as_float(b.y); v[6] = __uint_as_float(b.z); v[7] = __uint_as_float(b.w);
}

// Eight floats stored from i (a multiple of 8) of a 16-byte aligned array, each rounded as store<T> rounds.
template <typename T> TLS_DEVICE void store8(void* p, i64 i, const float v[8]);
template <> TLS_DEVICE void store8<bf16>(void* p, i64 i, const float v[8])
{
    unsigned w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) w[k] = (unsigned)from_float<bf16>(v[2 * k]).bits | ((unsigned)from_float<bf16>(v[2 * k + 1]).bits << 16);
    ((uint4*)p)[i >> 3] = u4(w[0], w[1], w[2], w[3]);
}
template <> TLS_DEVICE void store8<float>(void* p, i64 i, const float v[8])
{
    uint4* q = (uint4*)p + (i >> 2);
    q[0] = u4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]), __float_as_uint(v[3]));
    q[1] = u4(__float_as_uint(v[4]), __float_as_uint(v[5]), __float_as_uint(v[6]), __float_as_uint(v[7]));
}

template <typename T> TLS_DEVICE void load_span8(const void* p, i64 i, int m, bool vec, float v[8])
{
    if (vec && m == 8) { load8<T>(p, i, v); return; }
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = k < m ? load<T>(p, i + k) : 0.f;
}

template <typename T> TLS_DEVICE void store_span8(void* p, i64 i, int m, bool vec, const float v[8])
{
    if (vec && m == 8) { store8<T>(p, i, v); return; }
#pragma unroll
    for (int k = 0; k < 8; ++k)
        if (k < m) store<T>(p, i + k, v[k]);
}

// Stage 2 of a two-stage sum over token groups, for a pair of outputs of `per` elements: out[i] = Σ_g part[g·per + i]
// in group order (the same bits every run), rounded once to T. Grid-stride over i.
template <typename T>
TLS_DEVICE void sum_group_pair(const float* part_a, const float* part_b, i64 per, int groups, void* out_a, void* out_b,
                               float* out32_a = nullptr, float* out32_b = nullptr)
{
    GRID_STRIDE(i, per)
    {
        float a = 0.f, b = 0.f;
        for (int g = 0; g < groups; ++g) { a += part_a[g * per + i]; b += part_b[g * per + i]; }
        store<T>(out_a, i, a);
        store<T>(out_b, i, b);
        if (out32_a) { out32_a[i] = a; out32_b[i] = b; }  // the sums unrounded too, where the caller keeps them
    }
}

// Stage 2 of a two-stage column sum, in a block of (32, 8): column c = blockIdx.x·32 + threadIdx.x; slice
// y = threadIdx.y adds the groups y, y + 8, … of part[groups][cols] in order, then thread (x, 0) adds the 8 slices in
// slice order and gets the total (others get 0): the same bits every run for a given group count. s is the caller's
// __shared__ float[8][33]; every thread of the block must call.
TLS_DEVICE float ordered_group_sum(float (*s)[33], const float* part, i64 cols, int groups, i64 c)
{
    float t = 0.f;
    if (c < cols)
        for (int g = threadIdx.y; g < groups; g += 8) t += part[(i64)g * cols + c];
    s[threadIdx.y][threadIdx.x] = t;
    __syncthreads();
    float u = 0.f;
    if (threadIdx.y == 0)
        for (int k = 0; k < 8; ++k) u += s[k][threadIdx.x];
    return u;
}

// One extern "C" entry per dtype, so a kernel is found by a plain name in a CUBIN or in cmake's fatbin.
#define TLS_INSTANTIATE(name, Params)                                                  \
    extern "C" __global__ void name##_f32(Params p) { name<float>(p); }               \
    extern "C" __global__ void name##_bf16(Params p) { name<bf16>(p); }
