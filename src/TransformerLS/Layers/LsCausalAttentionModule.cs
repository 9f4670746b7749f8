using TransformerLS.Backends;
using TransformerLS.Ops.LsCausalAttention;
using TransformerLS.Tensors;
using static TransformerLS.Layers.AttentionParts;

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
/// The causal Long-Short attention module of the enwik8 code (ChunkedLSAttention, reference sections 3.1-3.4),
/// inference path on either backend. Inputs are already normed (h = LN1(block), c = LN1(cache)). Parameter names
/// follow the state_dict: proj_query/key/val/out, dconv_1, r_net, r_net_chunk, r_w_bias, r_r_bias, dual_ln_win,
/// dual_ln_dproj (r_w_bias and r_r_bias are stored [H, d] here; the reference's extra unit axes are dropped).
/// </summary>
public sealed class LsCausalAttentionModule : IDisposable
{
    readonly IBackend _be;
    public LsCausalModuleConfig Config { get; }
    public ParameterSet Parameters { get; } = new();

    public LsCausalAttentionModule(IBackend be, LsCausalModuleConfig cfg, DType dtype, Random rng)
    {
        cfg.Validate();
        _be = be;
        Config = cfg;
        int D = cfg.Dim;
        foreach (var name in new[] { "proj_query", "proj_key", "proj_val", "proj_out", "r_net", "r_net_chunk" })
            Parameters.AddLinear(be, name, D, D, bias: name == "r_net_chunk", dtype, rng, 0.02);
        Parameters.AddLinear(be, "dconv_1", cfg.Heads * cfg.Rank, D, true, dtype, rng, 0.02);
        Parameters.Add(be, "r_w_bias", new Shape(cfg.Heads, cfg.HeadDim), dtype, rng, 0.02);
        Parameters.Add(be, "r_r_bias", new Shape(cfg.Heads, cfg.HeadDim), dtype, rng, 0.02);
        Parameters.AddLayerNorm(be, "dual_ln_win", D, rng, 0.02);  // section 3.5: LayerNorm weights N(1, 0.02)
        Parameters.AddLayerNorm(be, "dual_ln_dproj", D, rng, 0.02);
    }

    Tensor Linear(Tensor x, string name, bool bias = false) => AttentionParts.Linear(_be, Parameters, x, name, bias);

    /// <summary>[count, D] relative embeddings of δ = 0 … count−1 through the Linear <paramref name="name"/>, as [H, count, d].</summary>
    Tensor Relative(string name, int count, bool bias, DType dtype)
    {
        var sin = _be.Empty(new Shape(1, count, Config.Dim), dtype);
        sin.CopyFrom(Sinusoids(count, Config.Dim));
        return SplitHeads(_be, Linear(sin, name, bias), Config.Heads).Reshape(Config.Heads, count, Config.HeadDim); // freed with the caller's scope
    }

    /// <summary>
    /// h: [B, L, D], the normed block; cache: [B, M, D], the normed memory (M a multiple of l), or null.
    /// Returns a new [B, L, D].
    /// </summary>
    public Tensor Forward(Tensor h, Tensor? cache)
    {
        var cfg = Config;
        if (h.Shape.Rank != 3 || h.Shape[2] != cfg.Dim) throw new ArgumentException($"h has shape {h.Shape}; expected [B, L, {cfg.Dim}]", nameof(h));
        var M = cache?.Shape[1] ?? 0;
        if (cache is not null && (cache.Shape.Rank != 3 || cache.Shape[0] != h.Shape[0] || cache.Shape[2] != cfg.Dim || M % cfg.ChunkLength != 0))
            throw new ArgumentException($"cache has shape {cache.Shape}; expected [{h.Shape[0]}, M, {cfg.Dim}] with M a multiple of l = {cfg.ChunkLength}", nameof(cache));
        using var scope = new TensorScope();
        int B = h.Shape[0], L = h.Shape[1], H = cfg.Heads, P = Math.Min(M, cfg.Window - 1);
        var dt = h.DType;
        var q = SplitHeads(_be, Linear(h, "proj_query"), H);

        // Window keys: the last P cached states re-projected, then the block; LN over D (dual_ln_win).
        var xw = P > 0 ? Concat(_be, Rows(_be, cache!, M - P, P), h, 1) : h;
        var kraw = Linear(xw, "proj_key");
        var vraw = Linear(xw, "proj_val");
        var (kw, vw) = DualLayerNorm(_be, Parameters, "dual_ln_win", kraw, vraw, new Shape(B, H, P + L, cfg.HeadDim), cfg.Eps);

        // Block chunks: project, then compress (per head, the raw h·Wk).
        var sb = Linear(h, "dconv_1", bias: true);
        var (kb, vb) = (Compress(sb, SplitHeads(_be, Rows(_be, kraw, P, L), H)), Compress(sb, SplitHeads(_be, Rows(_be, vraw, P, L), H)));
        if (M > 0)
        {
            // Cache chunks: compress the raw cache states per head slice, then project with the full Wk / Wv.
            var pc = MergeHeads(_be, Compress(Linear(cache!, "dconv_1", bias: true), SplitHeads(_be, cache!, H)));
            kb = Concat(_be, SplitHeads(_be, Linear(pc, "proj_key"), H), kb, 2);
            vb = Concat(_be, SplitHeads(_be, Linear(pc, "proj_val"), H), vb, 2);
        }
        var nc = kb.Shape[2];
        var (kc, vc) = DualLayerNorm(_be, Parameters, "dual_ln_dproj", kb, vb, kb.Shape, cfg.Eps);

        var o = _be.Empty(q.Shape, dt);
        var x = new LsCausalInputs(q, kw, vw, Parameters["r_w_bias"], Parameters["r_r_bias"], Relative("r_net", cfg.Window, false, dt),
            kc, vc, Relative("r_net_chunk", nc, true, dt), null);
        _be.LsCausalAttention(new LsCausalConfig(cfg.Window, cfg.ChunkLength, cfg.Rank), x, o, _be.Empty(new Shape(B, H, L), DType.Float32));
        return scope.Keep(Linear(MergeHeads(_be, o), "proj_out"));
    }

    Tensor Compress(Tensor scores, Tensor x)
    {
        int chunks = (x.Shape[2] + Config.ChunkLength - 1) / Config.ChunkLength;
        var y = _be.Empty(new Shape(x.Shape[0], x.Shape[1], chunks * Config.Rank, x.Shape[3]), x.DType);
        _be.LsChunkProjection(Config.ChunkLength, scores, x, null, y);
        return y;
    }

    public void Dispose() => Parameters.Dispose();
}
