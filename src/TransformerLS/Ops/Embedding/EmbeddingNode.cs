using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the Embedding family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

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

public static partial class Builders
{
    /// <summary>Rows of weight (read as [V, D], D its last axis) for float32 token indices of any shape: y [..tokens, D].</summary>
    public static Value Embedding(this Graph g, Value weight, Value tokens, string? name = null)
    {
        var y = Act(g, name ?? weight.Name.Replace(".weight", ""), new Shape([.. tokens.Shape.Dims, weight.Shape[-1]]), weight.DType, weight);
        g.Add(new EmbeddingNode(weight, tokens, y));
        return y;
    }
}
