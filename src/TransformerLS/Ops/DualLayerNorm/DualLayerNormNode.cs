using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the DualLayerNorm family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>DualLN: one LayerNorm (weights shared) over xk and xv into head-split yk, yv; statistics [2, B, T].</summary>
sealed class DualLayerNormNode(Value xk, Value xv, Value gamma, Value beta, Value yk, Value yv, Value mean, Value rstd, float eps)
    : Node($"dual-layernorm {gamma.Name}", [xk, xv, gamma, beta], [yk, yv], [mean, rstd], [xk, xv, gamma, mean, rstd])
{
    public override void Forward(RunContext c) =>
        DualLayerNorm.Forward(c.Backend, c[xk], c[xv], c[gamma], c[beta], c[yk], c[yv], c[mean], c[rstd], eps);

    public override void Backward(RunContext c)
    {
        using Tensor? sk = Grads.Scratch(c, c.Target(0), xk), sv = Grads.Scratch(c, c.Target(1), xv);
        DualLayerNorm.Backward(c.Backend, c.Grad(yk), c.Grad(yv), c[xk], c[xv], c[gamma], c[mean], c[rstd],
            c.Target(0).Tensor ?? sk!, c.Target(1).Tensor ?? sv!, c.Target(2).Tensor!, c.Target(3).Tensor!);
    }

    public override long Workspace(Device device, bool backward) => backward
        ? Grads.ScratchBytes(this, 0, 1) + Ops.DualLayerNorm.BackwardWorkspace(device, 2, yk.Shape[0], yk.Shape[2], gamma.Shape[0]) : 0;
}

public static partial class Builders
{
    public static (Value K, Value V) DualLayerNorm(this Graph g, Value xk, Value xv, Value gamma, Value beta, Shape headShape, float eps)
    {
        var name = gamma.Name.Replace(".weight", "");
        var (k, v) = (Act(g, $"{name}.k", headShape, xk.DType, xk, gamma), Act(g, $"{name}.v", headShape, xv.DType, xv, gamma));
        g.Add(new DualLayerNormNode(xk, xv, gamma, beta, k, v, Aux(g, xk, $"{name}.mean", 2, headShape[0], headShape[2]), Aux(g, xk, $"{name}.rstd", 2, headShape[0], headShape[2]), eps));
        return (k, v);
    }
}
