using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of ElementwiseParams in kernels/elementwise/elementwise.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct ElementwiseParams
{
    public ulong A, B, Y;
    public long N, Cols;
    public float Alpha, Beta;
}

/// <summary>Mirror of DropoutParams in kernels/elementwise/elementwise.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct DropoutParams
{
    public ulong X, Y, RunSeed;
    public long N;
    public ulong Seed;
    public float P;
}

/// <summary>Mirror of BiasGeluParams in kernels/elementwise/elementwise.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct BiasGeluParams
{
    public ulong X, Bias, Dy, Y;
    public long N, Cols;
}

/// <summary>Mirror of ColumnSumParams in kernels/elementwise/elementwise.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct ColumnSumParams
{
    public ulong X, Y, Partial;
    public long Rows, Cols;
    public int Groups;
    public float Beta;
}

/// <summary>Launchers for kernels/elementwise/.</summary>
static class ElementwiseCuda
{
    const string File = "elementwise/elementwise.cu";
    const int Threads = 256;

    /// <summary>The flat kernels' grid: a thread moves 8 elements (GRID_STRIDE8), grid-striding past 2^20 blocks.</summary>
    static Dim3 Grid(long n) => (uint)Math.Clamp(((n + 7) / 8 + Threads - 1) / Threads, 1, 65535L * 16);

    static void Launch(CudaBackend be, DType dt, string f32, string bf16, Dim3 grid, Dim3 block, in ElementwiseParams p) =>
        be.Kernel(File, dt == DType.Float32 ? f32 : bf16).Launch(grid, block, 0, be.Stream, p);

    public static void Axpby(CudaBackend be, Tensor a, float alpha, Tensor? b, float beta, Tensor y)
    {
        var p = new ElementwiseParams { A = a.DevicePointer, B = b?.DevicePointer ?? 0, Y = y.DevicePointer, N = y.Count, Alpha = alpha, Beta = beta };
        Launch(be, a.DType, "axpby_f32", "axpby_bf16", Grid(p.N), Threads, p);
    }

    /// <summary>y = f(x) for the activation kernels named f32 / bf16.</summary>
    static void Activation(CudaBackend be, Tensor x, Tensor y, string f32, string bf16)
    {
        var p = new ElementwiseParams { A = x.DevicePointer, Y = y.DevicePointer, N = y.Count };
        Launch(be, x.DType, f32, bf16, Grid(p.N), Threads, p);
    }

    /// <summary>dx = dy·f'(x) for the activation-gradient kernels named f32 / bf16.</summary>
    static void ActivationBackward(CudaBackend be, Tensor x, Tensor dy, Tensor dx, string f32, string bf16)
    {
        var p = new ElementwiseParams { A = x.DevicePointer, B = dy.DevicePointer, Y = dx.DevicePointer, N = dx.Count };
        Launch(be, x.DType, f32, bf16, Grid(p.N), Threads, p);
    }

    public static void Gelu(CudaBackend be, Tensor x, Tensor y) => Activation(be, x, y, "gelu_fwd_f32", "gelu_fwd_bf16");
    public static void GeluBackward(CudaBackend be, Tensor x, Tensor dy, Tensor dx) => ActivationBackward(be, x, dy, dx, "gelu_bwd_f32", "gelu_bwd_bf16");
    public static void Relu(CudaBackend be, Tensor x, Tensor y) => Activation(be, x, y, "relu_fwd_f32", "relu_fwd_bf16");
    public static void ReluBackward(CudaBackend be, Tensor x, Tensor dy, Tensor dx) => ActivationBackward(be, x, dy, dx, "relu_bwd_f32", "relu_bwd_bf16");

    /// <summary>y = GELU(x + bias) (<paramref name="dy"/> null), or dx = dy·GELU'(x + bias).</summary>
    public static void BiasGelu(CudaBackend be, int cols, Tensor x, Tensor bias, Tensor? dy, Tensor y)
    {
        var p = new BiasGeluParams { X = x.DevicePointer, Bias = bias.DevicePointer, Dy = dy?.DevicePointer ?? 0, Y = y.DevicePointer, N = y.Count, Cols = cols };
        var name = dy is null ? (x.DType == DType.Float32 ? "bias_gelu_fwd_f32" : "bias_gelu_fwd_bf16") : x.DType == DType.Float32 ? "bias_gelu_bwd_f32" : "bias_gelu_bwd_bf16";
        if (cols > 0) be.Kernel(File, name).Launch(Grid(p.N), Threads, 0, be.Stream, p);
    }

