using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The Elementwise family: this facade; Elementwise.Reference.cs (checks, reference);
// ElementwiseCuda.cs (launcher, params mirror); ElementwiseNode.cs (graph node, builder); ElementwiseCases.cs (test and bench cases). See Ops/README.md.

/// <summary>
/// The elementwise family (kernels/elementwise/): each op checks its arguments once, then runs the CUDA launcher
/// (<see cref="ElementwiseCuda"/>) or the generic reference on the CPU (<see cref="CpuReference"/>).
/// </summary>
public static partial class Elementwise
{
    /// <summary>y = alpha·a + beta·b (b may be null).</summary>
    public static void Axpby(IBackend be, Tensor a, float alpha, Tensor? b, float beta, Tensor y)
    {
        CheckAxpby(be, a, b, y);
        if (be is CudaBackend cuda) ElementwiseCuda.Axpby(cuda, a, alpha, b, beta, y);
        else CpuReference.Run([a, b], [y], (alpha, beta), static (s, i, o) => { var (alpha, beta) = s; Axpby<double>(i[0], alpha, i[1], beta, o[0]); });
    }

    /// <summary>y = GELU(x), the erf form (torch.nn.GELU()).</summary>
    public static void Gelu(IBackend be, Tensor x, Tensor y)
    {
        CheckUnary(be, x, y);
        if (be is CudaBackend cuda) ElementwiseCuda.Gelu(cuda, x, y);
        else CpuReference.Run([x], [y], static (i, o) => Gelu<double>(i[0], o[0]));
    }

    public static void GeluBackward(IBackend be, Tensor x, Tensor dy, Tensor dx)
    {
        CheckUnary(be, x, dx, dy);
        if (be is CudaBackend cuda) ElementwiseCuda.GeluBackward(cuda, x, dy, dx);
        else CpuReference.Run([x, dy], [dx], static (i, o) => GeluBackward<double>(i[0], i[1], o[0]));
    }

    /// <summary>y = GELU(x + bias) over the last axis (the MLP's first bias fused into its GELU; the sum is not rounded).</summary>
    public static void BiasGelu(IBackend be, Tensor x, Tensor bias, Tensor y)
    {
        var cols = CheckBiasAdd(be, x, bias, y);
        if (be is CudaBackend cuda) ElementwiseCuda.BiasGelu(cuda, cols, x, bias, null, y);
        else CpuReference.Run([x, bias], [y], static (i, o) => BiasGelu<double>(i[0], i[1], o[0]));
    }

    /// <summary>dx = dy·GELU'(x + bias); the bias gradient is <see cref="ColumnSum"/> of dx.</summary>
    public static void BiasGeluBackward(IBackend be, Tensor x, Tensor bias, Tensor dy, Tensor dx)
    {
        var cols = CheckBiasAdd(be, x, bias, dx);
        Check.Like(be, dy, x, nameof(dy));
        if (be is CudaBackend cuda) ElementwiseCuda.BiasGelu(cuda, cols, x, bias, dy, dx);
        else CpuReference.Run([x, bias, dy], [dx], static (i, o) => BiasGeluBackward<double>(i[0], i[1], i[2], o[0]));
    }

    public static void Relu(IBackend be, Tensor x, Tensor y)
    {
        CheckUnary(be, x, y);
        if (be is CudaBackend cuda) ElementwiseCuda.Relu(cuda, x, y);
        else CpuReference.Run([x], [y], static (i, o) => Relu<double>(i[0], o[0]));
    }

    public static void ReluBackward(IBackend be, Tensor x, Tensor dy, Tensor dx)
    {
        CheckUnary(be, x, dx, dy);
        if (be is CudaBackend cuda) ElementwiseCuda.ReluBackward(cuda, x, dy, dx);
        else CpuReference.Run([x, dy], [dx], static (i, o) => ReluBackward<double>(i[0], i[1], o[0]));
    }

    /// <summary>
    /// y = x·keep/(1 − p), keep a pure function of (seed, element index), so the backward is the same call with the
    /// same seed, and CPU and GPU drop the same elements. With <paramref name="runSeed"/> (8 bytes: a 64-bit run seed,
    /// rewritten between CUDA-graph replays) the mask's seed is runSeed·φ64 + <paramref name="seed"/>, read when the op runs.
    /// </summary>
    public static void Dropout(IBackend be, Tensor x, Tensor y, float p, ulong seed, Tensor? runSeed = null)
    {
        CheckDropout(be, x, y, p);
        if (runSeed is not null) CheckRunSeed(be, runSeed);
        if (be is CudaBackend cuda) ElementwiseCuda.Dropout(cuda, x, y, p, seed, runSeed?.DevicePointer ?? 0);
        else
        {
            var full = runSeed is null ? seed : seed + BitConverter.ToUInt64(runSeed.HostBytes) * 0x9E3779B97F4A7C15UL;
            CpuReference.Run([x], [y], (p, full), static (s, i, o) => { var (p, full) = s; Dropout<double>(i[0], o[0], p, full); });
        }
    }

    /// <summary>y[..., c] = x[..., c] + bias[c].</summary>
    public static void BiasAdd(IBackend be, Tensor x, Tensor bias, Tensor y)
    {
        var cols = CheckBiasAdd(be, x, bias, y);
        if (be is CudaBackend cuda) ElementwiseCuda.BiasAdd(cuda, cols, x, bias, y);
        else CpuReference.Run([x, bias], [y], static (i, o) => BiasAdd<double>(i[0], i[1], o[0]));
    }

    /// <summary>y = x converted to y's dtype (rounded to nearest even for bf16); same shape.</summary>
    public static void Cast(IBackend be, Tensor x, Tensor y)
    {
        CheckCast(be, x, y);
        if (be is CudaBackend cuda) ElementwiseCuda.Cast(cuda, x, y);
        else CpuReference.Run([x], [y], static (i, o) => i[0].CopyTo(o[0], 0));
    }

    /// <summary>y[c] = beta·y[c] + Σ_rows x[..., c] (reads y only when beta ≠ 0); y has x's dtype or float32.</summary>
    public static void ColumnSum(IBackend be, Tensor x, Tensor y, float beta = 0f)
    {
        var cols = CheckColumnSum(be, x, y);
        if (be is CudaBackend cuda) ElementwiseCuda.ColumnSum(cuda, cols, x, y, beta);
        else CpuReference.Run([x], [y], beta, static (beta, i, o) => ColumnSum<double>(i[0], o[0], beta), read: beta == 0 ? 0u : 1u);
    }

    /// <summary>y += x, y of x's dtype or float32 (gradient accumulation into fp32 parameter gradients).</summary>
    public static void AddTo(IBackend be, Tensor x, Tensor y)
    {
        CheckAddTo(be, x, y);
        if (be is CudaBackend cuda) ElementwiseCuda.AddTo(cuda, x, y);
        else CpuReference.Run([x], [y], static (i, o) => { for (var k = 0; k < o[0].Length; k++) o[0][k] += i[0][k]; }, read: 1);
    }
}
