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

    /// <summary>
    /// One Adam / AdamW step of every parameter of <paramref name="group"/>, clipped to the global gradient norm
    /// h.MaxNorm (+∞: no clipping): Σ g² over all gradients in a fixed order (the same bits every run; no atomics), then
    /// each parameter's step as <see cref="AdamStep"/> takes it. On the GPU that is two launches whatever the number of
    /// parameters. <paramref name="sumSquares"/> (float32 [1]), when given, receives Σ g²; a non-finite Σ g² changes
    /// nothing and, if <paramref name="badStep"/> (float32 [1]) is still 0, records h.Step. With <paramref name="hyper"/>
    /// (float32 [4], written by <see cref="WriteAdamHyper"/>) the step's learning rate, bias corrections and number are read
    /// from it on the device instead of from h, so the launch can be recorded in a CUDA graph once and replayed every step.
    /// </summary>
    public static void AdamStepAll(IBackend be, in AdamHyper h, AdamGroup group, Tensor? sumSquares = null, Tensor? badStep = null, Tensor? hyper = null)
    {
        h.Validate();
        if (hyper is not null) Check.Vector(be, hyper, 4, DType.Float32, nameof(hyper));
        ArgumentNullException.ThrowIfNull(group);
        if (!ReferenceEquals(group.Backend, be)) throw new ArgumentException($"group was built on {group.Backend.Device}; this op runs on {be.Device}", nameof(group));
        if (sumSquares is not null) Check.Vector(be, sumSquares, 1, DType.Float32, nameof(sumSquares));
        if (badStep is not null) Check.Vector(be, badStep, 1, DType.Float32, nameof(badStep));
        var entries = group.Entries;
        for (var i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            if (e.Param.IsDisposed || e.Grad.IsDisposed || e.M.IsDisposed || e.V.IsDisposed || e.Copy is { IsDisposed: true })
                throw new ObjectDisposedException(nameof(group), $"a tensor of group entry {i} was disposed");
        }
        if (be is CudaBackend cuda) { OptimizerCuda.AdamStepAll(cuda, h, group, sumSquares, badStep, hyper); return; }
        // The reference: Σ g² over the gradients in entry order, then each parameter's step (hyper read on the host here).
        var hh = h;
        if (hyper is not null)
        {
            var v = hyper.ToArray();
            hh = h with { Lr = v[0], Step = (int)v[3] };
        }
        using var total = be.Empty(new Shape(1), DType.Float32);
        be.Fill(total, 0);
        foreach (var e in entries) SumOfSquares(be, e.Grad, total);
        foreach (var e in entries) AdamStep(be, hh, e.Param, e.Grad, e.M, e.V, total, e.Copy, badStep);
        if (sumSquares is not null) Elementwise.Cast(be, total, sumSquares);
    }

    /// <summary>
    /// Writes h's learning rate, bias corrections and step number into <paramref name="hyper"/> (float32 [4]) for
    /// <see cref="AdamStepAll"/>: on the GPU four stream-ordered memsets, ordered before whatever is queued next.
    /// </summary>
    public static void WriteAdamHyper(IBackend be, Tensor hyper, in AdamHyper h)
    {
        h.Validate();
        Check.Vector(be, hyper, 4, DType.Float32, nameof(hyper));
        if (be is CudaBackend cuda) OptimizerCuda.WriteHyper(cuda, hyper, h);
        else hyper.CopyFrom([h.Lr, h.Bias1, h.Bias2, h.Step]);
    }
}
