using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the CrossEntropy family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>Per-row cross-entropy of logits [.., V] (read as [N, V]) against float32 class indices (N of them; negative = ignored, loss 0).</summary>
sealed class CrossEntropyNode(Value logits, Value target, Value loss, Value lse)
    : Node("cross-entropy", [logits, target], [loss], [lse], [logits, target, lse])
{
    int[] Rows => [(int)target.Shape.Count, logits.Shape[-1]];

    public override void Forward(RunContext c)
    {
        using Tensor l2 = c[logits].Reshape(Rows), t1 = c[target].Reshape(Rows[0]);
        CrossEntropy.Forward(c.Backend, l2, t1, c[loss], c[lse]);
    }

    public override void Backward(RunContext c)
    {
        using Tensor l2 = c[logits].Reshape(Rows), d2 = c.Target(0).Tensor!.Reshape(Rows), t1 = c[target].Reshape(Rows[0]);
        CrossEntropy.Backward(c.Backend, l2, t1, c[lse], c.Grad(loss), d2);
    }
}

/// <summary>y [1] = Σ loss over rows with a target / their count (torch's mean with ignored targets); count [1] is saved.</summary>
sealed class LossMeanNode(Value loss, Value target, Value y, Value count)
    : Node($"mean {loss.Name}", [loss, target], [y], [count], [target, count])
{
    public override void Forward(RunContext c)
    {
        using var t1 = c[target].Reshape((int)target.Shape.Count);
        CrossEntropy.LossMean(c.Backend, c[loss], t1, c[y], c[count]);
    }

    public override void Backward(RunContext c)
    {
        using var t1 = c[target].Reshape((int)target.Shape.Count);
        CrossEntropy.LossMeanBackward(c.Backend, t1, c[count], c.Grad(y), c.Target(0).Tensor!);
    }
}

public static partial class Builders
{
    /// <summary>
    /// Mean over rows of the cross-entropy of logits [.., V] against targets of the leading shape, as torch's
    /// CrossEntropyLoss takes it: ignored rows (negative targets) are left out of the sum and of the divisor.
    /// </summary>
    public static Value CrossEntropyMean(this Graph g, Value logits, Value target)
    {
        var n = (int)target.Shape.Count;
        if (logits.Shape.Count != (long)n * logits.Shape[-1])
            throw new ArgumentException($"logits {logits} do not have one row per target of {target}", nameof(target));
        var loss = g.Activation("loss.rows", new Shape(n), logits.DType.Wide(), logits.RequiresGrad);
        g.Add(new CrossEntropyNode(logits, target, loss, Aux(g, logits, "loss.lse", n)));
        var mean = g.Activation("loss", new Shape(1), logits.DType.Wide(), logits.RequiresGrad);
        g.Add(new LossMeanNode(loss, target, mean, Aux(g, logits, "loss.count", 1)));
        return mean;
    }
}
