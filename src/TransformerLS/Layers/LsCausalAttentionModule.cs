using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Graphs.Nodes;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Layers;

/// <summary>The enwik8 attention module's sizes (reference section 3): width D = H·d, band w, chunk length l, rank r.</summary>
public sealed record LsCausalModuleConfig(int Dim, int Heads, int Window, int ChunkLength, int Rank, float Eps = 1e-5f)
{
    public int HeadDim => Dim / Heads;

    public void Validate()
    {
        if (Heads < 1 || Dim < 2 || Dim % Heads != 0 || Dim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(Dim), Dim, $"width D must be an even positive multiple of the head count H = {Heads}");
        new LsCausalConfig(Window, ChunkLength, Rank).Validate();
    }
}

/// <summary>
/// The causal Long-Short attention module of the enwik8 code (ChunkedLSAttention, reference sections 3.1-3.4) as
/// graph nodes. Inputs are already normed (h = LN1(block), c = LN1(cache)). Parameter names follow the state_dict:
/// proj_query/key/val/out, dconv_1, r_net, r_net_chunk, r_w_bias, r_r_bias, dual_ln_win, dual_ln_dproj
/// (r_w_bias and r_r_bias are stored [H, d] here; the reference's extra unit axes are dropped).
/// </summary>
public static class LsCausalAttentionBlock
{
    public static void AddParameters(ParameterSet ps, IBackend be, string prefix, LsCausalModuleConfig cfg, DType dtype, Random rng)
    {
        cfg.Validate();
        int D = cfg.Dim;
        foreach (var name in new[] { "proj_query", "proj_key", "proj_val", "proj_out", "r_net", "r_net_chunk" })
            ps.AddLinear(be, prefix + name, D, D, bias: name == "r_net_chunk", dtype, rng, 0.02);
        ps.AddLinear(be, prefix + "dconv_1", cfg.Heads * cfg.Rank, D, true, dtype, rng, 0.02);
        ps.Add(be, prefix + "r_w_bias", new Shape(cfg.Heads, cfg.HeadDim), dtype, rng, 0.02);
        ps.Add(be, prefix + "r_r_bias", new Shape(cfg.Heads, cfg.HeadDim), dtype, rng, 0.02);
        ps.AddLayerNorm(be, prefix + "dual_ln_win", D, rng, 0.02, dtype);  // section 3.5: LayerNorm weights N(1, 0.02)
        ps.AddLayerNorm(be, prefix + "dual_ln_dproj", D, rng, 0.02, dtype);
    }

    /// <summary>Number of compressed keys of a block of L after a memory of M: (M + L)/l chunks of r.</summary>
    public static int CompressedKeys(LsCausalModuleConfig cfg, int L, int M) => (M / cfg.ChunkLength + (L + cfg.ChunkLength - 1) / cfg.ChunkLength) * cfg.Rank;

