using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the Elementwise family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>y = a + b (residual connections).</summary>
sealed class AddNode(Value a, Value b, Value y) : Node($"add {y.Name}", [a, b], [y])
{
    public override void Forward(RunContext c) => Elementwise.Axpby(c.Backend, c[a], 1f, c[b], 1f, c[y]);
    public override void Backward(RunContext c)
    {
        Grads.Scaled(c, c.Grad(y), 1f, c.Target(0));
        Grads.Scaled(c, c.Grad(y), 1f, c.Target(1));
    }
    public override bool Accumulates(int input) => true;
}

/// <summary>y = alpha·x (the LM's embedding scale √D).</summary>
sealed class ScaleNode(Value x, float alpha, Value y) : Node($"scale {y.Name}", [x], [y])
{
    public override void Forward(RunContext c) => Elementwise.Axpby(c.Backend, c[x], alpha, null, 0f, c[y]);
    public override void Backward(RunContext c) => Grads.Scaled(c, c.Grad(y), alpha, c.Target(0));
    public override bool Accumulates(int input) => true;
}

public enum Activation { Gelu, Relu }

sealed class ActivationNode(Value x, Activation kind, Value y) : Node($"{kind.ToString().ToLowerInvariant()} {y.Name}", [x], [y], saved: [x])
{
    public override void Forward(RunContext c)
    {
        if (kind == Activation.Gelu) Elementwise.Gelu(c.Backend, c[x], c[y]); else Elementwise.Relu(c.Backend, c[x], c[y]);
    }

    public override void Backward(RunContext c)
    {
        var dx = c.Target(0).Tensor!;
        if (kind == Activation.Gelu) Elementwise.GeluBackward(c.Backend, c[x], c.Grad(y), dx); else Elementwise.ReluBackward(c.Backend, c[x], c.Grad(y), dx);
    }
}

/// <summary>Dropout while training (the mask a hash of the run's seed, this node and the element: recomputation redraws it exactly); a copy otherwise.</summary>
sealed class DropoutNode(Value x, float p, Value y) : Node($"dropout {y.Name}", [x], [y])
{
    // The mask's seed: run seed·φ64 + node. A captured graph reads the run seed from device memory (the kernel mixes the same way).
    void Apply(RunContext c, Tensor src, Tensor dst)
    {
        if (c.RunSeed is not null) Elementwise.Dropout(c.Backend, src, dst, p, (ulong)y.Id, c.RunSeed);
        else Elementwise.Dropout(c.Backend, src, dst, p, c.Seed * 0x9E3779B97F4A7C15UL + (ulong)y.Id);
    }

    public override void Forward(RunContext c)
    {
        if (c.Training) Apply(c, c[x], c[y]); else Elementwise.Axpby(c.Backend, c[x], 1f, null, 0f, c[y]);
    }

    public override void Backward(RunContext c)
    {
        if (c.Training) Apply(c, c.Grad(y), c.Target(0).Tensor!); else Grads.Scaled(c, c.Grad(y), 1f, c.Target(0));
    }
}

public static partial class Builders
{
    public static Value Plus(this Graph g, Value a, Value b, string name = "residual")
    {
        if (a.Shape != b.Shape || a.DType != b.DType) throw new ArgumentException($"cannot add {a} and {b}", nameof(b));
        var y = Act(g, name, a.Shape, a.DType, a, b);
        g.Add(new AddNode(a, b, y));
        return y;
    }

    public static Value Scale(this Graph g, Value x, float alpha, string name = "scaled")
    {
        var y = Act(g, name, x.Shape, x.DType, x);
        g.Add(new ScaleNode(x, alpha, y));
        return y;
    }

    public static Value Activation(this Graph g, Value x, Activation kind)
    {
        var y = Act(g, kind.ToString().ToLowerInvariant(), x.Shape, x.DType, x);
        g.Add(new ActivationNode(x, kind, y));
        return y;
    }

    /// <summary>Dropout with probability <paramref name="p"/>; p = 0 adds nothing.</summary>
    public static Value Dropout(this Graph g, Value x, float p)
    {
        if (p == 0) return x;
        if (!(p > 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "the dropout probability must be in [0, 1)");
        var y = Act(g, $"{x.Name}.dropout", x.Shape, x.DType, x);
        g.Add(new DropoutNode(x, p, y));
        return y;
    }
}
