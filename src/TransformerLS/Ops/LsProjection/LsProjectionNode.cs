using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the LsProjection family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>K̄ = P·K, V̄ = P·V, P the softmax over the sequence of the projection scores (LRA, section 1.3).</summary>
/// Saved for the backward: the column statistics and K̄, V̄ unrounded (landmarks32, 8·B·H·r·d bytes), which make the
/// backward one pass over the sequence.
sealed class LsProjectionNode(Value scores, Value k, Value v, Value? mask, Value kbar, Value vbar, Value colmax, Value colsum, Value landmarks32)
    : Node("ls-projection", mask is null ? [scores, k, v] : [scores, k, v, mask], [kbar, vbar], [colmax, colsum, landmarks32],
        mask is null ? [scores, k, v, colmax, colsum, landmarks32] : [scores, k, v, mask, colmax, colsum, landmarks32])
{
    public override void Forward(RunContext c) =>
        LsProjection.Forward(c.Backend, c[scores], c[k], c[v], mask is null ? null : c[mask], c[kbar], c[vbar], c[colmax], c[colsum], c[landmarks32]);

    public override void Backward(RunContext c)
    {
        var acc = Grads.OneFlag(c, c.Target(1), c.Target(2));
        LsProjection.Backward(c.Backend, c[scores], c[k], c[v], mask is null ? null : c[mask], c[colmax], c[colsum], c.Grad(kbar), c.Grad(vbar),
            c.Target(0).Tensor!, c.Target(1).Tensor!, c.Target(2).Tensor!, acc, c[landmarks32]);
    }

    public override bool Accumulates(int input) => input is 1 or 2;

    public override long Workspace(Device device, bool backward) => backward
        ? Ops.LsProjection.BackwardWorkspace(device, k.Shape, kbar.Shape) : Ops.LsProjection.ForwardWorkspace(device, k.Shape, kbar.Shape);
}

public static partial class Builders
{
    public static (Value KBar, Value VBar) LsProjection(this Graph g, Value scores, Value k, Value v, Value? mask, int rank)
    {
        int B = k.Shape[0], H = k.Shape[1], d = k.Shape[3];
        var shape = new Shape(B, H, rank, d);
        var (kb, vb) = (Act(g, "kbar", shape, k.DType, scores, k), Act(g, "vbar", shape, v.DType, scores, v));
        g.Add(new LsProjectionNode(scores, k, v, mask, kb, vb, Aux(g, k, "proj.colmax", B, H * rank), Aux(g, k, "proj.colsum", B, H * rank),
            Aux(g, k, "proj.landmarks32", 2, B, H, rank, d)));
        return (kb, vb);
    }
}
