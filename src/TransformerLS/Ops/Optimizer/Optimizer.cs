using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The Optimizer family: this facade; Optimizer.Reference.cs (checks, reference);
// OptimizerCuda.cs (launcher, params mirror); OptimizerCases.cs (test and bench cases). See Ops/README.md.

/// <summary>The optimizer family (kernels/optimizer/); checks once, then CUDA or the CPU reference.</summary>
public static partial class Optimizer
{
    /// <summary>acc[0] += Σ x² (acc: float32 [1]): summed over all gradients, the global norm for clipping.</summary>
    public static void SumOfSquares(IBackend be, Tensor x, Tensor acc)
    {
        CheckSumOfSquares(be, x, acc);
        if (be is CudaBackend cuda) OptimizerCuda.SumOfSquares(cuda, x, acc);
        else CpuReference.Run([x], [acc], static (i, o) => o[0][0] += SumOfSquares<double>(i[0]), read: 1);
    }

    /// <summary>
    /// One torch.optim.Adam / AdamW step, in place on the float32 param, m and v. With <paramref name="sumSquares"/>
    /// (Σ g² of all gradients, on the device) the gradient is clipped to the global norm h.MaxNorm (+∞: no clipping)
    /// without a host round trip, and a non-finite Σ g² skips the step: nothing changes and, if
    /// <paramref name="badStep"/> (float32 [1]) is still 0, it records h.Step. <paramref name="copy"/> (bf16) receives
    /// the updated weights when param is a master copy.
    /// </summary>
    public static void AdamStep(IBackend be, in AdamHyper h, Tensor param, Tensor grad, Tensor m, Tensor v, Tensor? sumSquares = null, Tensor? copy = null,
        Tensor? badStep = null)
    {
        CheckAdam(be, h, param, grad, m, v, sumSquares, copy);
        if (badStep is not null) Check.Vector(be, badStep, 1, DType.Float32, nameof(badStep));
        if (be is CudaBackend cuda) { OptimizerCuda.AdamStep(cuda, h, param, grad, m, v, sumSquares, copy, badStep); return; }
        CpuReference.Run([grad, sumSquares], [param, m, v, copy, badStep], (h, sumSquares is not null, copy is not null, badStep is not null), static (s, i, o) =>
        {
            var (hyper, clipped, copied, flagged) = s;
            if (clipped && !double.IsFinite(i[1][0]))
            {
                if (flagged && o[4][0] == 0) o[4][0] = hyper.Step;
            }
            else
            {
                var clip = clipped ? Clip(i[1][0], (double)hyper.MaxNorm) : 1.0;
                AdamStep<double>(hyper, o[0], i[0], o[1], o[2], clip);
            }
            if (copied) o[0].CopyTo(o[3], 0);
        }, read: 7u | 16u);
    }
}
