using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

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
