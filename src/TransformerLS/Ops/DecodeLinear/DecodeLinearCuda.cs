using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of DecodeLinearParams in kernels/decode_linear/decode_linear.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct DecodeLinearParams
{
    public ulong X, Gamma, Beta, Xn;
    public ulong W0, W1, W2, W3, B0, B1, B2, B3, Y0, Y1, Y2, Y3;
    public int N0, N1, N2, N3;
    public int Rows, K, Cols;
    public float Eps;
    public int Gelu, Accumulate;
}

/// <summary>
/// kernels/decode_linear/decode_linear.cu: a warp a weight row, x's rows staged a tile at a time; decode_linear_mma.cu (bf16,
/// 4 to 16 rows): a block an 8-column tile on the tensor cores (see the kernels' comments). More than 16 rows: the chain.
/// </summary>
static class DecodeLinearCuda
{
    const string File = "decode_linear/decode_linear.cu", MmaFile = "decode_linear/decode_linear_mma.cu";

    /// <summary>The tensor-core kernels (bf16) by chunks of 32 a warp takes of K: 1, 2, 4, 8, 16.</summary>
    static readonly string[] MmaKernels = ["decode_linear_mma_c1_bf16", "decode_linear_mma_c2_bf16", "decode_linear_mma_c4_bf16", "decode_linear_mma_c8_bf16", "decode_linear_mma_c16_bf16"];

    /// <summary>The kernels by dtype (fp32, then bf16) and 16-byte vectors a lane holds of a row: 1, 2, 4, 8, 16.</summary>
    static readonly string[] Kernels =
    [
        "decode_linear_v1_f32", "decode_linear_v2_f32", "decode_linear_v4_f32", "decode_linear_v8_f32", "decode_linear_v16_f32",
        "decode_linear_v1_bf16", "decode_linear_v2_bf16", "decode_linear_v4_bf16", "decode_linear_v8_bf16", "decode_linear_v16_bf16",
    ];

    /// <summary>
    /// Launches the fused kernel and returns true, or returns false (the caller runs the unfused chain) where x has more rows
    /// than the kernel stages, K is not a whole number of 16-byte vectors up to 16 a lane, or an address is not 16-byte aligned.
    /// </summary>
    public static bool TryForward(CudaBackend be, int rows, int k, Tensor x, DecodeLinearNorm? norm, ReadOnlySpan<DecodeLinearOutput> outputs, bool gelu, bool accumulate)
    {
        var f32 = x.DType == DType.Float32;
        int n = f32 ? 4 : 8, size = f32 ? 4 : 2;
        if (rows == 0 || k % n != 0) return false;
        var any = x.DevicePointer | (norm is { } a ? a.Gamma.DevicePointer | a.Beta.DevicePointer | a.Normed.DevicePointer : 0);
        foreach (var o in outputs) any |= o.Weight.DevicePointer;
        if (any % 16 != 0) return false;
        // bf16 batches of 4 to 16 rows: the tensor-core kernel (a block an 8-column tile, the warps splitting K).
        var mma = !f32 && rows >= be.Constant(MmaFile, "decode_linear_mma_min_rows") && rows <= be.Constant(MmaFile, "decode_linear_mma_max_rows") && k % 32 == 0
            ? Fit((k / 32 + be.Constant(MmaFile, "decode_linear_mma_warps") - 1) / be.Constant(MmaFile, "decode_linear_mma_warps")) : -1;
        var v = Fit((k / n + 31) / 32);
        if (mma < 0 && (v < 0 || rows > be.Constant(File, "decode_linear_max_rows"))) return false;
        var smem = (long)Math.Min(rows, be.Constant(File, "decode_linear_tile_rows")) * k * size; // a tile of x's rows, staged at a time
        if (mma < 0 && smem > be.Context.Device.MaxSharedMemoryPerBlockOptin / 2) return false; // at least two blocks an SM, or the chain
        var p = new DecodeLinearParams
        {
            X = x.DevicePointer, Rows = rows, K = k, Gelu = gelu ? 1 : 0, Accumulate = accumulate ? 1 : 0,
        };
        if (norm is { } m) (p.Gamma, p.Beta, p.Xn, p.Eps) = (m.Gamma.DevicePointer, m.Beta.DevicePointer, m.Normed.DevicePointer, m.Eps);
        var tiles = 0;
        for (var j = 0; j < outputs.Length; j++)
        {
            var (w, b, y) = outputs[j];
            var (wp, bp, yp, nj) = (w.DevicePointer, b?.DevicePointer ?? 0, y.DevicePointer, w.Shape[0]);
            switch (j)
            {
                case 0: (p.W0, p.B0, p.Y0, p.N0) = (wp, bp, yp, nj); break;
                case 1: (p.W1, p.B1, p.Y1, p.N1) = (wp, bp, yp, nj); break;
                case 2: (p.W2, p.B2, p.Y2, p.N2) = (wp, bp, yp, nj); break;
                default: (p.W3, p.B3, p.Y3, p.N3) = (wp, bp, yp, nj); break;
            }
            p.Cols += nj;
            tiles += (nj + 7) / 8;
        }
        if (p.Cols == 0) return true;
        if (mma >= 0)
        {
            be.Kernel(MmaFile, MmaKernels[mma]).LaunchDependent((uint)tiles, (uint)be.Constant(MmaFile, "decode_linear_mma_threads"), 0, be.Stream, p);
            return true;
        }
        var threads = (uint)be.Constant(File, "decode_linear_threads");
        var blocks = (uint)((p.Cols + threads / 32 - 1) / (threads / 32));
        be.Kernel(File, Kernels[(f32 ? 0 : 5) + v]).LaunchDependent(blocks, threads, (uint)smem, be.Stream, p); // waits for x in the kernel
        return true;
    }

    /// <summary>The index of the smallest of 1, 2, 4, 8, 16 that holds <paramref name="count"/> (vectors or chunks a lane or warp takes), or −1.</summary>
    static int Fit(int count) => count <= 1 ? 0 : count <= 2 ? 1 : count <= 4 ? 2 : count <= 8 ? 3 : count <= 16 ? 4 : -1;
}
