using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The Linear family: this facade; LinearNode.cs (graph node, builder);
// LinearCases.cs (test and bench cases). See Ops/README.md.

/// <summary>
/// y = x·Wᵀ + b over the last axis (PyTorch's Linear, weight [out, in]), composed from the backend's
/// matmul, bias add and column sum, so it runs unchanged on both backends.
/// </summary>
public static partial class Linear
{
    public static void Forward(IBackend be, Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        Check.RankAtLeast(x, 2, nameof(x));
        Check.RankAtLeast(weight, 2, nameof(weight));
        if (weight.Shape.Rank != 2 || weight.Shape[1] != x.Shape[-1])
            throw new ArgumentException($"weight has shape {weight.Shape}; expected [out, {x.Shape[-1]}] for x of shape {x.Shape}", nameof(weight));
        // The batched matmul with a 2-D weight folds the leading axes into one GEMM; no views needed.
        if (bias is null) { MatMul.Forward(be, x, false, weight, true, y); return; }
        // y = bias (exact), then y = x·Wᵀ + 1·y in one GEMM. For bf16 that sum is kept in float32 and cast once:
        // a bf16 C with beta = 1 was rounded more than once by cuBLAS (up to 1.5 ulp, failing the 2x rule).
        if (y.DType != DType.BFloat16)
        {
            be.Fill(y, 0f);
            Elementwise.BiasAdd(be, y, bias, y);
            MatMul.Forward(be, x, false, weight, true, y, 1f, 1f);
            return;
        }
        Check.Vector(be, bias, weight.Shape[0], x.DType, nameof(bias));
        using var bias32 = be.Empty(bias.Shape, DType.Float32);
        using var y32 = be.Empty(y.Shape, DType.Float32);
        Elementwise.Cast(be, bias, bias32);
        be.Fill(y32, 0f);
        Elementwise.BiasAdd(be, y32, bias32, y32);
        MatMul.Forward(be, x, false, weight, true, y32, 1f, 1f);
        Elementwise.Cast(be, y32, y);
    }

    /// <summary>Scratch the forward allocates while it runs: a bf16 product with a bias is summed in float32 (bias and output).</summary>
    public static long ForwardWorkspace(DType dtype, Shape? bias, Shape y) => bias is not null && dtype == DType.BFloat16 ? 4 * (bias.Value.Count + y.Count) : 0;

    /// <summary>dx = dy·W, dW (+)= dyᵀ·x, db (+)= Σ dy; any of the three may be null.</summary>
    public static void Backward(IBackend be, Tensor dy, Tensor x, Tensor weight, Tensor? dx, Tensor? dweight, Tensor? dbias, bool accumulate = false)
    {
        Check.RankAtLeast(x, 2, nameof(x));
        Check.On(be, dy, nameof(dy));
        if (dy.Shape.Rank != x.Shape.Rank || dy.Shape[-1] != weight.Shape[0] || !dy.Shape.Dims[..^1].SequenceEqual(x.Shape.Dims[..^1]))
            throw new ArgumentException(
                $"dy has shape {dy.Shape}; expected [{string.Join(", ", x.Shape.Dims[..^1].ToArray())}, {weight.Shape[0]}] for x {x.Shape} and weight {weight.Shape}", nameof(dy));
        if (dx is not null) MatMul.Forward(be, dy, false, weight, false, dx);
        if (dbias is not null) Elementwise.ColumnSum(be, dy, dbias, accumulate ? 1f : 0f);
        if (dweight is null) return;
        using var dy2 = Rows(dy);
        using var x2 = Rows(x);
        MatMul.Forward(be, dy2, true, x2, false, dweight, 1f, accumulate ? 1f : 0f);
    }

    static Tensor Rows(Tensor t) => t.Reshape(checked((int)(t.Count / Math.Max(1, t.Shape[-1]))), t.Shape[-1]);
}
