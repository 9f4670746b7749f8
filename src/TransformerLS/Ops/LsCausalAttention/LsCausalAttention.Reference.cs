using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Causal LS attention settings (reference section 3): band window w, projection chunk length l, rank r per chunk.</summary>
public sealed record LsCausalConfig(int Window, int ChunkLength, int Rank)
{
    public void Validate()
    {
        if (Window < 1) throw new ArgumentOutOfRangeException(nameof(Window), Window, "window w must be >= 1");
        if (ChunkLength < 1) throw new ArgumentOutOfRangeException(nameof(ChunkLength), ChunkLength, "chunk length l must be >= 1");
        if (Rank < 1) throw new ArgumentOutOfRangeException(nameof(Rank), Rank, "rank r (landmarks per chunk) must be >= 1");
    }
}

/// <summary>
/// The inputs of one call. Block of L queries, window prefix of P cached positions, Mc cached chunks:
/// q [B, H, L, d] (unscaled); k, v [B, H, P+L, d] (row P + j is position j, j &lt; 0 from the cache);
/// u, vbias [H, d] (r_w_bias, r_r_bias); rel [H, w, d] (R_δ, δ = i − j); kc, vc [B, H, Nc, d] compressed keys and
/// values, cache chunks first, Nc = (Mc + ⌈L/l⌉)·r; relc [H, Nc, d] (Rc_δ); mask [B, P+L] float32 or null.
/// </summary>
public readonly record struct LsCausalInputs(Tensor Q, Tensor K, Tensor V, Tensor U, Tensor VBias, Tensor Rel,
    Tensor KC, Tensor VC, Tensor RelC, Tensor? Mask);

/// <summary>Gradients, shaped like the inputs they belong to; every one is overwritten.</summary>
public readonly record struct LsCausalGradients(Tensor DQ, Tensor DK, Tensor DV, Tensor DU, Tensor DVBias, Tensor DRel,
    Tensor DKC, Tensor DVC, Tensor DRelC);

/// <summary>Sizes of one call, taken from the tensors.</summary>
internal readonly record struct LsCausalGeometry(int B, int H, int L, int P, int D, int W, int Lc, int R, int Mc, float Scale)
{
    public int BlockChunks => (L + Lc - 1) / Lc;
    public int Nc => (Mc + BlockChunks) * R;
    public int Keys => P + L;
    /// <summary>Chunks visible to query i: the cache and the block chunks strictly before i's own.</summary>
    public int VisibleChunks(int i) => Mc + i / Lc;
}

/// <summary>The same values as <see cref="LsCausalInputs"/>, as arrays (mask empty when absent).</summary>
internal sealed record LsCausalData<T>(T[] Q, T[] K, T[] V, T[] U, T[] VBias, T[] Rel, T[] KC, T[] VC, T[] RelC, T[] Mask);

/// <summary>
/// Checks and CPU reference of kernels/ls_causal_attention/ls_causal_attention.cu. Query i attends under one softmax to
///   compressed key (c, k) for chunks c &lt; Mc + ⌊i/l⌋: logit σq_i·K̄_{c,k} + σq_i·Rc_{(Mc+⌊i/l⌋−c)·r−1−k}, and
///   window positions j ∈ [i−w+1, i], j ≥ −P, not padded: logit (σq_i+u)·k_j + (σq_i+v)·R_{i−j}.
/// Padded query rows output zero with lse = 0.
/// </summary>
public static partial class LsCausalAttention
{
    internal static LsCausalGeometry CheckForward(IBackend be, LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        cfg.Validate();
        var q = x.Q;
        Check.On(be, q, "q");
        if (q.Shape.Rank != 4) throw new ArgumentException($"q has shape {q.Shape}; expected [B, H, L, d]", "q");
        int B = q.Shape[0], H = q.Shape[1], L = q.Shape[2], d = q.Shape[3];
        if (L < 1 || d < 1) throw new ArgumentException($"q has shape {q.Shape}; L and d must be >= 1", "q");
        Seq(be, x.K, q, "k");
        var P = x.K.Shape[2] - L;
        if (P < 0) throw new ArgumentException($"k has shape {x.K.Shape}; expected [{B}, {H}, P + {L}, {d}] with P >= 0 cached positions", "k");
        Check.Like(be, x.V, x.K, "v");
        Param(be, x.U, q, "u", H, d);
        Param(be, x.VBias, q, "vbias", H, d);
        Param(be, x.Rel, q, "rel", H, cfg.Window, d);
        Seq(be, x.KC, q, "kc");
        var nc = x.KC.Shape[2];
        var blockChunks = (L + cfg.ChunkLength - 1) / cfg.ChunkLength;
        if (nc % cfg.Rank != 0 || nc / cfg.Rank < blockChunks)
            throw new ArgumentException($"kc has shape {x.KC.Shape}; expected [{B}, {H}, (Mc + {blockChunks})·{cfg.Rank}, {d}]: r = {cfg.Rank} rows per chunk, "
                + $"Mc >= 0 cached chunks, then ⌈L/l⌉ = {blockChunks} block chunks", "kc");
        Check.Like(be, x.VC, x.KC, "vc");
        Param(be, x.RelC, q, "relc", H, nc, d);
        Check.PaddingMask(be, x.Mask, B, P + L, "mask");
        Check.Like(be, o, q, nameof(o));
        Check.On(be, lse, nameof(lse));
        Check.DTypeIs(lse, DType.Float32, nameof(lse));
        Check.Dims(lse, nameof(lse), B, H, L);
        return new LsCausalGeometry(B, H, L, P, d, cfg.Window, cfg.ChunkLength, cfg.Rank, nc / cfg.Rank - blockChunks, 1f / MathF.Sqrt(d));
    }

