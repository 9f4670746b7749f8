using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>
/// Hyperparameters of one Adam / AdamW step (torch.optim semantics). <see cref="Step"/> counts from 1 and sets
/// the bias corrections; <see cref="MaxNorm"/> is the global gradient-norm clip, used when the step is given the
/// sum of squares of all gradients.
/// </summary>
public readonly record struct AdamHyper(float Lr, int Step, float Beta1 = 0.9f, float Beta2 = 0.999f, float Eps = 1e-8f,
    float WeightDecay = 0.01f, bool Decoupled = true, float MaxNorm = 1f)
{
    public void Validate()
    {
        if (!(Lr >= 0) || float.IsInfinity(Lr)) throw new ArgumentOutOfRangeException(nameof(Lr), Lr, "the learning rate must be finite and >= 0");
        if (Step < 1) throw new ArgumentOutOfRangeException(nameof(Step), Step, "steps count from 1");
        if (!(Beta1 >= 0 && Beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, "expected 0 <= beta1 < 1");
        if (!(Beta2 >= 0 && Beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, "expected 0 <= beta2 < 1");
        Check.Positive(Eps, nameof(Eps));
        if (!(WeightDecay >= 0) || float.IsInfinity(WeightDecay)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "expected a finite weight decay >= 0");
        if (!(MaxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(MaxNorm), MaxNorm, "the clip norm must be > 0 (+∞: no clipping)");
    }

    public float Bias1 => 1f - MathF.Pow(Beta1, Step);
    public float Bias2 => 1f - MathF.Pow(Beta2, Step);
}

/// <summary>Checks and CPU reference of kernels/optimizer/, generic over the arithmetic type.</summary>
public static partial class Optimizer
{
    internal static void CheckSumOfSquares(IBackend be, Tensor x, Tensor acc)
    {
        Check.On(be, x, nameof(x));
        Check.Vector(be, acc, 1, DType.Float32, nameof(acc));
    }

    /// <summary>param, m, v: float32 of one shape; grad: that shape in any dtype; copy: bfloat16 of that shape.</summary>
    internal static void CheckAdam(IBackend be, in AdamHyper h, Tensor param, Tensor grad, Tensor m, Tensor v, Tensor? sumSquares, Tensor? copy)
    {
        h.Validate();
        CheckAdamTensors(be, param, grad, m, v, copy, "");
        if (sumSquares is not null) Check.Vector(be, sumSquares, 1, DType.Float32, nameof(sumSquares));
    }

    /// <summary>The tensors of one parameter's step; <paramref name="prefix"/> names it in a group ("entries[3].").</summary>
    internal static void CheckAdamTensors(IBackend be, Tensor param, Tensor grad, Tensor m, Tensor v, Tensor? copy, string prefix)
    {
        Check.On(be, param, prefix + nameof(param));
        Check.DTypeIs(param, DType.Float32, prefix + nameof(param));
        Check.On(be, grad, prefix + nameof(grad));
        Check.SameShape(grad, param.Shape, prefix + nameof(grad));
        Check.Like(be, m, param, prefix + nameof(m));
        Check.Like(be, v, param, prefix + nameof(v));
        if (copy is null) return;
        Check.On(be, copy, prefix + nameof(copy));
        Check.SameShape(copy, param.Shape, prefix + nameof(copy));
        Check.DTypeIs(copy, DType.BFloat16, prefix + nameof(copy));
    }

    internal static T SumOfSquares<T>(ReadOnlySpan<T> x) where T : IFloatingPointIeee754<T>
    {
        var s = T.Zero;
        foreach (var g in x) s += g * g;
        return s;
    }

    /// <summary>The clip factor for a global sum of squares, as torch.nn.utils.clip_grad_norm_ computes it.</summary>
    internal static T Clip<T>(T sumSquares, T maxNorm) where T : IFloatingPointIeee754<T> =>
        T.Min(T.One, maxNorm / (T.Sqrt(sumSquares) + T.CreateChecked(1e-6)));

    /// <summary>One torch.optim.Adam / AdamW step on g·clip; updates w, m and v in place.</summary>
    internal static void AdamStep<T>(in AdamHyper h, Span<T> w, ReadOnlySpan<T> grad, Span<T> m, Span<T> v, T clip) where T : IFloatingPointIeee754<T>
    {
        T lr = T.CreateChecked(h.Lr), b1 = T.CreateChecked(h.Beta1), b2 = T.CreateChecked(h.Beta2), wd = T.CreateChecked(h.WeightDecay);
        var step = lr / T.CreateChecked(h.Bias1);
        var root2 = T.Sqrt(T.CreateChecked(h.Bias2));
        var eps = T.CreateChecked(h.Eps);
        for (var i = 0; i < w.Length; i++)
        {
            var g = clip * grad[i];
            if (h.Decoupled) w[i] *= T.One - lr * wd;
            else g += wd * w[i];
            m[i] = b1 * m[i] + (T.One - b1) * g;
            v[i] = b2 * v[i] + (T.One - b2) * g * g;
            w[i] -= step * m[i] / (T.Sqrt(v[i]) / root2 + eps);
        }
    }
}
