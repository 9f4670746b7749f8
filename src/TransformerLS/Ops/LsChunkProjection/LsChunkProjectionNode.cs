using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the LsChunkProjection family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>Per-chunk dynamic projection of the causal attention (section 3.3): y [B, H, chunks·r, d].</summary>
sealed class LsChunkProjectionNode(int chunk, Value scores, Value x, Value y)
    : Node("ls-chunk-projection", [scores, x], [y], saved: [scores, x])
{
    public override void Forward(RunContext c) => LsChunkProjection.Forward(c.Backend, chunk, c[scores], c[x], null, c[y]);

    public override void Backward(RunContext c)
    {
        using Tensor? ss = Grads.Scratch(c, c.Target(0), scores), sx = Grads.Scratch(c, c.Target(1), x);
        var acc = Grads.OneFlag(c, c.Target(0), c.Target(1));
        LsChunkProjection.Backward(c.Backend, chunk, c[scores], c[x], null, c.Grad(y), c.Target(0).Tensor ?? ss!, c.Target(1).Tensor ?? sx!, acc);
    }

    public override bool Accumulates(int input) => true;
    public override long Workspace(Device device, bool backward) => backward ? Grads.ScratchBytes(this, 0, 1) : 0;
}

public static partial class Builders
{
    /// <summary>scores [B, T, H·r], x [B, H, T, d] → [B, H, ⌈T/l⌉·r, d].</summary>
    public static Value LsChunkProjection(this Graph g, int chunk, int rank, Value scores, Value x)
    {
        var chunks = (x.Shape[2] + chunk - 1) / chunk;
        var y = Act(g, $"{x.Name}.compressed", new Shape(x.Shape[0], x.Shape[1], chunks * rank, x.Shape[3]), x.DType, scores, x);
        g.Add(new LsChunkProjectionNode(chunk, scores, x, y));
        return y;
    }
}
