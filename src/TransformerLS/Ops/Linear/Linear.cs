using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops.Linear;

/// <summary>
/// y = x·Wᵀ + b over the last axis (PyTorch's Linear, weight [out, in]), composed from the backend's
/// matmul, bias add and column sum, so it runs unchanged on both backends.
/// </summary>
public static class Linear
{
    public static void Forward(IBackend be, Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        Check.RankAtLeast(x, 1, nameof(x));
        Check.RankAtLeast(weight, 2, nameof(weight));
        if (weight.Shape.Rank != 2 || weight.Shape[1] != x.Shape[-1])
            throw new ArgumentException($"weight has shape {weight.Shape}; expected [out, {x.Shape[-1]}] for x of shape {x.Shape}", nameof(weight));
        using var x2 = Rows(x);
        using var y2 = y.Reshape(checked((int)(y.Count / Math.Max(1, weight.Shape[0]))), weight.Shape[0]);
        be.MatMul(x2, false, weight, true, y2);
        if (bias is not null) be.BiasAdd(y2, bias, y2);
    }

    /// <summary>dx = dy·W, dW (+)= dyᵀ·x, db (+)= Σ dy; any of the three may be null.</summary>
    public static void Backward(IBackend be, Tensor dy, Tensor x, Tensor weight, Tensor? dx, Tensor? dweight, Tensor? dbias, bool accumulate = false)
    {
        using var dy2 = Rows(dy);
        using var x2 = Rows(x);
        if (dy2.Shape[0] != x2.Shape[0])
            throw new ArgumentException($"dy has shape {dy.Shape}; expected the same rows as x {x.Shape}", nameof(dy));
        if (dx is not null) { using var dx2 = Rows(dx); be.MatMul(dy2, false, weight, false, dx2); }
        if (dweight is not null) be.MatMul(dy2, true, x2, false, dweight, 1f, accumulate ? 1f : 0f);
        if (dbias is not null) be.ColumnSum(dy2, dbias, accumulate ? 1f : 0f);
    }

    static Tensor Rows(Tensor t) => t.Reshape(checked((int)(t.Count / Math.Max(1, t.Shape[-1]))), t.Shape[-1]);
}
