using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

internal readonly record struct LsClsGeometry(int B, int H, int N, int D, float Scale);

/// <summary>
/// Checks and CPU reference of kernels/ls_cls_attention/ (reference section 1.6): the CLS query q attends to its
/// own key k and to the token outputs C_t (keys and values at once), padded tokens excluded:
/// o = softmax([σq·k, σq·C_t])·[v; C_t]. q, k, v, o: [B, H, d]; c: [B, H, n, d]; lse: [B, H] float32.
/// </summary>
public static partial class LsClsAttention
{
    internal static LsClsGeometry CheckForward(IBackend be, Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse)
    {
        Check.On(be, c, nameof(c));
        if (c.Shape.Rank != 4) throw new ArgumentException($"c has shape {c.Shape}; expected [B, H, n, d] (the tokens' attention outputs)", nameof(c));
        int B = c.Shape[0], H = c.Shape[1], n = c.Shape[2], d = c.Shape[3];
        if (d < 1) throw new ArgumentException($"c has shape {c.Shape}; head dim d must be >= 1", nameof(c));
        Check.On(be, q, nameof(q));
        Check.DTypeIs(q, c.DType, nameof(q));
        Check.Dims(q, nameof(q), B, H, d);
        Check.Like(be, k, q, nameof(k));
        Check.Like(be, v, q, nameof(v));
        Check.Like(be, o, q, nameof(o));
        Check.PaddingMask(be, mask, B, n, nameof(mask));
        Check.On(be, lse, nameof(lse));
        Check.DTypeIs(lse, DType.Float32, nameof(lse));
        Check.Dims(lse, nameof(lse), B, H);
        return new LsClsGeometry(B, H, n, d, 1f / MathF.Sqrt(d));
    }

    internal static LsClsGeometry CheckBackward(IBackend be, Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse, Tensor dout,
        Tensor dq, Tensor dk, Tensor dv, Tensor dc)
    {
        var g = CheckForward(be, q, k, v, c, mask, o, lse);
        Check.Like(be, dout, q, nameof(dout));
        Check.Like(be, dq, q, nameof(dq));
        Check.Like(be, dk, q, nameof(dk));
        Check.Like(be, dv, q, nameof(dv));
        Check.Like(be, dc, c, nameof(dc));
        return g;
    }

    /// <summary>Logits and the offsets of their key/value rows: index 0 is the CLS key (in k/v), then the real tokens (in c).</summary>
    static (T[] S, long[] Rows) Logits<T>(LsClsGeometry g, T[] q, T[] k, T[] c, T[] mask, int b, int h) where T : IFloatingPointIeee754<T>
    {
        var bh = b * g.H + h;
        var scale = T.CreateChecked(g.Scale);
        var rows = new List<long> { (long)bh * g.D };
        for (var t = 0; t < g.N; t++) if (mask.Length == 0 || mask[b * g.N + t] != T.Zero) rows.Add(((long)bh * g.N + t) * g.D);
        var s = new T[rows.Count];
        for (var j = 0; j < s.Length; j++)
            for (var e = 0; e < g.D; e++) s[j] += scale * q[(long)bh * g.D + e] * (j == 0 ? k : c)[rows[j] + e];
        return (s, rows.ToArray());
    }

    internal static void Forward<T>(LsClsGeometry g, T[] q, T[] k, T[] v, T[] c, T[] mask, T[] o, T[] lse) where T : IFloatingPointIeee754<T>
    {
        for (var b = 0; b < g.B; b++)
            for (var h = 0; h < g.H; h++)
            {
                var bh = b * g.H + h;
                var (s, rows) = Logits(g, q, k, c, mask, b, h);
                var m = s.Max()!;
                var l = T.Zero;
                foreach (var x in s) l += T.Exp(x - m);
                for (var e = 0; e < g.D; e++) o[(long)bh * g.D + e] = T.Zero;
                for (var j = 0; j < s.Length; j++)
                {
                    var p = T.Exp(s[j] - m) / l;
                    for (var e = 0; e < g.D; e++) o[(long)bh * g.D + e] += p * (j == 0 ? v : c)[rows[j] + e];
                }
                lse[bh] = m + T.Log(l);
            }
    }

    /// <summary>Gradients of Σ dout·o; dc is overwritten, or added to with <paramref name="accumulate"/> (the tokens' own gradient).</summary>
    internal static void Backward<T>(LsClsGeometry g, T[] q, T[] k, T[] v, T[] c, T[] mask, T[] o, T[] lse, T[] dout,
        T[] dq, T[] dk, T[] dv, T[] dc, bool accumulate) where T : IFloatingPointIeee754<T>
    {
        Array.Clear(dq); Array.Clear(dk); Array.Clear(dv);
        if (!accumulate) Array.Clear(dc);
        var scale = T.CreateChecked(g.Scale);
        for (var b = 0; b < g.B; b++)
            for (var h = 0; h < g.H; h++)
            {
                var bh = b * g.H + h;
                long at = (long)bh * g.D;
                var (s, rows) = Logits(g, q, k, c, mask, b, h);
                var dd = T.Zero;
                for (var e = 0; e < g.D; e++) dd += dout[at + e] * o[at + e];
                for (var j = 0; j < s.Length; j++)
                {
                    var (key, val) = j == 0 ? (k, v) : (c, c);
                    var p = T.Exp(s[j] - lse[bh]);
                    var dp = T.Zero;
                    for (var e = 0; e < g.D; e++) dp += dout[at + e] * val[rows[j] + e];
                    var ds = p * (dp - dd);
                    for (var e = 0; e < g.D; e++)
                    {
                        dq[at + e] += scale * ds * key[rows[j] + e];
                        if (j == 0) { dk[at + e] += ds * scale * q[at + e]; dv[at + e] += p * dout[at + e]; }
                        else dc[rows[j] + e] += ds * scale * q[at + e] + p * dout[at + e];
                    }
                }
            }
    }
}
