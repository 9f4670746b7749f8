using TransformerLS.Ops;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Bench.Harness;

/// <summary>
/// The device's own ceilings, measured by the harness itself: the bf16 matrix rate of a square cuBLAS GEMM
/// (2·n³ FLOPs, fp32 accumulation, bf16 out) and the copy rate of one large device-to-device copy (read + write
/// bytes). Every kernel's achieved rates are reported as a percentage of these.
/// </summary>
public sealed record Ceilings(double MatrixTflops, double CopyGBps, string Matrix, string Copy, TimeStats MatrixTime, TimeStats CopyTime)
{
    public static Ceilings Measure(IBackend be, BenchTimer timer, RandomInputs rnd, int gemm = 8192, long copyBytes = 1L << 30, int runs = 30)
    {
        using var scope = new TensorScope();
        var a = rnd.Normal(be, DType.BFloat16, 1, gemm, gemm);
        var b = rnd.Normal(be, DType.BFloat16, 1, gemm, gemm);
        var c = be.Empty(new Shape(gemm, gemm), DType.BFloat16);
        var mm = TimeStats.Of(timer.Time(() => MatMul.Forward(be, a, false, b, false, c), 3, runs));
        var src = be.Empty(new Shape((int)(copyBytes / 4)), DType.Float32);
        be.Fill(src, 1.5f); // a copy's speed does not depend on the values
        var dst = be.Empty(src.Shape, DType.Float32);
        Action copy = be is CudaBackend cuda
            ? () => CudaMemory.CopyDeviceToDevice(cuda.Stream, dst.DevicePointer, src.DevicePointer, src.Bytes)
            : () => Elementwise.Cast(be, src, dst);
        var cp = TimeStats.Of(timer.Time(copy, 3, runs));
        return new(2.0 * gemm * gemm * (double)gemm / (mm.MedianMs * 1e9), 2.0 * src.Bytes / (cp.MedianMs * 1e6),
            $"bf16 GEMM {gemm}x{gemm}x{gemm} ({(be is CudaBackend ? "cuBLAS" : "CPU reference")})",
            $"{(be is CudaBackend ? "cuMemcpyDtoDAsync" : "CPU copy")} of {src.Bytes >> 20} MiB (read + write bytes)", mm, cp);
    }
}
