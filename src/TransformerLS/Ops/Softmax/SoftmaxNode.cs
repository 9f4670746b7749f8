using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the Softmax family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>y = softmax(x) over the last axis; the backward reads only y.</summary>
sealed class SoftmaxNode(Value x, Value y) : Node($"softmax {y.Name}", [x], [y], saved: [y])
{
    public override void Forward(RunContext c) => Softmax.Forward(c.Backend, c[x], c[y], -1);
    public override void Backward(RunContext c) => Softmax.Backward(c.Backend, c[y], c.Grad(y), c.Target(0).Tensor!, -1);
}

public static partial class Builders
{
    /// <summary>Softmax over the last axis.</summary>
    public static Value Softmax(this Graph g, Value x, string name = "softmax")
    {
        var y = Act(g, name, x.Shape, x.DType, x);
        g.Add(new SoftmaxNode(x, y));
        return y;
    }
}
