using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Bidirectional LS attention settings: segment window w and landmark count r (reference section 1).</summary>
public sealed record LsAttentionConfig(int Window, int Rank)
{
    /// <summary>Keys each side of a segment: e = max(⌊w/2⌋, 1).</summary>
    public int Extension => Math.Max(Window / 2, 1);

    public void Validate()
    {
        if (Window < 1) throw new ArgumentOutOfRangeException(nameof(Window), Window, "window w must be >= 1");
        if (Rank < 1) throw new ArgumentOutOfRangeException(nameof(Rank), Rank, "rank r (landmarks per head) must be >= 1");
    }
}

/// <summary>
/// Sizes of one call, taken from the tensors: k is [B, H, n, d], the landmarks [B, H, r, d]; q (and o, dout, dq) is
/// [B, H, n, d] or, with <paramref name="TokenMajor"/>, [B, n, H·d] (the heads still merged, as a Linear writes them).
/// </summary>
internal readonly record struct LsAttentionGeometry(int B, int H, int N, int D, int W, int R, int E, float Scale, bool TokenMajor = false)
{
    public int Segments => (N + W - 1) / W;

    /// <summary>Elements between consecutive tokens of q, o, dout, dq.</summary>
    public int QLd => TokenMajor ? H * D : D;

    /// <summary>Element offset of token i of head (b, h) in q, o, dout, dq.</summary>
    public long QOffset(int b, int h, int i) => TokenMajor ? ((long)b * N + i) * H * D + (long)h * D : (((long)b * H + h) * N + i) * D;
}