    /// <summary>
    /// h: [B, L, D], the normed block; c: [B, M, D], the normed memory (M a multiple of l), or null; sinWindow [1, w, D] and
    /// sinChunks [1, Nc, D]: the relative sinusoids of δ = 0, 1, … (<see cref="AttentionParts.Sinusoids"/>). Returns [B, L, D].
    /// </summary>
    public static Value Build(Graph g, LsCausalModuleConfig cfg, ParameterValues p, Value h, Value? c, Value sinWindow, Value sinChunks)
    {
        if (h.Shape.Rank != 3 || h.Shape[2] != cfg.Dim) throw new ArgumentException($"h is {h}; expected [B, L, {cfg.Dim}]", nameof(h));
        var M = c?.Shape[1] ?? 0;
        if (c is not null && (c.Shape.Rank != 3 || c.Shape[0] != h.Shape[0] || c.Shape[2] != cfg.Dim || M % cfg.ChunkLength != 0))
            throw new ArgumentException($"the memory is {c}; expected [{h.Shape[0]}, M, {cfg.Dim}] with M a multiple of l = {cfg.ChunkLength}", nameof(c));
        int B = h.Shape[0], L = h.Shape[1], H = cfg.Heads, P = Math.Min(M, cfg.Window - 1);
        Value Linear(Value x, string name, bool bias = false) => g.Linear(x, p[$"{name}.weight"], bias ? p[$"{name}.bias"] : null);
        var q = g.SplitHeads(Linear(h, "proj_query"), H);

        // Window keys: the last P cached states re-projected, then the block; LN over D (dual_ln_win).
        var xw = P > 0 ? g.Concat(g.Slice(c!, 1, M - P, P), h, 1) : h;
        var (kraw, vraw) = (Linear(xw, "proj_key"), Linear(xw, "proj_val"));
        var (kw, vw) = g.DualLayerNorm(kraw, vraw, p["dual_ln_win.weight"], p["dual_ln_win.bias"], new Shape(B, H, P + L, cfg.HeadDim), cfg.Eps);

        // Block chunks: project, then compress (per head, the raw h·Wk).
        var sb = Linear(h, "dconv_1", bias: true);
        var kb = g.LsChunkProjection(cfg.ChunkLength, cfg.Rank, sb, g.SplitHeads(P > 0 ? g.Slice(kraw, 1, P, L) : kraw, H));
        var vb = g.LsChunkProjection(cfg.ChunkLength, cfg.Rank, sb, g.SplitHeads(P > 0 ? g.Slice(vraw, 1, P, L) : vraw, H));
        if (M > 0)
        {
            // Cache chunks: compress the raw cache states per head slice, then project with the full Wk / Wv.
            var pc = g.MergeHeads(g.LsChunkProjection(cfg.ChunkLength, cfg.Rank, Linear(c!, "dconv_1", bias: true), g.SplitHeads(c!, H)));
            kb = g.Concat(g.SplitHeads(Linear(pc, "proj_key"), H), kb, 2);
            vb = g.Concat(g.SplitHeads(Linear(pc, "proj_val"), H), vb, 2);
        }
        var (kc, vc) = g.DualLayerNorm(kb, vb, p["dual_ln_dproj.weight"], p["dual_ln_dproj.bias"], kb.Shape, cfg.Eps);
        if (sinWindow.Shape != new Shape(1, cfg.Window, cfg.Dim) || sinChunks.Shape != new Shape(1, kb.Shape[2], cfg.Dim))
            throw new ArgumentException($"the sinusoid tables are {sinWindow} and {sinChunks}; expected [1, {cfg.Window}, {cfg.Dim}] and [1, {kb.Shape[2]}, {cfg.Dim}]", nameof(sinChunks));
        var rel = g.SplitHeadsUnbatched(Linear(sinWindow, "r_net"), H);
        var relc = g.SplitHeadsUnbatched(Linear(sinChunks, "r_net_chunk", bias: true), H);
        var o = g.LsCausalAttention(new LsCausalConfig(cfg.Window, cfg.ChunkLength, cfg.Rank), q, kw, vw, p["r_w_bias"], p["r_r_bias"], rel, kc, vc, relc);
        return Linear(g.MergeHeads(o), "proj_out");
    }

    /// <summary>A constant [1, count, D] table of the relative sinusoids of δ = 0 … count − 1.</summary>
    public static Value Sinusoids(Graph g, string name, int count, int dim, DType dtype)
    {
        var t = g.Backend.Empty(new Shape(1, count, dim), dtype);
        t.CopyFrom(AttentionParts.Sinusoids(count, dim));
        return g.Constant(name, t);
    }
}

/// <summary>One causal attention module with its own parameters, run forward through a graph (tests and inference).</summary>
public sealed class LsCausalAttentionModule : IDisposable
{
    readonly IBackend _be;
    public LsCausalModuleConfig Config { get; }
    public ParameterSet Parameters { get; } = new();

    public LsCausalAttentionModule(IBackend be, LsCausalModuleConfig cfg, DType dtype, Random rng)
    {
        _be = be;
        Config = cfg;
        LsCausalAttentionBlock.AddParameters(Parameters, be, "", cfg, dtype, rng);
    }

    /// <summary>h: [B, L, D], the normed block; cache: [B, M, D], the normed memory (M a multiple of l), or null. Returns a new [B, L, D].</summary>
    public Tensor Forward(Tensor h, Tensor? cache)
    {
        var cfg = Config;
        if (h.Shape.Rank != 3 || h.Shape[2] != cfg.Dim) throw new ArgumentException($"h has shape {h.Shape}; expected [B, L, {cfg.Dim}]", nameof(h));
        using var g = new Graph(_be);
        var hv = g.Input("h", h.Shape, h.DType);
        var cv = cache is null ? null : g.Input("cache", cache.Shape, cache.DType);
        var nc = LsCausalAttentionBlock.CompressedKeys(cfg, h.Shape[1], cache?.Shape[1] ?? 0);
        var y = LsCausalAttentionBlock.Build(g, cfg, new ParameterValues(g, Parameters), hv, cv,
            LsCausalAttentionBlock.Sinusoids(g, "sin.window", cfg.Window, cfg.Dim, h.DType), LsCausalAttentionBlock.Sinusoids(g, "sin.chunks", nc, cfg.Dim, h.DType));
        var feeds = new Dictionary<Value, Tensor> { [hv] = h };
        if (cv is not null) feeds[cv] = cache!;
        return Executor.ForwardOnce(g, y, feeds);
    }

    public void Dispose() => Parameters.Dispose();
}