    internal static LsCausalGeometry CheckBackward(IBackend be, LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse, Tensor dout, in LsCausalGradients g)
    {
        var geo = CheckForward(be, cfg, x, o, lse);
        Check.Like(be, dout, x.Q, nameof(dout));
        Check.Like(be, g.DQ, x.Q, "dq");
        Check.Like(be, g.DK, x.K, "dk");
        Check.Like(be, g.DV, x.K, "dv");
        Check.Like(be, g.DU, x.U, "du");
        Check.Like(be, g.DVBias, x.U, "dvbias");
        Check.Like(be, g.DRel, x.Rel, "drel");
        Check.Like(be, g.DKC, x.KC, "dkc");
        Check.Like(be, g.DVC, x.KC, "dvc");
        Check.Like(be, g.DRelC, x.RelC, "drelc");
        return geo;
    }

    /// <summary>[B, H, any, d] with q's batch, heads, head dim and dtype.</summary>
    static void Seq(IBackend be, Tensor t, Tensor q, string name)
    {
        Check.On(be, t, name);
        Check.DTypeIs(t, q.DType, name);
        if (t.Shape.Rank != 4 || t.Shape[0] != q.Shape[0] || t.Shape[1] != q.Shape[1] || t.Shape[3] != q.Shape[3])
            throw new ArgumentException($"{name} has shape {t.Shape}; expected [{q.Shape[0]}, {q.Shape[1]}, rows, {q.Shape[3]}]", name);
    }

    static void Param(IBackend be, Tensor t, Tensor q, string name, params ReadOnlySpan<int> dims)
    {
        Check.On(be, t, name);
        Check.DTypeIs(t, q.DType, name);
        Check.Dims(t, name, dims);
    }

    static bool Token<T>(T[] mask, LsCausalGeometry g, int b, int j) where T : IFloatingPointIeee754<T> =>
        j >= -g.P && (mask.Length == 0 || mask[b * g.Keys + g.P + j] != T.Zero);

    /// <summary>Query i's keys: (true, n) for compressed row n, (false, j) for window position j.</summary>
    static List<(bool Compressed, int Index)> Keys<T>(T[] mask, LsCausalGeometry g, int b, int i) where T : IFloatingPointIeee754<T>
    {
        var keys = new List<(bool, int)>();
        for (var n = 0; n < g.VisibleChunks(i) * g.R; n++) keys.Add((true, n));
        for (var j = Math.Max(i - g.W + 1, -g.P); j <= i; j++)
            if (Token(mask, g, b, j)) keys.Add((false, j));
        return keys;
    }

    /// <summary>The logit of one key and the two vectors it dots σq with (content row and relative row).</summary>
    static T Logit<T>(LsCausalGeometry g, LsCausalData<T> x, int b, int h, int i, (bool Compressed, int Index) key, T[] qs) where T : IFloatingPointIeee754<T>
    {
        var (krow, rrow) = Rows(g, b, h, i, key);
        var s = T.Zero;
        if (key.Compressed)
            for (var c = 0; c < g.D; c++) s += qs[c] * (x.KC[krow + c] + x.RelC[rrow + c]);
        else
            for (var c = 0; c < g.D; c++) s += (qs[c] + x.U[h * g.D + c]) * x.K[krow + c] + (qs[c] + x.VBias[h * g.D + c]) * x.Rel[rrow + c];
        return s;
    }

