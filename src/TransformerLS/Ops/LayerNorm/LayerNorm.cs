using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The LayerNorm family: this facade; LayerNorm.Reference.cs (checks, reference);
// LayerNormCuda.cs (launcher, params mirror); LayerNormNode.cs (graph node, builder); LayerNormCases.cs (test and bench cases). See Ops/README.md.

/// <summary>LayerNorm over the last axis (kernels/layer_norm/); checks once, then CUDA or the CPU reference.</summary>
public static partial class LayerNorm
{
    /// <summary>LayerNorm over the last axis; gamma, beta, mean and rstd are float32. mean/rstd may be null.</summary>
    public static void Forward(IBackend be, Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor? mean, Tensor? rstd, float eps)
    {
        var (rows, cols) = CheckForward(be, x, gamma, beta, y, mean, rstd, eps);
        if (be is CudaBackend cuda) { LayerNormCuda.Forward(cuda, rows, cols, x, gamma, beta, y, mean, rstd, eps); return; }
        // The reference always produces the statistics; they are kept only where asked for.
        CpuReference.Run([x, gamma, beta], [y, mean, rstd], (rows, cols, eps, mean is not null), static (s, i, o) =>
        {
            var (rows, cols, eps, stats) = s;
            double[] m = new double[rows], r = new double[rows];
            Forward<double>(rows, cols, i[0], i[1], i[2], o[0], m, r, eps);
            if (stats) { m.CopyTo(o[1], 0); r.CopyTo(o[2], 0); }
        });
    }

    /// <summary>Device scratch the backward allocates while it runs: the row groups' partial dγ, dβ (<see cref="ColumnGroups"/>).</summary>
    public static long BackwardWorkspace(Device device, Shape x) => ColumnGroups.ScratchBytes(device, x.Product(0, x.Rank - 1), x[-1]);

    /// <summary>dx overwritten; dgamma and dbeta overwritten or, with <paramref name="accumulate"/>, added to.</summary>
    public static void Backward(IBackend be, Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx, Tensor dgamma, Tensor dbeta, bool accumulate = false)
    {
        var (rows, cols) = CheckBackward(be, dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
        if (be is CudaBackend cuda) LayerNormCuda.Backward(cuda, rows, cols, dy, x, gamma, mean, rstd, dx, dgamma, dbeta, accumulate);
        else CpuReference.Run([dy, x, gamma, mean, rstd], [dx, dgamma, dbeta],
            (rows, cols, accumulate), static (s, i, o) => { var (rows, cols, accumulate) = s; Backward<double>(rows, cols, i[0], i[1], i[2], i[3], i[4], o[0], o[1], o[2], accumulate); }, read: accumulate ? 6u : 0u);
    }
}
