using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of OptimizerParams in kernels/optimizer/optimizer.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct OptimizerParams
{
    public ulong Param, Grad, M, V, Copy, SumSq, Bad;
    public long N;
    public float Lr, Beta1, Beta2, Eps, WeightDecay, MaxNorm, Bias1, Bias2;
    public int Decoupled, Step;
}

/// <summary>Launchers for kernels/optimizer/.</summary>
static class OptimizerCuda
{
    const string File = "optimizer/optimizer.cu";
    const int Threads = 256;

    static Dim3 Grid(long n) => (uint)Math.Clamp((n + Threads - 1) / Threads, 1, 1024);

    public static void SumOfSquares(CudaBackend be, Tensor x, Tensor acc)
    {
        var p = new OptimizerParams { Grad = x.DevicePointer, SumSq = acc.DevicePointer, N = x.Count };
        if (p.N > 0) be.Kernel(File, x.DType == DType.Float32 ? "sum_of_squares_f32" : "sum_of_squares_bf16").Launch(Grid(p.N), Threads, 0, be.Stream, p);
    }

    public static void AdamStep(CudaBackend be, in AdamHyper h, Tensor param, Tensor grad, Tensor m, Tensor v, Tensor? sumSquares, Tensor? copy, Tensor? badStep)
    {
        var p = new OptimizerParams
        {
            Param = param.DevicePointer, Grad = grad.DevicePointer, M = m.DevicePointer, V = v.DevicePointer,
            Copy = copy?.DevicePointer ?? 0, SumSq = sumSquares?.DevicePointer ?? 0, Bad = badStep?.DevicePointer ?? 0, N = param.Count,
            Lr = h.Lr, Beta1 = h.Beta1, Beta2 = h.Beta2, Eps = h.Eps, WeightDecay = h.WeightDecay, MaxNorm = h.MaxNorm,
            Bias1 = h.Bias1, Bias2 = h.Bias2, Decoupled = h.Decoupled ? 1 : 0, Step = h.Step,
        };
        if (p.N > 0) be.Kernel(File, grad.DType == DType.Float32 ? "adam_step_f32" : "adam_step_bf16").Launch(Grid(p.N), Threads, 0, be.Stream, p);
    }
}
