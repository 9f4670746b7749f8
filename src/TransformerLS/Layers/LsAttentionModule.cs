using TransformerLS.Backends;
using TransformerLS.Ops.LsAttention;
using TransformerLS.Tensors;
using static TransformerLS.Layers.AttentionParts;

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
/// The bidirectional Long-Short attention module of the LRA code (reference sections 1.2-1.6), inference path,
/// built from the backend's ops so it runs on either backend. Parameter names follow the state_dict
/// (W_q, W_k, W_v, W_o, dconv_fc, dual_ln_l = LN_A, dual_ln_s = LN_B).
/// </summary>
public sealed class LsAttentionModule : IDisposable
{
    readonly IBackend _be;
    public LsAttentionModuleConfig Config { get; }
    public ParameterSet Parameters { get; } = new();

    public LsAttentionModule(IBackend be, LsAttentionModuleConfig cfg, DType dtype, Random rng)
    {
        cfg.Validate();
        _be = be;
        Config = cfg;
        int D = cfg.Dim;
        foreach (var name in new[] { "W_q", "W_k", "W_v", "W_o" }) Parameters.AddLinear(be, name, D, D, true, dtype, rng, 0.02);
        Parameters.AddLinear(be, "dconv_fc", cfg.Heads * cfg.Rank, D, true, dtype, rng, 0.02);
        Parameters.AddLayerNorm(be, "dual_ln_l", D, rng, 0);  // torch's LayerNorm init: weight 1, bias 0
        Parameters.AddLayerNorm(be, "dual_ln_s", D, rng, 0);
    }

    Tensor Linear(Tensor x, string name) => AttentionParts.Linear(_be, Parameters, x, name, bias: true);

    /// <summary>
    /// x: [B, n, D] (already normed by the block), or [B, 1 + n, D] with the CLS embedding first when the config has
    /// CLS; mask: [B, n] float32 over the tokens, or null. Returns a new tensor shaped like x.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor? mask)
    {
        var cfg = Config;
        if (x.Shape.Rank != 3 || x.Shape[2] != cfg.Dim || x.Shape[1] < (cfg.Cls ? 2 : 1))
            throw new ArgumentException($"x has shape {x.Shape}; expected [B, {(cfg.Cls ? "1 + n" : "n")}, {cfg.Dim}]{(cfg.Cls ? " with the CLS row first" : "")}", nameof(x));
        using var scope = new TensorScope();
        int B = x.Shape[0], extra = cfg.Cls ? 1 : 0, n = x.Shape[1] - extra, H = cfg.Heads, d = cfg.HeadDim;
        var tokens = cfg.Cls ? Rows(_be, x, 1, n) : x;

        var q = SplitHeads(_be, Linear(tokens, "W_q"), H);
        var (k, v) = DualLayerNorm(_be, Parameters, "dual_ln_l", Linear(tokens, "W_k"), Linear(tokens, "W_v"), q.Shape, cfg.Eps);

        var (kbar, vbar) = (_be.Empty(new Shape(B, H, cfg.Rank, d), x.DType), _be.Empty(new Shape(B, H, cfg.Rank, d), x.DType));
        _be.LsProjection(Linear(tokens, "dconv_fc"), k, v, mask, kbar, vbar,
            _be.Empty(new Shape(B, H * cfg.Rank), DType.Float32), _be.Empty(new Shape(B, H * cfg.Rank), DType.Float32));

        Tensor? qc = null, kc = null, vc = null;
        if (cfg.Cls)
        {
            // The CLS key/value join the landmarks before LN_B (un-normalized by LN_A); its query attends in ClsAttention.
            var cls = Rows(_be, x, 0, 1);
            (qc, kc, vc) = (SplitHeads(_be, Linear(cls, "W_q"), H), SplitHeads(_be, Linear(cls, "W_k"), H), SplitHeads(_be, Linear(cls, "W_v"), H));
            (kbar, vbar) = (Concat(_be, kc, kbar, 2), Concat(_be, vc, vbar, 2));
        }
        var landmarks = kbar.Shape[2];
        var (kn, vn) = DualLayerNorm(_be, Parameters, "dual_ln_s", kbar, vbar, kbar.Shape, cfg.Eps);

        var c = _be.Empty(q.Shape, x.DType);
        _be.LsAttention(new LsAttentionConfig(cfg.Window, landmarks), q, k, v, kn, vn, mask, c, _be.Empty(new Shape(B, H, n), DType.Float32));
        if (cfg.Cls)
        {
            var oc = _be.Empty(new Shape(B, H, 1, d), x.DType);
            using (Tensor q3 = qc!.Reshape(B, H, d), k3 = kc!.Reshape(B, H, d), v3 = vc!.Reshape(B, H, d), o3 = oc.Reshape(B, H, d))
                _be.LsClsAttention(q3, k3, v3, c, mask, o3, _be.Empty(new Shape(B, H), DType.Float32));
            c = Concat(_be, oc, c, 2);
        }
        return scope.Keep(Linear(MergeHeads(_be, c), "W_o"));
    }

    public void Dispose() => Parameters.Dispose();
}