/// <summary>
/// Checks and CPU reference of kernels/ls_attention/ls_attention.cu. Query i of segment s = ⌊i/w⌋ attends, under one
/// softmax, to the r landmarks of its head and to window positions [s·w − e, (s+1)·w + e) that exist and are
/// not padding; padded query rows output zero. n need not be a multiple of w (positions ≥ n count as padding).
/// </summary>
public static partial class LsAttention
{
    internal static LsAttentionGeometry CheckForward(IBackend be, LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar,
        Tensor? mask, Tensor o, Tensor lse)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        cfg.Validate();
        Check.On(be, q, nameof(q));
        Check.On(be, k, nameof(k));
        if (k.Shape.Rank != 4) throw new ArgumentException($"k has shape {k.Shape}; expected [B, H, n, d]", nameof(k));
        int B = k.Shape[0], H = k.Shape[1], n = k.Shape[2], d = k.Shape[3];
        if (d < 1) throw new ArgumentException($"k has shape {k.Shape}; head dim d must be >= 1", nameof(k));
        // q: [B, H, n, d] like k, or token-major [B, n, H·d] (read and written in place of a split-heads copy).
        var tokenMajor = q.Shape.Rank == 3;
        if (tokenMajor ? q.Shape[0] != B || q.Shape[1] != n || q.Shape[2] != (long)H * d : q.Shape != k.Shape)
            throw new ArgumentException($"q has shape {q.Shape}; expected [{B}, {H}, {n}, {d}] or [{B}, {n}, {(long)H * d}] for k of shape {k.Shape}", nameof(q));
        Check.DTypeIs(k, q.DType, nameof(k));
        Check.Like(be, v, k, nameof(v));
        Check.Like(be, o, q, nameof(o));
        Check.On(be, kbar, nameof(kbar));
        Check.DTypeIs(kbar, q.DType, nameof(kbar));
        if (kbar.Shape.Rank != 4 || kbar.Shape[0] != B || kbar.Shape[1] != H || kbar.Shape[2] != cfg.Rank || kbar.Shape[3] != d)
            throw new ArgumentException($"kbar has shape {kbar.Shape}; expected [{B}, {H}, {cfg.Rank}, {d}] (r = {cfg.Rank})", nameof(kbar));
        Check.Like(be, vbar, kbar, nameof(vbar));
        Check.PaddingMask(be, mask, B, n, nameof(mask));
        Check.On(be, lse, nameof(lse));
        Check.DTypeIs(lse, DType.Float32, nameof(lse));
        if (lse.Shape.Rank != 3 || lse.Shape[0] != B || lse.Shape[1] != H || lse.Shape[2] != n)
            throw new ArgumentException($"lse has shape {lse.Shape}; expected [{B}, {H}, {n}]", nameof(lse));
        return new LsAttentionGeometry(B, H, n, d, cfg.Window, cfg.Rank, cfg.Extension, 1f / MathF.Sqrt(d), tokenMajor);
    }

    internal static LsAttentionGeometry CheckBackward(IBackend be, LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask,
        Tensor o, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv, Tensor dkbar, Tensor dvbar)
    {
        var g = CheckForward(be, cfg, q, k, v, kbar, vbar, mask, o, lse);
        Check.Like(be, dout, q, nameof(dout));
        Check.Like(be, dq, q, nameof(dq));
        Check.Like(be, dk, k, nameof(dk));
        Check.Like(be, dv, k, nameof(dv));
        Check.Like(be, dkbar, kbar, nameof(dkbar));
        Check.Like(be, dvbar, kbar, nameof(dvbar));
        return g;
    }

    static bool Token<T>(ReadOnlySpan<T> mask, LsAttentionGeometry g, int b, int j) where T : IFloatingPointIeee754<T> =>
        j >= 0 && j < g.N && (mask.IsEmpty || mask[b * g.N + j] != T.Zero);

    /// <summary>Key j of query i's list: landmarks first (offset into kbar), then window positions (offset into k).</summary>
    static IEnumerable<(bool Landmark, int Index)> Keys<T>(T[] mask, LsAttentionGeometry g, int b, int i) where T : IFloatingPointIeee754<T>
    {
        for (var r = 0; r < g.R; r++) yield return (true, r);
        var s = i / g.W;
        for (var j = s * g.W - g.E; j < (s + 1) * g.W + g.E; j++)
            if (Token<T>(mask, g, b, j)) yield return (false, j);
    }

    /// <summary>o and lse (lse = 0 and o = 0 on padded query rows).</summary>
    internal static void Forward<T>(LsAttentionGeometry g, T[] q, T[] k, T[] v, T[] kbar, T[] vbar, T[] mask, T[] o, T[] lse)
        where T : IFloatingPointIeee754<T>
    {
        var scale = T.CreateChecked(g.Scale);
        var qs = new T[g.D];
        for (var b = 0; b < g.B; b++)
            for (var h = 0; h < g.H; h++)
            {
                var bh = b * g.H + h;
                for (var i = 0; i < g.N; i++)
                {
                    var qo = g.QOffset(b, h, i);
                    if (!Token<T>(mask, g, b, i))
                    {
                        Array.Clear(o, (int)qo, g.D);
                        lse[bh * g.N + i] = T.Zero;
                        continue;
                    }
                    for (var c = 0; c < g.D; c++) qs[c] = scale * q[qo + c];
                    var keys = Keys(mask, g, b, i).ToArray();
                    var s = new T[keys.Length];
                    var m = T.NegativeInfinity;
                    for (var j = 0; j < keys.Length; j++)
                    {
                        var (kv, off) = Row(g, keys[j], bh, k, kbar);
                        var dot = T.Zero;
                        for (var c = 0; c < g.D; c++) dot += qs[c] * kv[off + c];
                        s[j] = dot;
                        m = T.Max(m, dot);
                    }
                    var l = T.Zero;
                    for (var j = 0; j < keys.Length; j++) l += T.Exp(s[j] - m);
                    for (var c = 0; c < g.D; c++) o[qo + c] = T.Zero;
                    for (var j = 0; j < keys.Length; j++)
                    {
                        var p = T.Exp(s[j] - m) / l;
                        var (vv, off) = Row(g, keys[j], bh, v, vbar);
                        for (var c = 0; c < g.D; c++) o[qo + c] += p * vv[off + c];
                    }
                    lse[bh * g.N + i] = m + T.Log(l);
                }
            }
    }

    static (T[] Data, long Offset) Row<T>(LsAttentionGeometry g, (bool Landmark, int Index) key, int bh, T[] seq, T[] landmarks) =>
        key.Landmark ? (landmarks, ((long)bh * g.R + key.Index) * g.D) : (seq, ((long)bh * g.N + key.Index) * g.D);

    /// <summary>
    /// Gradients of Σ dout·o. <paramref name="o"/> is the forward output as stored (it enters through D_i = dO_i·O_i,
    /// as in the kernel); probabilities are recomputed from lse.
    /// </summary>
    internal static void Backward<T>(LsAttentionGeometry g, T[] q, T[] k, T[] v, T[] kbar, T[] vbar, T[] mask, T[] o, T[] lse, T[] dout,
        T[] dq, T[] dk, T[] dv, T[] dkbar, T[] dvbar) where T : IFloatingPointIeee754<T>
    {
        var scale = T.CreateChecked(g.Scale);
        Array.Clear(dq); Array.Clear(dk); Array.Clear(dv); Array.Clear(dkbar); Array.Clear(dvbar);
        var qs = new T[g.D];
        for (var b = 0; b < g.B; b++)
            for (var h = 0; h < g.H; h++)
            {
                var bh = b * g.H + h;
                for (var i = 0; i < g.N; i++)
                {
                    if (!Token<T>(mask, g, b, i)) continue;
                    var qo = g.QOffset(b, h, i);
                    for (var c = 0; c < g.D; c++) qs[c] = scale * q[qo + c];
                    var dd = T.Zero;
                    for (var c = 0; c < g.D; c++) dd += dout[qo + c] * o[qo + c];
                    foreach (var key in Keys(mask, g, b, i))
                    {
                        var (kv, koff) = Row(g, key, bh, k, kbar);
                        var (vv, voff) = Row(g, key, bh, v, vbar);
                        T dot = T.Zero, dp = T.Zero;
                        for (var c = 0; c < g.D; c++) { dot += qs[c] * kv[koff + c]; dp += dout[qo + c] * vv[voff + c]; }
                        var p = T.Exp(dot - lse[bh * g.N + i]);
                        var ds = p * (dp - dd);
                        var (gk, gv) = key.Landmark ? (dkbar, dvbar) : (dk, dv);
                        for (var c = 0; c < g.D; c++)
                        {
                            dq[qo + c] += scale * ds * kv[koff + c];
                            gk[koff + c] += ds * qs[c];
                            gv[voff + c] += p * dout[qo + c];
                        }
                    }
                }
            }
    }
}
