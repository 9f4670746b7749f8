using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the LsClsAttention family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>The CLS query of the LRA last layer over its own key and the tokens' attention outputs c (section 1.6); [B, H, 1, d] values.</summary>
sealed class LsClsAttentionNode(Value q, Value k, Value v, Value ctx, Value? mask, Value o, Value lse)
    : Node("ls-cls-attention", mask is null ? [q, k, v, ctx] : [q, k, v, ctx, mask], [o], [lse],
        mask is null ? [q, k, v, ctx, o, lse] : [q, k, v, ctx, mask, o, lse])
{
    int[] Row => [q.Shape[0], q.Shape[1], q.Shape[3]];

    public override void Forward(RunContext c)
    {
        using Tensor q3 = c[q].Reshape(Row), k3 = c[k].Reshape(Row), v3 = c[v].Reshape(Row), o3 = c[o].Reshape(Row);
        LsClsAttention.Forward(c.Backend, q3, k3, v3, c[ctx], mask is null ? null : c[mask], o3, c[lse]);
    }

    public override void Backward(RunContext c)
    {
        using Tensor q3 = c[q].Reshape(Row), k3 = c[k].Reshape(Row), v3 = c[v].Reshape(Row), o3 = c[o].Reshape(Row), do3 = c.Grad(o).Reshape(Row),
            dq = c.Target(0).Tensor!.Reshape(Row), dk = c.Target(1).Tensor!.Reshape(Row), dv = c.Target(2).Tensor!.Reshape(Row);
        LsClsAttention.Backward(c.Backend, q3, k3, v3, c[ctx], mask is null ? null : c[mask], o3, c[lse], do3, dq, dk, dv,
            c.Target(3).Tensor!, c.Target(3).Accumulate);
    }

    public override bool Accumulates(int input) => input == 3;
}

public static partial class Builders
{
    /// <summary>q, k, v: [B, H, 1, d]; ctx: [B, H, n, d]; returns [B, H, 1, d].</summary>
    public static Value LsClsAttention(this Graph g, Value q, Value k, Value v, Value ctx, Value? mask)
    {
        var o = Act(g, "cls.attn", q.Shape, q.DType, q, k, v, ctx);
        g.Add(new LsClsAttentionNode(q, k, v, ctx, mask, o, Aux(g, q, "cls.lse", q.Shape[0], q.Shape[1])));
        return o;
    }
}
