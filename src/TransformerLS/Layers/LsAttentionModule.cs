using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Graphs.Nodes;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Layers;

/// <summary>The LRA attention module's sizes (reference section 1): width D = H·d, window w, rank r, CLS in this layer.</summary>
public sealed record LsAttentionModuleConfig(int Dim, int Heads, int Window, int Rank, bool Cls = false, float Eps = 1e-5f)
{
    public int HeadDim => Dim / Heads;

    public void Validate()
    {
        if (Heads < 1 || Dim < 1 || Dim % Heads != 0)
            throw new ArgumentOutOfRangeException(nameof(Dim), Dim, $"width D must be a positive multiple of the head count H = {Heads}");
        new LsAttentionConfig(Window, Rank).Validate();
    }
}

/// <summary>
/// The bidirectional Long-Short attention module of the LRA code (reference sections 1.2-1.6) as graph nodes, so
/// it runs forward and backward on either backend. Parameter names follow the state_dict (W_q, W_k, W_v, W_o,
/// dconv_fc, dual_ln_l = LN_A, dual_ln_s = LN_B).
/// </summary>
public static class LsAttentionBlock
{
    public static void AddParameters(ParameterSet ps, IBackend be, string prefix, LsAttentionModuleConfig cfg, DType dtype, Random rng)
    {
        cfg.Validate();
        int D = cfg.Dim;
        foreach (var name in new[] { "W_q", "W_k", "W_v", "W_o" }) ps.AddLinear(be, prefix + name, D, D, true, dtype, rng, 0.02);
        ps.AddLinear(be, prefix + "dconv_fc", cfg.Heads * cfg.Rank, D, true, dtype, rng, 0.02);
        ps.AddLayerNorm(be, prefix + "dual_ln_l", D, rng, 0, dtype);  // torch's LayerNorm init: weight 1, bias 0
        ps.AddLayerNorm(be, prefix + "dual_ln_s", D, rng, 0, dtype);
    }

    /// <summary>
    /// tokens: [B, n, D] (normed by the block); cls: [B, 1, D] (the un-normed CLS embedding) in the CLS layer, else null;
    /// mask: [B, n] float32 or null. Returns [B, n, D], or [B, 1 + n, D] with the CLS row first.
    /// <para>
    /// The queries are made after the key path (raw keys and values, LN_A, the projection scores, the landmarks): the same
    /// function, but in the backward, which runs in reverse, the query gradient is used up by W_q's backward right after
    /// the attention's instead of waiting through the key path's. With <paramref name="recomputeKeys"/> (a graph outside
    /// any block, run by an executor with <see cref="ExecutorOptions.Recompute"/>) the key path is one recomputation block:
    /// its raw keys / values and scores are freed after the forward and made again (W_k, W_v, LN_A, dconv_fc, the
    /// projection) just before the projection's backward, so they are not live during the attention's backward: two
    /// [B, n, D] and one [B, n, H·r] activations fewer at the peak for three GEMMs, a LayerNorm and a projection more.
    /// </para>
    /// </summary>
    public static Value Build(Graph g, LsAttentionModuleConfig cfg, ParameterValues p, Value tokens, Value? cls, Value? mask, bool recomputeKeys = false)
    {
        if (tokens.Shape.Rank != 3 || tokens.Shape[2] != cfg.Dim)
            throw new ArgumentException($"tokens are {tokens}; expected [B, n, {cfg.Dim}]", nameof(tokens));
        if (cfg.Cls != cls is not null) throw new ArgumentException($"the CLS embedding must be given exactly when the config has CLS ({cfg.Cls})", nameof(cls));
        if (recomputeKeys && g.InBlock)
            throw new ArgumentException("recomputeKeys makes the key path a recomputation block; this graph is already inside one (blocks do not nest)", nameof(recomputeKeys));
        int H = cfg.Heads;
        Value Linear(Value x, string name) => g.Linear(x, p[$"{name}.weight"], p[$"{name}.bias"]);

        var heads = new Shape(tokens.Shape[0], H, tokens.Shape[1], cfg.HeadDim);
        if (recomputeKeys) g.BeginBlock();
        var (k, v) = g.DualLayerNorm(Linear(tokens, "W_k"), Linear(tokens, "W_v"), p["dual_ln_l.weight"], p["dual_ln_l.bias"], heads, cfg.Eps);
        var (kbar, vbar) = g.LsProjection(Linear(tokens, "dconv_fc"), k, v, mask, cfg.Rank);
        if (recomputeKeys) g.EndBlock();
        // Without CLS the attention reads the queries and writes its output token-major [B, n, D], as the Linears
        // write and read them (no split-heads or merge-heads copies); with CLS its output joins the CLS row per head.
        var q = cls is null ? Linear(tokens, "W_q") : g.SplitHeads(Linear(tokens, "W_q"), H);
        Value? qc = null, kc = null, vc = null;
        if (cls is not null)
        {
            // The CLS key/value join the landmarks before LN_B (un-normalized by LN_A); its query attends in the CLS attention.
            (qc, kc, vc) = (g.SplitHeads(Linear(cls, "W_q"), H), g.SplitHeads(Linear(cls, "W_k"), H), g.SplitHeads(Linear(cls, "W_v"), H));
            (kbar, vbar) = (g.Concat(kc, kbar, 2), g.Concat(vc, vbar, 2));
        }
        var (kn, vn) = g.DualLayerNorm(kbar, vbar, p["dual_ln_s.weight"], p["dual_ln_s.bias"], kbar.Shape, cfg.Eps);
        var c = g.LsAttention(new LsAttentionConfig(cfg.Window, kbar.Shape[2]), q, k, v, kn, vn, mask);
        if (cls is null) return Linear(c, "W_o");
        return Linear(g.MergeHeads(g.Concat(g.LsClsAttention(qc!, kc!, vc!, c, mask), c, 2)), "W_o");
    }
}

