using TransformerLS.Ops;
using TransformerLS.Backends;
using TransformerLS.Tensors;
using LinearOp = TransformerLS.Ops.Linear;

namespace TransformerLS.Graph.Nodes;

/// <summary>Shared pieces of node backwards.</summary>
static class Grads
{
    /// <summary>
    /// For ops with one accumulate flag over several gradients: true when any wanted target adds, after zeroing
    /// the targets that would have been overwritten.
    /// </summary>
    public static bool OneFlag(RunContext c, GradTarget a, GradTarget b)
    {
        if (!(a.Accumulate || b.Accumulate)) return false;
        if (a.Wanted && !a.Accumulate) c.Backend.Fill(a.Tensor!, 0f);
        if (b.Wanted && !b.Accumulate) c.Backend.Fill(b.Tensor!, 0f);
        return true;
    }

    /// <summary>A throwaway gradient buffer where an op must write one nobody wants (declared as workspace).</summary>
    public static Tensor? Scratch(RunContext c, GradTarget t, Value v) => t.Wanted ? null : c.Backend.Empty(v.Shape, v.DType);

    public static long ScratchBytes(Node n, params int[] inputs) => inputs.Where(k => !n.Inputs[k].RequiresGrad).Sum(k => n.Inputs[k].Bytes);

    /// <summary>dst = alpha·src, or dst += alpha·src.</summary>
    public static void Scaled(RunContext c, Tensor src, float alpha, GradTarget t)
    {
        if (t.Wanted) Elementwise.Axpby(c.Backend, src, alpha, t.Accumulate ? t.Tensor : null, t.Accumulate ? 1f : 0f, t.Tensor!);
    }
}

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

    // Linear.Forward sums a bf16 product with its bias in float32: a float32 bias and output while it runs.
    public override long Workspace(Device device, bool backward) =>
        !backward && b is not null && y.DType == DType.BFloat16 ? 4 * (b.Shape.Count + y.Shape.Count) : 0;
}

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
    public override long Workspace(Device device, bool backward) => backward ? Grads.ScratchBytes(this, 0) : 0;
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

/// <summary>y = x with axes 1 and 2 swapped, each seen through a view: splits heads ([B,T,H·d] as [B,T,H,d] → [B,H,T,d]) and merges them.</summary>
sealed class SwapAxesNode(Value x, int[] xView, Value y, int[] yView) : Node($"swap {y.Name}", [x], [y])
{
    public override void Forward(RunContext c)
    {
        using Tensor a = c[x].Reshape(xView), b = c[y].Reshape(yView);
        Layout.SwapAxes12(c.Backend, a, b);
    }

    public override void Backward(RunContext c)
    {
        using Tensor a = c.Grad(y).Reshape(yView), b = c.Target(0).Tensor!.Reshape(xView);
        Layout.SwapAxes12(c.Backend, a, b);
    }
}

/// <summary>y = x[.., from : from + count, ..] along <paramref name="axis"/>.</summary>
sealed class SliceNode(Value x, int axis, int from, Value y) : Node($"slice {y.Name}", [x], [y])
{
    public override void Forward(RunContext c) => Layout.CopySlice(c.Backend, c[x], from, c[y], 0, axis, y.Shape[axis]);

    public override void Backward(RunContext c)
    {
        var t = c.Target(0);
        if (!t.Accumulate) c.Backend.Fill(t.Tensor!, 0f);
        Layout.CopySlice(c.Backend, c.Grad(y), 0, t.Tensor!, from, axis, y.Shape[axis], accumulate: true);
    }

    public override bool Accumulates(int input) => true;
}

/// <summary>y = a ++ b along <paramref name="axis"/>.</summary>
sealed class ConcatNode(Value a, Value b, int axis, Value y) : Node($"concat {y.Name}", [a, b], [y])
{
    public override void Forward(RunContext c)
    {
        Layout.CopySlice(c.Backend, c[a], 0, c[y], 0, axis, a.Shape[axis]);
        Layout.CopySlice(c.Backend, c[b], 0, c[y], a.Shape[axis], axis, b.Shape[axis]);
    }

    public override void Backward(RunContext c)
    {
        var dy = c.Grad(y);
        if (c.Target(0) is { Wanted: true } ta) Layout.CopySlice(c.Backend, dy, 0, ta.Tensor!, 0, axis, a.Shape[axis], ta.Accumulate);
        if (c.Target(1) is { Wanted: true } tb) Layout.CopySlice(c.Backend, dy, a.Shape[axis], tb.Tensor!, 0, axis, b.Shape[axis], tb.Accumulate);
    }

    public override bool Accumulates(int input) => true;
}

/// <summary>
/// y[i] = W[tokens[i]] (float32 token indices, negative = padding, a zero row); W is read as [rows, last axis]
/// (cls_embed [1, 1, D] broadcast by zero indices). The gradient adds into W's.
/// </summary>
sealed class EmbeddingNode(Value weight, Value tokens, Value y) : Node($"embedding {weight.Name}", [weight, tokens], [y], saved: [tokens])
{
    int N => (int)tokens.Shape.Count;
    int D => weight.Shape[-1];
    int V => (int)(weight.Shape.Count / D);

    public override void Forward(RunContext c)
    {
        using Tensor w2 = c[weight].Reshape(V, D), t1 = c[tokens].Reshape(N), y2 = c[y].Reshape(N, D);
        Embedding.Forward(c.Backend, w2, t1, y2);
    }

    public override void Backward(RunContext c)
    {
        using Tensor dw2 = c.Target(0).Tensor!.Reshape(V, D), t1 = c[tokens].Reshape(N), dy2 = c.Grad(y).Reshape(N, D);
        Embedding.Backward(c.Backend, t1, dy2, dw2, accumulate: true);
    }

    public override bool Accumulates(int input) => true;
}

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
