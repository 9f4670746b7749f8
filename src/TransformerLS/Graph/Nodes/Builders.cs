using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graph.Nodes;

/// <summary>The graph's vocabulary: each method adds one node and returns its output.</summary>
public static class Builders
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

    public static Value Linear(this Graph g, Value x, Value w, Value? b, string? name = null)
    {
        if (w.Shape.Rank != 2 || w.Shape[1] != x.Shape[-1])
            throw new ArgumentException($"weight {w} does not map the last axis of {x}", nameof(w));
        var y = Act(g, name ?? w.Name.Replace(".weight", ""), With(x.Shape, -1, w.Shape[0]), x.DType, x, w, b);
        g.Add(new LinearNode(x, w, b, y));
        return y;
    }

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

    public static Value LayerNorm(this Graph g, Value x, Value gamma, Value beta, float eps = 1e-5f)
    {
        var name = gamma.Name.Replace(".weight", "");
        var rows = (int)(x.Shape.Count / x.Shape[-1]);
        var y = Act(g, name, x.Shape, x.DType, x, gamma, beta);
        g.Add(new LayerNormNode(x, gamma, beta, y, Aux(g, x, $"{name}.mean", rows), Aux(g, x, $"{name}.rstd", rows), eps));
        return y;
    }

    /// <summary>c = alpha·op(a)·op(b) over the leading (batch) axes, which a and b share; c has a's dtype.</summary>
    public static Value MatMul(this Graph g, Value a, bool transA, Value b, bool transB, float alpha = 1f, string name = "matmul")
    {
        if (a.Shape.Rank < 2 || b.Shape.Rank != a.Shape.Rank || !a.Shape.Dims[..^2].SequenceEqual(b.Shape.Dims[..^2]) || a.DType != b.DType)
            throw new ArgumentException($"matmul {name}: {a} and {b} must have one dtype and the same batch axes", nameof(b));
        int m = transA ? a.Shape[-1] : a.Shape[-2], k = transA ? a.Shape[-2] : a.Shape[-1];
        int kb = transB ? b.Shape[-1] : b.Shape[-2], n = transB ? b.Shape[-2] : b.Shape[-1];
        if (k != kb) throw new ArgumentException($"matmul {name}: inner sizes differ: op(a) of {a} is {m}x{k}, op(b) of {b} is {kb}x{n}", nameof(b));
        var c = Act(g, name, new Shape([.. a.Shape.Dims[..^2], m, n]), a.DType, a, b);
        g.Add(new MatMulNode(a, transA, b, transB, alpha, c));
        return c;
    }

    /// <summary>
    /// x [B, N, D], float32 mask [B, N] → [B, D]: Σ_t mask·x / N, the LRA code's mean pooling (padding zeroed by the
    /// mask but counted in N, as torch's mean over the sequence axis counts it).
    /// </summary>
    public static Value MaskedMean(this Graph g, Value x, Value mask, string name = "pooled")
    {
        if (x.Shape.Rank != 3 || mask.Shape != new Shape(x.Shape[0], x.Shape[1]) || mask.DType != DType.Float32)
            throw new ArgumentException($"masked mean {name}: x {x} must be [B, N, D] and the mask {mask} float32 [B, N]", nameof(mask));
        var y = Act(g, name, new Shape(x.Shape[0], x.Shape[2]), x.DType, x);
        g.Add(new MaskedMeanNode(x, mask, y));
        return y;
    }

    /// <summary>Softmax over the last axis.</summary>
    public static Value Softmax(this Graph g, Value x, string name = "softmax")
    {
        var y = Act(g, name, x.Shape, x.DType, x);
        g.Add(new SoftmaxNode(x, y));
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

    /// <summary>Rows of weight (read as [V, D], D its last axis) for float32 token indices of any shape: y [..tokens, D].</summary>
    public static Value Embedding(this Graph g, Value weight, Value tokens, string? name = null)
    {
        var y = Act(g, name ?? weight.Name.Replace(".weight", ""), new Shape([.. tokens.Shape.Dims, weight.Shape[-1]]), weight.DType, weight);
        g.Add(new EmbeddingNode(weight, tokens, y));
        return y;
    }

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

    public static (Value K, Value V) DualLayerNorm(this Graph g, Value xk, Value xv, Value gamma, Value beta, Shape headShape, float eps)
    {
        var name = gamma.Name.Replace(".weight", "");
        var (k, v) = (Act(g, $"{name}.k", headShape, xk.DType, xk, gamma), Act(g, $"{name}.v", headShape, xv.DType, xv, gamma));
        g.Add(new DualLayerNormNode(xk, xv, gamma, beta, k, v, Aux(g, xk, $"{name}.mean", 2, headShape[0], headShape[2]), Aux(g, xk, $"{name}.rstd", 2, headShape[0], headShape[2]), eps));
        return (k, v);
    }

    public static (Value KBar, Value VBar) LsProjection(this Graph g, Value scores, Value k, Value v, Value? mask, int rank)
    {
        int B = k.Shape[0], H = k.Shape[1], d = k.Shape[3];
        var shape = new Shape(B, H, rank, d);
        var (kb, vb) = (Act(g, "kbar", shape, k.DType, scores, k), Act(g, "vbar", shape, v.DType, scores, v));
        g.Add(new LsProjectionNode(scores, k, v, mask, kb, vb, Aux(g, k, "proj.colmax", B, H * rank), Aux(g, k, "proj.colsum", B, H * rank)));
        return (kb, vb);
    }

    public static Value LsAttention(this Graph g, LsAttentionConfig cfg, Value q, Value k, Value v, Value kbar, Value vbar, Value? mask)
    {
        var o = Act(g, "attn", q.Shape, q.DType, q, k, v, kbar, vbar);
        g.Add(new LsAttentionNode(cfg, q, k, v, kbar, vbar, mask, o, Aux(g, q, "attn.lse", q.Shape[0], q.Shape[1], q.Shape[2])));
        return o;
    }

    /// <summary>q, k, v: [B, H, 1, d]; ctx: [B, H, n, d]; returns [B, H, 1, d].</summary>
    public static Value LsClsAttention(this Graph g, Value q, Value k, Value v, Value ctx, Value? mask)
    {
        var o = Act(g, "cls.attn", q.Shape, q.DType, q, k, v, ctx);
        g.Add(new LsClsAttentionNode(q, k, v, ctx, mask, o, Aux(g, q, "cls.lse", q.Shape[0], q.Shape[1])));
        return o;
    }

    /// <summary>scores [B, T, H·r], x [B, H, T, d] → [B, H, ⌈T/l⌉·r, d].</summary>
    public static Value LsChunkProjection(this Graph g, int chunk, int rank, Value scores, Value x)
    {
        var chunks = (x.Shape[2] + chunk - 1) / chunk;
        var y = Act(g, $"{x.Name}.compressed", new Shape(x.Shape[0], x.Shape[1], chunks * rank, x.Shape[3]), x.DType, scores, x);
        g.Add(new LsChunkProjectionNode(chunk, scores, x, y));
        return y;
    }

    /// <summary>The causal attention over <paramref name="x"/> = [q, k, v, u, vbias, rel, kc, vc, relc] (see <see cref="LsCausalInputs"/>).</summary>
    public static Value LsCausalAttention(this Graph g, LsCausalConfig cfg, params Value[] x)
    {
        if (x.Length != 9) throw new ArgumentException($"expected the 9 inputs of LsCausalInputs, got {x.Length}", nameof(x));
        var q = x[0];
        var o = Act(g, "attn", q.Shape, q.DType, x);
        g.Add(new LsCausalAttentionNode(cfg, x, o, Aux(g, q, "attn.lse", q.Shape[0], q.Shape[1], q.Shape[2])));
        return o;
    }
}