/// <summary>
/// One attention module with its own parameters, run forward through a graph (a convenience for tests and inference).
/// The graph, its memory plan and executor are built on the first call for an input shape and reused after.
/// </summary>
public sealed class LsAttentionModule : IDisposable
{
    readonly IBackend _be;
    readonly Dictionary<(Shape X, DType DType, bool Masked), Compiled> _compiled = [];
    public LsAttentionModuleConfig Config { get; }
    public ParameterSet Parameters { get; } = new();

    /// <summary>Graphs built so far (one per input shape, dtype and masking).</summary>
    public int CompiledShapes => _compiled.Count;

    sealed record Compiled(Graph Graph, Value X, Value? Mask, Value Y, Executor Run) : IDisposable
    {
        public void Dispose() { Run.Dispose(); Graph.Dispose(); }
    }

    public LsAttentionModule(IBackend be, LsAttentionModuleConfig cfg, DType dtype, Random rng)
    {
        _be = be;
        Config = cfg;
        LsAttentionBlock.AddParameters(Parameters, be, "", cfg, dtype, rng);
    }

    /// <summary>
    /// x: [B, n, D], or [B, 1 + n, D] with the CLS embedding first when the config has CLS; mask: [B, n] float32 over
    /// the tokens, or null. Returns a new tensor shaped like x.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor? mask)
    {
        var cfg = Config;
        if (x.Shape.Rank != 3 || x.Shape[2] != cfg.Dim || x.Shape[1] < (cfg.Cls ? 2 : 1))
            throw new ArgumentException($"x has shape {x.Shape}; expected [B, {(cfg.Cls ? "1 + n" : "n")}, {cfg.Dim}]{(cfg.Cls ? " with the CLS row first" : "")}", nameof(x));
        var key = (x.Shape, x.DType, mask is not null);
        if (!_compiled.TryGetValue(key, out var c)) _compiled[key] = c = Compile(x, mask);
        var feeds = new Dictionary<Value, Tensor> { [c.X] = x };
        if (c.Mask is not null) feeds[c.Mask] = mask!;
        c.Run.Forward(feeds);
        var result = _be.Empty(c.Y.Shape, c.Y.DType);
        Elementwise.Cast(_be, c.Run[c.Y], result);
        c.Run.ReleaseOutputs();
        return result;
    }

    Compiled Compile(Tensor x, Tensor? mask)
    {
        var cfg = Config;
        var g = new Graph(_be);
        try
        {
            var xv = g.Input("x", x.Shape, x.DType);
            var mv = mask is null ? null : g.Input("mask", mask.Shape, mask.DType);
            var n = x.Shape[1] - (cfg.Cls ? 1 : 0);
            var tokens = cfg.Cls ? g.Slice(xv, 1, 1, n) : xv;
            var y = LsAttentionBlock.Build(g, cfg, new ParameterValues(g, Parameters), tokens, cfg.Cls ? g.Slice(xv, 1, 0, 1) : null, mv);
            return new Compiled(g, xv, mv, y, new Executor(g, new ExecutorOptions { Keep = [y] }));
        }
        catch
        {
            g.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var c in _compiled.Values) c.Dispose();
        _compiled.Clear();
        Parameters.Dispose();
    }
}
