using TransformerLS.Backends;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the MatMul family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>
/// c = alpha·op(a)·op(b), batched over the leading axes (cuBLAS on the GPU). With the softmax node it builds the
/// full-attention baseline that materializes its N×N scores.
/// </summary>
sealed class MatMulNode(Value a, bool transA, Value b, bool transB, float alpha, Value c)
    : Node($"matmul {c.Name}", [a, b], [c], saved: [a, b])
{
    public override void Forward(RunContext ctx) => MatMul.Forward(ctx.Backend, ctx[a], transA, ctx[b], transB, ctx[c], alpha);

    // With C = op(A)·op(B): d op(A) = dC·op(B)ᵀ and d op(B) = op(A)ᵀ·dC; a transposed operand takes the transpose of those.
    public override void Backward(RunContext ctx)
    {
        var be = ctx.Backend;
        var dc = ctx.Grad(c);
        if (ctx.Target(0) is { Wanted: true } da)
        {
            var beta = da.Accumulate ? 1f : 0f;
            if (!transA) MatMul.Forward(be, dc, false, ctx[b], !transB, da.Tensor!, alpha, beta);
            else MatMul.Forward(be, ctx[b], transB, dc, true, da.Tensor!, alpha, beta);
        }
        if (ctx.Target(1) is { Wanted: true } db)
        {
            var beta = db.Accumulate ? 1f : 0f;
            if (!transB) MatMul.Forward(be, ctx[a], !transA, dc, false, db.Tensor!, alpha, beta);
            else MatMul.Forward(be, dc, true, ctx[a], transA, db.Tensor!, alpha, beta);
        }
    }

    public override bool Accumulates(int input) => true;
}

/// <summary>
/// y [B, D] = (1/N)·Σ_t mask[b, t]·x[b, t, :] for x [B, N, D]: the LRA code's mean pooling of LN(X)·mask, whose
/// divisor is N even where the mask zeroes padding (torch's mean over the sequence axis). One batched GEMM of the
/// mask row [B, 1, N] with x; the float32 mask is cast to x's dtype first when they differ (0 and 1 stay exact).
/// </summary>
sealed class MaskedMeanNode(Value x, Value mask, Value y) : Node($"masked mean {y.Name}", [x, mask], [y], saved: [mask])
{
    int B => x.Shape[0];
    int N => x.Shape[1];

    /// <summary>The mask [B, N] float32 as a row [B, 1, N] of <paramref name="dtype"/> (a view, or a cast the caller disposes).</summary>
    static Tensor MaskRow(IBackend be, Tensor mask, DType dtype)
    {
        int b = mask.Shape[0], n = mask.Shape[1];
        if (mask.DType == dtype) return mask.Reshape(b, 1, n);
        var cast = be.Empty(new Shape(b, 1, n), dtype);
        using var row = mask.Reshape(b, 1, n);
        Elementwise.Cast(be, row, cast);
        return cast;
    }

    Tensor MaskRow(RunContext c) => MaskRow(c.Backend, c[mask], x.DType);

    /// <summary>y [B, D] = (1/N)·mask·x for x [B, N, D]: the forward, shared with <see cref="TransformerLS.Functional.MaskedMean"/>.</summary>
    internal static void Run(IBackend be, Tensor x, Tensor mask, Tensor y)
    {
        using var m = MaskRow(be, mask, x.DType);
        using var y3 = y.Reshape(x.Shape[0], 1, x.Shape[2]);
        MatMul.Forward(be, m, false, x, false, y3, 1f / x.Shape[1]);
    }

    public override void Forward(RunContext c) => Run(c.Backend, c[x], c[mask], c[y]);

    // dx[b, t, :] = mask[b, t]/N · dy[b, :]: the outer product of the mask column with dy.
    public override void Backward(RunContext c)
    {
        if (c.Target(0) is not { Wanted: true } dx) return;
        using var m = MaskRow(c);
        using var dy3 = c.Grad(y).Reshape(B, 1, x.Shape[2]);
        MatMul.Forward(c.Backend, m, true, dy3, false, dx.Tensor!, 1f / N, dx.Accumulate ? 1f : 0f);
    }

    public override bool Accumulates(int input) => input == 0;

    public override long Workspace(Device device, bool backward) => mask.DType == x.DType ? 0 : (long)B * N * x.DType.Size();
}

public static partial class Builders
{
    /// <summary>c = alpha·op(a)·op(b) over the leading (batch) axes, which a and b share; c has a's dtype.</summary>
    public static Value MatMul(this Graph g, Value a, bool transA, Value b, bool transB, float alpha = 1f, string name = "matmul")
    {
        if (a.Shape.Rank < 2 || b.Shape.Rank != a.Shape.Rank || !a.Shape.Dims[..^2].SequenceEqual(b.Shape.Dims[..^2]) || a.DType != b.DType)
            throw new ArgumentException($"matmul {name}: {a} and {b} must have one dtype and the same batch axes", nameof(b));
        int m = transA ? a.Shape[-1] : a.Shape[-2], k = transA ? a.Shape[-2] : a.Shape[-1];
        int kb = transB ? b.Shape[-1] : b.Shape[-2], n = transB ? b.Shape[-2] : b.Shape[-1];
        if (k != kb) throw new ArgumentException($"matmul {name}: inner sizes differ: op(a) of {a} is {m}x{k}, op(b) of {b} is {kb}x{n}", nameof(b));
        var c = Act(g, name, new Shape([.. a.Shape.Dims[..^2], m, n]), a.DType, a, b);
        g.Add(new MatMulNode(a, transA, b, transB, alpha, c));
        return c;
    }

    /// <summary>
    /// x [B, N, D], float32 mask [B, N] → [B, D]: Σ_t mask·x / N, the LRA code's mean pooling (padding zeroed by the
    /// mask but counted in N, as torch's mean over the sequence axis counts it).
    /// </summary>
    public static Value MaskedMean(this Graph g, Value x, Value mask, string name = "pooled")
    {
        if (x.Shape.Rank != 3 || mask.Shape != new Shape(x.Shape[0], x.Shape[1]) || mask.DType != DType.Float32)
            throw new ArgumentException($"masked mean {name}: x {x} must be [B, N, D] and the mask {mask} float32 [B, N]", nameof(mask));
        var y = Act(g, name, new Shape(x.Shape[0], x.Shape[2]), x.DType, x);
        g.Add(new MaskedMeanNode(x, mask, y));
        return y;
    }
}
