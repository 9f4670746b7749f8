using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the LayerNorm family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>LayerNorm over the last axis (float32 weights); mean and rstd are kept for the backward.</summary>
sealed class LayerNormNode(Value x, Value gamma, Value beta, Value y, Value mean, Value rstd, float eps)
    : Node($"layernorm {gamma.Name}", [x, gamma, beta], [y], [mean, rstd], [x, gamma, mean, rstd])
{
    public override void Forward(RunContext c) => LayerNorm.Forward(c.Backend, c[x], c[gamma], c[beta], c[y], c[mean], c[rstd], eps);

    public override void Backward(RunContext c)
    {
        using var dxs = Grads.Scratch(c, c.Target(0), x);
        // Gamma and beta are parameters: their targets always add.
        LayerNorm.Backward(c.Backend, c.Grad(y), c[x], c[gamma], c[mean], c[rstd], c.Target(0).Tensor ?? dxs!, c.Target(1).Tensor!, c.Target(2).Tensor!, accumulate: true);
    }

    public override bool Accumulates(int input) => input > 0;
    public override long Workspace(Device device, bool backward) =>
        backward ? Grads.ScratchBytes(this, 0) + Ops.LayerNorm.BackwardWorkspace(device, x.Shape) : 0;
}

public static partial class Builders
{
    public static Value LayerNorm(this Graph g, Value x, Value gamma, Value beta, float eps = 1e-5f)
    {
        var name = gamma.Name.Replace(".weight", "");
        var rows = (int)(x.Shape.Count / x.Shape[-1]);
        var y = Act(g, name, x.Shape, x.DType, x, gamma, beta);
        g.Add(new LayerNormNode(x, gamma, beta, y, Aux(g, x, $"{name}.mean", rows), Aux(g, x, $"{name}.rstd", rows), eps));
        return y;
    }
}
