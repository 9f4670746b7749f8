using TransformerLS.Backends;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS;

/// <summary>
/// The LS building blocks as plain calls on tensors, for people assembling their own stacks: no graph, no plan.
/// Each call checks its inputs, runs on the inputs' backend (the GPU kernels or the CPU reference) and returns new
/// tensors, which join the current <see cref="TensorScope"/> (or are the caller's to dispose). Forward only; the
/// graph (<see cref="Graphs.Graph"/>) is the way to gradients. The LRA attention module, written with these calls:
/// <code>
/// var q = Functional.SplitHeads(Functional.Linear(x, p["W_q.weight"], p["W_q.bias"]), H);
/// var (k, v) = Functional.DualLayerNorm(Functional.Linear(x, p["W_k.weight"], p["W_k.bias"]),
///     Functional.Linear(x, p["W_v.weight"], p["W_v.bias"]), p["dual_ln_l.weight"], p["dual_ln_l.bias"], H);
/// var (kbar, vbar) = Functional.LsProjection(Functional.Linear(x, p["dconv_fc.weight"], p["dconv_fc.bias"]), k, v, mask, r);
/// var (kn, vn) = Functional.DualLayerNorm(kbar, vbar, p["dual_ln_s.weight"], p["dual_ln_s.bias"], H);
/// var y = Functional.Linear(Functional.MergeHeads(Functional.LsAttention(new LsAttentionConfig(w, r), q, k, v, kn, vn, mask)),
///     p["W_o.weight"], p["W_o.bias"]);
/// </code>
/// </summary>
public static class Functional
{
    static IBackend Be(Tensor t) => t.Backend;

