using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of EmbeddingParams in kernels/embedding/embedding.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct EmbeddingParams
{
    public ulong Weight, Tokens, Y, DY, DWeight;
    public long N;
    public int Vocab, Dim;
}

/// <summary>Launchers for kernels/embedding/.</summary>
static class EmbeddingCuda
{
    const string File = "embedding/embedding.cu";
    const int Threads = 256;

    static Dim3 Grid(long n) => (uint)Math.Clamp((n + Threads - 1) / Threads, 1, 65535L * 16);

    public static void Forward(CudaBackend be, int n, int v, int d, Tensor weight, Tensor tokens, Tensor y)
    {
        Check.DTypeIs(y, weight.DType, nameof(y));
        var p = new EmbeddingParams { Weight = weight.DevicePointer, Tokens = tokens.DevicePointer, Y = y.DevicePointer, N = n, Vocab = v, Dim = d };
        if (n * (long)d > 0) be.Kernel(File, weight.DType == DType.Float32 ? "embedding_fwd_f32" : "embedding_fwd_bf16").Launch(Grid(n * (long)d), Threads, 0, be.Stream, p);
    }

    public static void Backward(CudaBackend be, int n, int v, int d, Tensor tokens, Tensor dy, Tensor dweight, bool accumulate)
    {
        Check.DTypeIs(dweight, DType.Float32, nameof(dweight));
        if (!accumulate) CudaMemory.Fill32(be.Stream, dweight.DevicePointer, 0, dweight.Count);
        var p = new EmbeddingParams { Tokens = tokens.DevicePointer, DY = dy.DevicePointer, DWeight = dweight.DevicePointer, N = n, Vocab = v, Dim = d };
        if (n * (long)d > 0) be.Kernel(File, dy.DType == DType.Float32 ? "embedding_bwd_f32" : "embedding_bwd_bf16").Launch(Grid(n * (long)d), Threads, 0, be.Stream, p);
    }
}
