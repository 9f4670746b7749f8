using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Sizes of one projection call: scores [B, n, H·r], keys/values [B, H, n, d], landmarks [B, H, r, d].</summary>
internal readonly record struct LsProjectionGeometry(int B, int H, int N, int D, int R);

/// <summary>
/// Checks and CPU reference of kernels/ls_projection/: P = softmax over the sequence of the scores (padding
/// excluded; a column without tokens gives P = 0), K̄ = P·K, V̄ = P·V per head (reference section 1.3, before LN_B).
/// The forward also returns each column's max and sum, from which the backward recomputes P.
/// </summary>
public static partial class LsProjection
{
    internal static LsProjectionGeometry CheckForward(IBackend be, Tensor scores, Tensor k, Tensor v, Tensor? mask, Tensor kbar, Tensor vbar, Tensor colmax, Tensor colsum)
    {
        Check.On(be, k, nameof(k));
        if (k.Shape.Rank != 4) throw new ArgumentException($"k has shape {k.Shape}; expected [B, H, n, d]", nameof(k));
        int B = k.Shape[0], H = k.Shape[1], n = k.Shape[2], d = k.Shape[3];
        Check.Like(be, v, k, nameof(v));
        Check.On(be, kbar, nameof(kbar));
        Check.DTypeIs(kbar, k.DType, nameof(kbar));
        if (kbar.Shape.Rank != 4 || kbar.Shape[0] != B || kbar.Shape[1] != H || kbar.Shape[3] != d || kbar.Shape[2] < 1)
            throw new ArgumentException($"kbar has shape {kbar.Shape}; expected [{B}, {H}, r, {d}] with r >= 1", nameof(kbar));
        var r = kbar.Shape[2];
        Check.Like(be, vbar, kbar, nameof(vbar));
        Check.On(be, scores, nameof(scores));
        Check.DTypeIs(scores, k.DType, nameof(scores));
        if (scores.Shape.Rank != 3 || scores.Shape[0] != B || scores.Shape[1] != n || scores.Shape[2] != H * r)
            throw new ArgumentException($"scores has shape {scores.Shape}; expected [{B}, {n}, {H * r}] (H·r = {H}·{r})", nameof(scores));
        Check.PaddingMask(be, mask, B, n, nameof(mask));
        CheckStats(be, colmax, B, H * r, nameof(colmax));
        CheckStats(be, colsum, B, H * r, nameof(colsum));
        return new LsProjectionGeometry(B, H, n, d, r);
    }

    static void CheckLandmarks32(IBackend be, Tensor? t, LsProjectionGeometry g)
    {
        if (t is null) return;
        Check.On(be, t, "landmarks32");
        Check.DTypeIs(t, DType.Float32, "landmarks32");
        if (t.Shape.Rank != 5 || t.Shape[0] != 2 || t.Shape[1] != g.B || t.Shape[2] != g.H || t.Shape[3] != g.R || t.Shape[4] != g.D)
            throw new ArgumentException($"landmarks32 has shape {t.Shape}; expected [2, {g.B}, {g.H}, {g.R}, {g.D}] (K̄ then V̄)", "landmarks32");
    }

    static void CheckStats(IBackend be, Tensor t, int b, int hr, string name)
    {
        Check.On(be, t, name);
        Check.DTypeIs(t, DType.Float32, name);
        if (t.Shape.Rank != 2 || t.Shape[0] != b || t.Shape[1] != hr)
            throw new ArgumentException($"{name} has shape {t.Shape}; expected [{b}, {hr}]", name);
    }

    internal static LsProjectionGeometry CheckBackward(IBackend be, Tensor scores, Tensor k, Tensor v, Tensor? mask, Tensor colmax, Tensor colsum,
        Tensor dkbar, Tensor dvbar, Tensor dscores, Tensor dk, Tensor dv)
    {
        var g = CheckForward(be, scores, k, v, mask, dkbar, dvbar, colmax, colsum);
        Check.Like(be, dscores, scores, nameof(dscores));
        Check.Like(be, dk, k, nameof(dk));
        Check.Like(be, dv, v, nameof(dv));
        return g;
    }

    static bool Token<T>(T[] mask, LsProjectionGeometry g, int b, int t) where T : IFloatingPointIeee754<T> =>
        mask.Length == 0 || mask[b * g.N + t] != T.Zero;

