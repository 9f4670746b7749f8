using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

/// <summary>
/// The graph's vocabulary: each method adds one node and returns its output. The builders live beside their op in
/// Ops/&lt;Family&gt;/&lt;Family&gt;Node.cs; here are the helpers they share.
/// </summary>
public static partial class Builders
{
    static Value Act(Graph g, string name, Shape shape, DType dtype, params Value?[] from) =>
        g.Activation(name, shape, dtype, from.Any(v => v is { RequiresGrad: true }));

    /// <summary>A saved statistic (mean, rstd, lse, ...) of an op over <paramref name="of"/>: in its wide dtype.</summary>
    static Value Aux(Graph g, Value of, string name, params int[] dims) => g.Activation(name, new Shape(dims), of.DType.Wide(), false);

    static Shape With(Shape s, int axis, int size)
    {
        var dims = s.Dims.ToArray();
        dims[axis < 0 ? axis + dims.Length : axis] = size;
        return new Shape(dims);
    }
}
