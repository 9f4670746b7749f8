using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of CrossEntropyParams in kernels/cross_entropy/cross_entropy.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct CrossEntropyParams
{
    public ulong X, Target, Loss, Lse, DLoss, DX;
    public long Rows;
    public int Vocab;
}

/// <summary>Mirror of LossMeanParams in kernels/cross_entropy/cross_entropy.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LossMeanParams
{
    public ulong Loss, Target, Mean, Count, DMean, DLoss;
    public long Rows;
}

/// <summary>Launchers for kernels/cross_entropy/: 8 warps per block, a warp per row; the loss mean in one block.</summary>
static class CrossEntropyCuda
{
    const string File = "cross_entropy/cross_entropy.cu";
    const int Threads = 256;

    static Dim3 Grid(long rows) => (uint)((rows + Threads / 32 - 1) / (Threads / 32));

    public static void Forward(CudaBackend be, int n, int v, Tensor logits, Tensor target, Tensor loss, Tensor lse)
    {
        var p = new CrossEntropyParams { X = logits.DevicePointer, Target = target.DevicePointer, Loss = loss.DevicePointer, Lse = lse.DevicePointer, Rows = n, Vocab = v };
        be.Kernel(File, logits.DType == DType.Float32 ? "cross_entropy_fwd_f32" : "cross_entropy_fwd_bf16").Launch(Grid(n), Threads, 0, be.Stream, p);
    }

    public static void Backward(CudaBackend be, int n, int v, Tensor logits, Tensor target, Tensor lse, Tensor dloss, Tensor dlogits)
    {
        var p = new CrossEntropyParams { X = logits.DevicePointer, Target = target.DevicePointer, Lse = lse.DevicePointer, DLoss = dloss.DevicePointer, DX = dlogits.DevicePointer, Rows = n, Vocab = v };
        be.Kernel(File, logits.DType == DType.Float32 ? "cross_entropy_bwd_f32" : "cross_entropy_bwd_bf16").Launch(Grid(n), Threads, 0, be.Stream, p);
    }

    public static void Mean(CudaBackend be, int n, Tensor loss, Tensor target, Tensor mean, Tensor count)
    {
        var p = new LossMeanParams { Loss = loss.DevicePointer, Target = target.DevicePointer, Mean = mean.DevicePointer, Count = count.DevicePointer, Rows = n };
        be.Kernel(File, "loss_mean_fwd").Launch(1, 1024, 0, be.Stream, p);
    }

    public static void MeanBackward(CudaBackend be, int n, Tensor target, Tensor count, Tensor dmean, Tensor dloss)
    {
        var p = new LossMeanParams { Target = target.DevicePointer, Count = count.DevicePointer, DMean = dmean.DevicePointer, DLoss = dloss.DevicePointer, Rows = n };
        if (n > 0) be.Kernel(File, "loss_mean_bwd").Launch((uint)Math.Min((n + Threads - 1) / Threads, 65535L), Threads, 0, be.Stream, p);
    }
}