    /// <summary>Max and sum of exp(s − max) over the tokens of one column: what the forward saves for the backward.
    /// A column without tokens gives (−∞, 0).</summary>
    internal static (T Max, T Sum) ColumnStats<T>(LsProjectionGeometry g, T[] s, T[] mask, int b, int col) where T : IFloatingPointIeee754<T>
    {
        int hr = g.H * g.R;
        var m = T.NegativeInfinity;
        for (var t = 0; t < g.N; t++) if (Token(mask, g, b, t)) m = T.Max(m, s[((long)b * g.N + t) * hr + col]);
        var z = T.Zero;
        if (!T.IsNegativeInfinity(m))
            for (var t = 0; t < g.N; t++) if (Token(mask, g, b, t)) z += T.Exp(s[((long)b * g.N + t) * hr + col] - m);
        return (m, z);
    }

    /// <summary>P[b, h, k, t] for all t (zero for padding and for columns without tokens).</summary>
    static T[] Probabilities<T>(LsProjectionGeometry g, T[] s, T[] mask, int b, int col) where T : IFloatingPointIeee754<T>
    {
        int hr = g.H * g.R;
        var (m, z) = ColumnStats(g, s, mask, b, col);
        var p = new T[g.N];
        if (T.IsNegativeInfinity(m)) return p;
        for (var t = 0; t < g.N; t++) if (Token(mask, g, b, t)) p[t] = T.Exp(s[((long)b * g.N + t) * hr + col] - m) / z;
        return p;
    }

    internal static void Forward<T>(LsProjectionGeometry g, T[] s, T[] k, T[] v, T[] mask, T[] kbar, T[] vbar) where T : IFloatingPointIeee754<T>
    {
        for (var b = 0; b < g.B; b++)
            for (var h = 0; h < g.H; h++)
                for (var r = 0; r < g.R; r++)
                {
                    var p = Probabilities(g, s, mask, b, h * g.R + r);
                    long lo = (((long)b * g.H + h) * g.R + r) * g.D, so = ((long)b * g.H + h) * g.N * g.D;
                    for (var c = 0; c < g.D; c++)
                    {
                        T ak = T.Zero, av = T.Zero;
                        for (var t = 0; t < g.N; t++) { ak += p[t] * k[so + (long)t * g.D + c]; av += p[t] * v[so + (long)t * g.D + c]; }
                        kbar[lo + c] = ak;
                        vbar[lo + c] = av;
                    }
                }
    }

    /// <summary>dS (softmax backward over the sequence), dK = Pᵀ·dK̄, dV = Pᵀ·dV̄ (overwritten).</summary>
    internal static void Backward<T>(LsProjectionGeometry g, T[] s, T[] k, T[] v, T[] mask, T[] dkbar, T[] dvbar, T[] ds, T[] dk, T[] dv)
        where T : IFloatingPointIeee754<T>
    {
        Array.Clear(ds); Array.Clear(dk); Array.Clear(dv);
        int hr = g.H * g.R;
        var dp = new T[g.N];
        for (var b = 0; b < g.B; b++)
            for (var h = 0; h < g.H; h++)
                for (var r = 0; r < g.R; r++)
                {
                    var p = Probabilities(g, s, mask, b, h * g.R + r);
                    long lo = (((long)b * g.H + h) * g.R + r) * g.D, so = ((long)b * g.H + h) * g.N * g.D;
                    var dot = T.Zero;
                    for (var t = 0; t < g.N; t++)
                    {
                        var acc = T.Zero;
                        for (var c = 0; c < g.D; c++) acc += dkbar[lo + c] * k[so + (long)t * g.D + c] + dvbar[lo + c] * v[so + (long)t * g.D + c];
                        dp[t] = acc;
                        dot += p[t] * acc;
                        for (var c = 0; c < g.D; c++)
                        {
                            dk[so + (long)t * g.D + c] += p[t] * dkbar[lo + c];
                            dv[so + (long)t * g.D + c] += p[t] * dvbar[lo + c];
                        }
                    }
                    for (var t = 0; t < g.N; t++) ds[((long)b * g.N + t) * hr + h * g.R + r] = p[t] * (dp[t] - dot);
                }
    }
}