    /// <summary>Offsets of the key's content row (in kc or k) and its relative row (in relc or rel).</summary>
    static (long Key, long Rel) Rows(LsCausalGeometry g, int b, int h, int i, (bool Compressed, int Index) key)
    {
        var bh = b * g.H + h;
        if (key.Compressed)
            return (((long)bh * g.Nc + key.Index) * g.D, ((long)h * g.Nc + g.VisibleChunks(i) * g.R - 1 - key.Index) * g.D);
        return (((long)bh * g.Keys + g.P + key.Index) * g.D, ((long)h * g.W + i - key.Index) * g.D);
    }

    internal static void Forward<T>(LsCausalGeometry g, LsCausalData<T> x, T[] o, T[] lse) where T : IFloatingPointIeee754<T>
    {
        var scale = T.CreateChecked(g.Scale);
        var qs = new T[g.D];
        for (var b = 0; b < g.B; b++)
            for (var h = 0; h < g.H; h++)
                for (var i = 0; i < g.L; i++)
                {
                    var bh = b * g.H + h;
                    var qo = ((long)bh * g.L + i) * g.D;
                    Array.Clear(o, (int)qo, g.D);
                    lse[bh * g.L + i] = T.Zero;
                    if (!Token(x.Mask, g, b, i)) continue;
                    for (var c = 0; c < g.D; c++) qs[c] = scale * x.Q[qo + c];
                    var keys = Keys(x.Mask, g, b, i);
                    var s = keys.Select(key => Logit(g, x, b, h, i, key, qs)).ToArray();
                    var m = s.Max()!;
                    var l = T.Zero;
                    foreach (var sj in s) l += T.Exp(sj - m);
                    for (var j = 0; j < keys.Count; j++)
                    {
                        var p = T.Exp(s[j] - m) / l;
                        var (row, _) = Rows(g, b, h, i, keys[j]);
                        var val = keys[j].Compressed ? x.VC : x.V;
                        for (var c = 0; c < g.D; c++) o[qo + c] += p * val[row + c];
                    }
                    lse[bh * g.L + i] = m + T.Log(l);
                }
    }

    /// <summary>Gradients of Σ dout·o; <paramref name="o"/> is the output as stored, probabilities come from lse.</summary>
    internal static void Backward<T>(LsCausalGeometry g, LsCausalData<T> x, T[] o, T[] lse, T[] dout, LsCausalData<T> grad) where T : IFloatingPointIeee754<T>
    {
        foreach (var a in new[] { grad.Q, grad.K, grad.V, grad.U, grad.VBias, grad.Rel, grad.KC, grad.VC, grad.RelC }) Array.Clear(a);
        var scale = T.CreateChecked(g.Scale);
        var qs = new T[g.D];
        for (var b = 0; b < g.B; b++)
            for (var h = 0; h < g.H; h++)
                for (var i = 0; i < g.L; i++)
                {
                    if (!Token(x.Mask, g, b, i)) continue;
                    var bh = b * g.H + h;
                    var qo = ((long)bh * g.L + i) * g.D;
                    for (var c = 0; c < g.D; c++) qs[c] = scale * x.Q[qo + c];
                    var dd = T.Zero;
                    for (var c = 0; c < g.D; c++) dd += dout[qo + c] * o[qo + c];
                    foreach (var key in Keys(x.Mask, g, b, i))
                    {
                        var (krow, rrow) = Rows(g, b, h, i, key);
                        var val = key.Compressed ? x.VC : x.V;
                        var dp = T.Zero;
                        for (var c = 0; c < g.D; c++) dp += dout[qo + c] * val[krow + c];
                        var p = T.Exp(Logit(g, x, b, h, i, key, qs) - lse[bh * g.L + i]);
                        var ds = p * (dp - dd);
                        for (var c = 0; c < g.D; c++)
                        {
                            var hc = h * g.D + c;
                            if (key.Compressed)
                            {
                                grad.Q[qo + c] += scale * ds * (x.KC[krow + c] + x.RelC[rrow + c]);
                                grad.KC[krow + c] += ds * qs[c];
                                grad.RelC[rrow + c] += ds * qs[c];
                                grad.VC[krow + c] += p * dout[qo + c];
                            }
                            else
                            {
                                grad.Q[qo + c] += scale * ds * (x.K[krow + c] + x.Rel[rrow + c]);
                                grad.K[krow + c] += ds * (qs[c] + x.U[hc]);
                                grad.Rel[rrow + c] += ds * (qs[c] + x.VBias[hc]);
                                grad.U[hc] += ds * x.K[krow + c];
                                grad.VBias[hc] += ds * x.Rel[rrow + c];
                                grad.V[krow + c] += p * dout[qo + c];
                            }
                        }
                    }
                }
    }
}
