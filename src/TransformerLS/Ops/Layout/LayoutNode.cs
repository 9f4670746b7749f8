using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the Layout family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

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

public static partial class Builders
{
    /// <summary>[B, T, H·d] → [B, H, T, d].</summary>
    public static Value SplitHeads(this Graph g, Value x, int heads)
    {
        int B = x.Shape[0], T = x.Shape[1], d = x.Shape[2] / heads;
        var y = Act(g, $"{x.Name}.heads", new Shape(B, heads, T, d), x.DType, x);
        g.Add(new SwapAxesNode(x, [B, T, heads, d], y, [B, heads, T, d]));
        return y;
    }

    /// <summary>[1, T, H·d] → [H, T, d] (relative-position tables, one per head).</summary>
    public static Value SplitHeadsUnbatched(this Graph g, Value x, int heads)
    {
        int T = x.Shape[1], d = x.Shape[2] / heads;
        var y = Act(g, $"{x.Name}.heads", new Shape(heads, T, d), x.DType, x);
        g.Add(new SwapAxesNode(x, [1, T, heads, d], y, [1, heads, T, d]));
        return y;
    }

    /// <summary>[B, H, T, d] → [B, T, H·d].</summary>
    public static Value MergeHeads(this Graph g, Value x, string name = "merged")
    {
        int B = x.Shape[0], H = x.Shape[1], T = x.Shape[2], d = x.Shape[3];
        var y = Act(g, name, new Shape(B, T, H * d), x.DType, x);
        g.Add(new SwapAxesNode(x, [B, H, T, d], y, [B, T, H, d]));
        return y;
    }

    public static Value Slice(this Graph g, Value x, int axis, int from, int count, string? name = null)
    {
        if (from < 0 || count < 0 || from + count > x.Shape[axis])
            throw new ArgumentOutOfRangeException(nameof(count), $"[{from}, {from + count}) along axis {axis} of {x}", "the slice must lie inside the axis");
        var y = Act(g, name ?? $"{x.Name}[{from}:{from + count}]", With(x.Shape, axis, count), x.DType, x);
        g.Add(new SliceNode(x, axis, from, y));
        return y;
    }

    public static Value Concat(this Graph g, Value a, Value b, int axis, string? name = null)
    {
        var y = Act(g, name ?? $"{a.Name}++{b.Name}", With(a.Shape, axis, a.Shape[axis] + b.Shape[axis]), a.DType, a, b);
        g.Add(new ConcatNode(a, b, axis, y));
        return y;
    }
}