    /// <param name="runSeed">0, or the device address of a 64-bit run seed: the mask's seed is then runSeed·φ64 + <paramref name="seed"/> (graph replays).</param>
    public static void Dropout(CudaBackend be, Tensor x, Tensor y, float prob, ulong seed, ulong runSeed = 0)
    {
        var p = new DropoutParams { X = x.DevicePointer, Y = y.DevicePointer, RunSeed = runSeed, N = y.Count, Seed = seed, P = prob };
        be.Kernel(File, x.DType == DType.Float32 ? "dropout_f32" : "dropout_bf16").Launch(Grid(p.N), Threads, 0, be.Stream, p);
    }

    public static void BiasAdd(CudaBackend be, int cols, Tensor x, Tensor bias, Tensor y)
    {
        var p = new ElementwiseParams { A = x.DevicePointer, B = bias.DevicePointer, Y = y.DevicePointer, N = y.Count, Cols = cols };
        if (cols > 0) Launch(be, x.DType, "bias_add_f32", "bias_add_bf16", Grid(p.N), Threads, p);
    }

    public static void Cast(CudaBackend be, Tensor x, Tensor y)
    {
        if (x.DType == y.DType) { CudaMemory.CopyDeviceToDevice(be.Stream, y.DevicePointer, x.DevicePointer, x.Bytes); return; }
        if (x.DType == DType.Float32) { ConvertFromFloat32(be, x.DevicePointer, y, x.Count); return; }
        var p = new ElementwiseParams { A = x.DevicePointer, Y = y.DevicePointer, N = x.Count };
        Launch(be, DType.BFloat16, "cast_bf16", "cast_bf16", Grid(p.N), Threads, p);
    }

    /// <summary>Writes <paramref name="count"/> fp32 values at <paramref name="src"/> into <paramref name="dst"/>, rounded to its dtype.</summary>
    public static void ConvertFromFloat32(CudaBackend be, ulong src, Tensor dst, long count)
    {
        var p = new ElementwiseParams { A = src, Y = dst.DevicePointer, N = count };
        Launch(be, dst.DType, "convert_from_f32_f32", "convert_from_f32_bf16", Grid(count), Threads, p);
    }

    /// <summary>y = beta·y + Σ_rows x in two fixed-order stages over <see cref="ColumnGroups"/> row groups (scratch [G, cols] fp32).</summary>
    public static void ColumnSum(CudaBackend be, int cols, Tensor x, Tensor y, float beta)
    {
        var rows = cols == 0 ? 0 : x.Count / cols;
        var p = new ColumnSumParams { X = x.DevicePointer, Y = y.DevicePointer, Rows = rows, Cols = cols, Groups = ColumnGroups.Of(rows), Beta = beta };
        var bytes = ColumnGroups.SumScratchBytes(be.Device, rows, cols);
        p.Partial = be.Context.Allocator.Allocate(bytes);
        try
        {
            // 8 columns a thread (16-byte loads) where rows and pointer allow it; the same sums in the same order either way.
            var vec = cols % 8 == 0 && x.DevicePointer % 16 == 0;
            var f32 = x.DType == DType.Float32;
            be.Kernel(File, vec ? (f32 ? "column_sum8_f32" : "column_sum8_bf16") : (f32 ? "column_sum_f32" : "column_sum_bf16"))
                .Launch(new Dim3((uint)((cols + (vec ? 255 : 31)) / (vec ? 256 : 32)), (uint)p.Groups), new Dim3(32, 8), 0, be.Stream, p);
            be.Kernel(File, y.DType == DType.Float32 ? "column_sum_groups_f32" : "column_sum_groups_bf16")
                .Launch((uint)((cols + 31) / 32), new Dim3(32, 8), 0, be.Stream, p);
        }
        finally
        {
            be.Context.Allocator.Free(p.Partial, bytes);
        }
    }

    public static void AddTo(CudaBackend be, Tensor x, Tensor y)
    {
        var p = new ElementwiseParams { A = x.DevicePointer, B = y.DevicePointer, Y = y.DevicePointer, N = y.Count, Alpha = 1, Beta = 1 };
        if (x.DType == y.DType) Launch(be, x.DType, "axpby_f32", "axpby_bf16", Grid(p.N), Threads, p);
        else Launch(be, x.DType, "add_to_bf16", "add_to_bf16", Grid(p.N), Threads, p);
    }
}
