using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the LsAttention family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>The bidirectional LS attention: one softmax over landmarks and the segment window (section 1.4-1.5).</summary>
sealed class LsAttentionNode(LsAttentionConfig cfg, Value q, Value k, Value v, Value kbar, Value vbar, Value? mask, Value o, Value lse)
    : Node("ls-attention", mask is null ? [q, k, v, kbar, vbar] : [q, k, v, kbar, vbar, mask], [o], [lse],
        mask is null ? [q, k, v, kbar, vbar, o, lse] : [q, k, v, kbar, vbar, mask, o, lse])
{
    public override void Forward(RunContext c) =>
        LsAttention.Forward(c.Backend, cfg, c[q], c[k], c[v], c[kbar], c[vbar], mask is null ? null : c[mask], c[o], c[lse]);

    public override void Backward(RunContext c) =>
        LsAttention.Backward(c.Backend, cfg, c[q], c[k], c[v], c[kbar], c[vbar], mask is null ? null : c[mask], c[o], c[lse], c.Grad(o),
            c.Target(0).Tensor!, c.Target(1).Tensor!, c.Target(2).Tensor!, c.Target(3).Tensor!, c.Target(4).Tensor!);

    public override long Workspace(Device device, bool backward) =>
        backward ? Ops.LsAttention.BackwardWorkspace(device, q.DType, k.Shape, v.Shape, kbar.Shape, vbar.Shape) : 0;
}

public static partial class Builders
{
    public static Value LsAttention(this Graph g, LsAttentionConfig cfg, Value q, Value k, Value v, Value kbar, Value vbar, Value? mask)
    {
        var o = Act(g, "attn", q.Shape, q.DType, q, k, v, kbar, vbar);
        g.Add(new LsAttentionNode(cfg, q, k, v, kbar, vbar, mask, o, Aux(g, q, "attn.lse", k.Shape[0], k.Shape[1], k.Shape[2])));
        return o;
    }
}
