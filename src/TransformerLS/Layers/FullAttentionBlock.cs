using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Graphs.Nodes;
using TransformerLS.Tensors;

namespace TransformerLS.Layers;

/// <summary>
/// Standard multi-head attention of width D = H·d built from the library's own matmul and softmax: the
/// baseline that LS attention is compared with in memory-scaling studies. It materializes the [B, H, N, N]
/// scores and probabilities, as eager attention does, so its memory grows with N². No padding mask.
/// Parameters: W_q, W_k, W_v, W_o (the LS module's names, without its projection and DualLN).
/// </summary>
public static class FullAttentionBlock
{
    public static void AddParameters(ParameterSet ps, IBackend be, string prefix, int dim, int heads, DType dtype, Random rng)
    {
        if (heads < 1 || dim < 1 || dim % heads != 0)
            throw new ArgumentOutOfRangeException(nameof(dim), dim, $"width D must be a positive multiple of the head count H = {heads}");
        foreach (var name in new[] { "W_q", "W_k", "W_v", "W_o" }) ps.AddLinear(be, prefix + name, dim, dim, true, dtype, rng, 0.02);
    }

    /// <summary>tokens: [B, N, D]; returns [B, N, D] = W_o(softmax(q·kᵀ/√d)·v) with heads merged.</summary>
    public static Value Build(Graph g, int heads, ParameterValues p, Value tokens)
    {
        if (tokens.Shape.Rank != 3 || tokens.Shape[2] % heads != 0)
            throw new ArgumentException($"tokens are {tokens}; expected [B, N, D] with D a multiple of {heads} heads", nameof(tokens));
        var d = tokens.Shape[2] / heads;
        Value Linear(Value x, string name) => g.Linear(x, p[$"{name}.weight"], p[$"{name}.bias"]);
        var q = g.SplitHeads(Linear(tokens, "W_q"), heads);
        var k = g.SplitHeads(Linear(tokens, "W_k"), heads);
        var v = g.SplitHeads(Linear(tokens, "W_v"), heads);
        var probs = g.Softmax(g.MatMul(q, false, k, true, 1f / MathF.Sqrt(d), "scores"), "probs");
        return Linear(g.MergeHeads(g.MatMul(probs, false, v, false, name: "attn")), "W_o");
    }
}
