using TransformerLS.Tensors;

namespace TransformerLS.Graph.Nodes;

/// <summary>
/// c = alpha·op(a)·op(b), batched over the leading axes (cuBLAS on the GPU). With the softmax node it builds the
/// full-attention baseline that materializes its N×N scores.
/// </summary>
sealed class MatMulNode(Value a, bool transA, Value b, bool transB, float alpha, Value c)
    : Node($"matmul {c.Name}", [a, b], [c], saved: [a, b])
{
    public override void Forward(RunContext ctx) => ctx.Backend.MatMul(ctx[a], transA, ctx[b], transB, ctx[c], alpha);

    // With C = op(A)·op(B): d op(A) = dC·op(B)ᵀ and d op(B) = op(A)ᵀ·dC; a transposed operand takes the transpose of those.
    public override void Backward(RunContext ctx)
    {
        var be = ctx.Backend;
        var dc = ctx.Grad(c);
        if (ctx.Target(0) is { Wanted: true } da)
        {
            var beta = da.Accumulate ? 1f : 0f;
            if (!transA) be.MatMul(dc, false, ctx[b], !transB, da.Tensor!, alpha, beta);
            else be.MatMul(ctx[b], transB, dc, true, da.Tensor!, alpha, beta);
        }
        if (ctx.Target(1) is { Wanted: true } db)
        {
            var beta = db.Accumulate ? 1f : 0f;
            if (!transB) be.MatMul(ctx[a], !transA, dc, false, db.Tensor!, alpha, beta);
            else be.MatMul(dc, true, ctx[a], transA, db.Tensor!, alpha, beta);
        }
    }

    public override bool Accumulates(int input) => true;
}

/// <summary>y = softmax(x) over the last axis; the backward reads only y.</summary>
sealed class SoftmaxNode(Value x, Value y) : Node($"softmax {y.Name}", [x], [y], saved: [y])
{
    public override void Forward(RunContext c) => c.Backend.Softmax(c[x], c[y], -1);
    public override void Backward(RunContext c) => c.Backend.SoftmaxBackward(c[y], c.Grad(y), c.Target(0).Tensor!, -1);
}