    /// <summary>y = x·Wᵀ + b over the last axis (weight [out, in]).</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        var y = Be(x).Empty(new Shape([.. x.Shape.Dims[..^1], weight.Shape[0]]), x.DType);
        Ops.Linear.Forward(Be(x), x, weight, bias, y);
        return y;
    }

    /// <summary>LayerNorm over the last axis (gamma, beta float32).</summary>
    public static Tensor LayerNorm(Tensor x, Tensor gamma, Tensor beta, float eps = 1e-5f)
    {
        var y = Be(x).Empty(x.Shape, x.DType);
        Ops.LayerNorm.Forward(Be(x), x, gamma, beta, y, null, null, eps);
        return y;
    }

    /// <summary>[B, T, H·d] → [B, H, T, d].</summary>
    public static Tensor SplitHeads(Tensor x, int heads)
    {
        if (x.Shape.Rank != 3 || heads < 1 || x.Shape[2] % heads != 0)
            throw new ArgumentException($"x has shape {x.Shape}; expected [B, T, H·d] with H = {heads} dividing the last axis", nameof(x));
        int B = x.Shape[0], T = x.Shape[1], d = x.Shape[2] / heads;
        var y = Be(x).Empty(new Shape(B, heads, T, d), x.DType);
        using var view = x.Reshape(B, T, heads, d);
        Layout.SwapAxes12(Be(x), view, y);
        return y;
    }

    /// <summary>[B, H, T, d] → [B, T, H·d].</summary>
    public static Tensor MergeHeads(Tensor x)
    {
        if (x.Shape.Rank != 4) throw new ArgumentException($"x has shape {x.Shape}; expected [B, H, T, d]", nameof(x));
        int B = x.Shape[0], H = x.Shape[1], T = x.Shape[2], d = x.Shape[3];
        var y = Be(x).Empty(new Shape(B, T, H * d), x.DType);
        using var view = y.Reshape(B, T, H, d);
        Layout.SwapAxes12(Be(x), x, view);
        return y;
    }

    /// <summary>
    /// DualLN: one LayerNorm over all H·d channels of each token of k and v (same weights), returned head-split
    /// [B, H, T, d]; k, v token-major [B, T, H·d] (straight from a Linear) or head-split (the landmarks).
    /// </summary>
    public static (Tensor K, Tensor V) DualLayerNorm(Tensor k, Tensor v, Tensor gamma, Tensor beta, int heads, float eps = 1e-5f)
    {
        var be = Be(k);
        var shape = k.Shape.Rank == 4 ? k.Shape
            : k.Shape.Rank == 3 && heads >= 1 && k.Shape[2] % heads == 0 ? new Shape(k.Shape[0], heads, k.Shape[1], k.Shape[2] / heads)
            : throw new ArgumentException($"k has shape {k.Shape}; expected [B, T, H·d] (H = {heads}) or [B, H, T, d]", nameof(k));
        int B = shape[0], T = shape[2];
        var (yk, yv) = (be.Empty(shape, k.DType), be.Empty(shape, k.DType));
        using var mean = be.Empty(new Shape(2, B, T), DType.Float32);
        using var rstd = be.Empty(new Shape(2, B, T), DType.Float32);
        Ops.DualLayerNorm.Forward(be, k, v, gamma, beta, yk, yv, mean, rstd, eps);
        return (yk, yv);
    }

    /// <summary>K̄ = P·K, V̄ = P·V with P the softmax over the sequence of scores [B, n, H·r] (padding excluded), per head.</summary>
    public static (Tensor KBar, Tensor VBar) LsProjection(Tensor scores, Tensor k, Tensor v, Tensor? mask, int rank)
    {
        var be = Be(k);
        if (k.Shape.Rank != 4) throw new ArgumentException($"k has shape {k.Shape}; expected [B, H, n, d]", nameof(k));
        int B = k.Shape[0], H = k.Shape[1], d = k.Shape[3];
        var (kbar, vbar) = (be.Empty(new Shape(B, H, rank, d), k.DType), be.Empty(new Shape(B, H, rank, d), k.DType));
        using var colmax = be.Empty(new Shape(B, H * rank), DType.Float32);
        using var colsum = be.Empty(new Shape(B, H * rank), DType.Float32);
        Ops.LsProjection.Forward(be, scores, k, v, mask, kbar, vbar, colmax, colsum);
        return (kbar, vbar);
    }

    /// <summary>The bidirectional LS attention: one softmax over the r landmarks and each query's segment window; q and the result [B, H, n, d], or both token-major [B, n, H·d].</summary>
    public static Tensor LsAttention(LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask = null)
    {
        var be = Be(q);
        var o = be.Empty(q.Shape, q.DType);
        using var lse = be.Empty(new Shape(k.Shape[0], k.Shape[1], k.Shape[2]), DType.Float32);
        Ops.LsAttention.Forward(be, cfg, q, k, v, kbar, vbar, mask, o, lse);
        return o;
    }

    /// <summary>Rows of <paramref name="weight"/> [V, D] at the token ids of <paramref name="tokens"/> (float32 ids): [.. tokens, D].</summary>
    public static Tensor Embedding(Tensor weight, Tensor tokens)
    {
        if (weight.Shape.Rank != 2) throw new ArgumentException($"weight has shape {weight.Shape}; expected [vocab, dim]", nameof(weight));
        var y = Be(weight).Empty(new Shape([.. tokens.Shape.Dims, weight.Shape[1]]), weight.DType);
        var n = checked((int)tokens.Count);
        using var flat = tokens.Reshape(n);
        using var rows = y.Reshape(n, weight.Shape[1]);
        Ops.Embedding.Forward(Be(weight), weight, flat, rows);
        return y;
    }

    /// <summary>a + b, elementwise (same shape and dtype).</summary>
    public static Tensor Add(Tensor a, Tensor b)
    {
        var y = Be(a).Empty(a.Shape, a.DType);
        Ops.Elementwise.Axpby(Be(a), a, 1f, b, 1f, y);
        return y;
    }

    /// <summary>GELU (the erf form, as torch's nn.GELU()).</summary>
    public static Tensor Gelu(Tensor x)
    {
        var y = Be(x).Empty(x.Shape, x.DType);
        Ops.Elementwise.Gelu(Be(x), x, y);
        return y;
    }

    /// <summary>max(x, 0).</summary>
    public static Tensor Relu(Tensor x)
    {
        var y = Be(x).Empty(x.Shape, x.DType);
        Ops.Elementwise.Relu(Be(x), x, y);
        return y;
    }

    /// <summary>
    /// y [B, D] = (1/N)·Σ_t mask[b, t]·x[b, t, :] for x [B, N, D] and mask [B, N] (float32 0/1): the LRA code's mean pooling,
    /// whose divisor is N even where the mask zeroes padding (torch's mean over the sequence axis).
    /// </summary>
    public static Tensor MaskedMean(Tensor x, Tensor mask)
    {
        var be = Be(x);
        if (x.Shape.Rank != 3) throw new ArgumentException($"x has shape {x.Shape}; expected [B, N, D]", nameof(x));
        int B = x.Shape[0], N = x.Shape[1], D = x.Shape[2];
        if (mask.Shape != new Shape(B, N)) throw new ArgumentException($"mask has shape {mask.Shape}; expected [{B}, {N}]", nameof(mask));
        var y = be.Empty(new Shape(B, D), x.DType);
        Graphs.Nodes.MaskedMeanNode.Run(be, x, mask, y);
        return y;
    }

    /// <summary>
    /// The causal dynamic projection per chunk of <paramref name="chunk"/> tokens (reference section 3.3): scores [B, T, H·r],
    /// x [B, H, T, d] → [B, H, ⌈T/l⌉·r, d], each chunk's r rows the softmax-weighted sums of its tokens (padding excluded).
    /// </summary>
    public static Tensor LsChunkProjection(int chunk, Tensor scores, Tensor x, Tensor? mask = null)
    {
        var be = Be(x);
        if (x.Shape.Rank != 4) throw new ArgumentException($"x has shape {x.Shape}; expected [B, H, T, d]", nameof(x));
        if (chunk < 1) throw new ArgumentOutOfRangeException(nameof(chunk), chunk, "chunk length l must be >= 1");
        int B = x.Shape[0], H = x.Shape[1], T = x.Shape[2], d = x.Shape[3];
        if (scores.Shape.Rank != 3 || scores.Shape[2] % H != 0)
            throw new ArgumentException($"scores has shape {scores.Shape}; expected [{B}, {T}, {H}·r]", nameof(scores));
        var y = be.Empty(new Shape(B, H, (T + chunk - 1) / chunk * (scores.Shape[2] / H), d), x.DType);
        Ops.LsChunkProjection.Forward(be, chunk, scores, x, mask, y);
        return y;
    }

    /// <summary>
    /// The causal LS attention of one block of queries (reference section 3.4): one softmax over the per-token band of
    /// the last w positions and the compressed keys of the earlier chunks, with the relative terms; inputs as
    /// <see cref="LsCausalInputs"/> documents them. Returns [B, H, L, d].
    /// </summary>
    public static Tensor LsCausalAttention(LsCausalConfig cfg, in LsCausalInputs inputs)
    {
        var be = Be(inputs.Q);
        var q = inputs.Q.Shape;
        if (q.Rank != 4) throw new ArgumentException($"q has shape {q}; expected [B, H, L, d]", nameof(inputs));
        var o = be.Empty(q, inputs.Q.DType);
        using var lse = be.Empty(new Shape(q[0], q[1], q[2]), DType.Float32);
        Ops.LsCausalAttention.Forward(be, cfg, inputs, o, lse);
        return o;
    }
}
