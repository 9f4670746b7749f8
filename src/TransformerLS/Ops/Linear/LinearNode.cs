using TransformerLS.Ops;
using TransformerLS.Tensors;
using LinearOp = TransformerLS.Ops.Linear;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the Linear family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>y = x·Wᵀ + b (torch.nn.Linear; cuBLAS on the GPU). Weight and bias gradients add into the float32 parameter gradients.</summary>
sealed class LinearNode(Value x, Value w, Value? b, Value y)
    : Node($"linear {w.Name}", b is null ? [x, w] : [x, w, b], [y], saved: [x, w])
{
    public override void Forward(RunContext c) => LinearOp.Forward(c.Backend, c[x], c[w], b is null ? null : c[b], c[y]);

    public override void Backward(RunContext c)
    {
        // Weight and bias share one accumulate flag in Linear.Backward (parameter targets always add).
        var acc = Grads.OneFlag(c, c.Target(1), b is null ? default : c.Target(2));
        LinearOp.Backward(c.Backend, c.Grad(y), c[x], c[w], c.Target(0).Tensor, c.Target(1).Tensor, b is null ? null : c.Target(2).Tensor, acc);
    }

    public override bool Accumulates(int input) => input > 0;

    public override long Workspace(Device device, bool backward) => backward ? LinearOp.BackwardWorkspace(device, b?.Shape, y.Shape) : 0;
}

public static partial class Builders
{
    public static Value Linear(this Graph g, Value x, Value w, Value? b, string? name = null)
    {
        if (w.Shape.Rank != 2 || w.Shape[1] != x.Shape[-1])
            throw new ArgumentException($"weight {w} does not map the last axis of {x}", nameof(w));
        var y = Act(g, name ?? w.Name.Replace(".weight", ""), With(x.Shape, -1, w.Shape[0]), x.DType, x, w, b);
        g.Add(new LinearNode(x, w, b, y));
        return y;
    }
}
