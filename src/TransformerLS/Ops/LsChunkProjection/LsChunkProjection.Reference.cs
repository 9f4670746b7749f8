using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Sizes: scores [B, T, H·r], x [B, H, T, d], y [B, H, ⌈T/l⌉·r, d].</summary>
internal readonly record struct LsChunkProjectionGeometry(int B, int H, int T, int D, int R, int Lc)
{
    public int Chunks => (T + Lc - 1) / Lc;
}

/// <summary>
/// Checks and CPU reference of kernels/ls_chunk_projection/, the causal dynamic projection (reference section
/// 3.3): for every chunk of l positions, head h and rank k, P = softmax over the chunk's tokens of
/// scores[:, h·r + k] and y[c·r + k] = Σ_t P_t·x_t. A chunk without tokens gives zero rows. The last chunk may
/// be short. Used for the block path (x = split_heads(h·Wk)) and the cache path (x = split_heads(c), Wk after).
/// </summary>
public static partial class LsChunkProjection
{
    internal static LsChunkProjectionGeometry CheckForward(IBackend be, int chunk, Tensor scores, Tensor x, Tensor? mask, Tensor y)
    {
        if (chunk < 1) throw new ArgumentOutOfRangeException(nameof(chunk), chunk, "chunk length l must be >= 1");
        Check.On(be, x, nameof(x));
        if (x.Shape.Rank != 4) throw new ArgumentException($"x has shape {x.Shape}; expected [B, H, T, d]", nameof(x));
        int B = x.Shape[0], H = x.Shape[1], T = x.Shape[2], d = x.Shape[3];
        Check.On(be, scores, nameof(scores));
        Check.DTypeIs(scores, x.DType, nameof(scores));
        if (scores.Shape.Rank != 3 || scores.Shape[0] != B || scores.Shape[1] != T || scores.Shape[2] % H != 0 || scores.Shape[2] == 0)
            throw new ArgumentException($"scores has shape {scores.Shape}; expected [{B}, {T}, {H}·r]", nameof(scores));
        var g = new LsChunkProjectionGeometry(B, H, T, d, scores.Shape[2] / H, chunk);
        Check.PaddingMask(be, mask, B, T, nameof(mask));
        Check.On(be, y, nameof(y));
        Check.DTypeIs(y, x.DType, nameof(y));
        Check.Dims(y, nameof(y), B, H, g.Chunks * g.R, d);
        return g;
    }

    internal static LsChunkProjectionGeometry CheckBackward(IBackend be, int chunk, Tensor scores, Tensor x, Tensor? mask, Tensor dy, Tensor dscores, Tensor dx)
    {
        var g = CheckForward(be, chunk, scores, x, mask, dy);
        Check.Like(be, dscores, scores, nameof(dscores));
        Check.Like(be, dx, x, nameof(dx));
        return g;
    }

    static bool Token<T>(T[] mask, LsChunkProjectionGeometry g, int b, int t) where T : IFloatingPointIeee754<T> =>
        mask.Length == 0 || mask[b * g.T + t] != T.Zero;

    /// <summary>P over chunk c for column (h, k); all zero when the chunk has no token.</summary>
    static T[] Probabilities<T>(LsChunkProjectionGeometry g, T[] s, T[] mask, int b, int h, int c, int k) where T : IFloatingPointIeee754<T>
    {
        int t0 = c * g.Lc, n = Math.Min(g.Lc, g.T - t0), col = h * g.R + k, hr = g.H * g.R;
        var p = new T[n];
        var m = T.NegativeInfinity;
        for (var t = 0; t < n; t++) if (Token(mask, g, b, t0 + t)) m = T.Max(m, s[((long)b * g.T + t0 + t) * hr + col]);
        if (T.IsNegativeInfinity(m)) return p;
        var sum = T.Zero;
        for (var t = 0; t < n; t++)
            if (Token(mask, g, b, t0 + t)) sum += p[t] = T.Exp(s[((long)b * g.T + t0 + t) * hr + col] - m);
        for (var t = 0; t < n; t++) p[t] /= sum;
        return p;
    }

    internal static void Forward<T>(LsChunkProjectionGeometry g, T[] s, T[] x, T[] mask, T[] y) where T : IFloatingPointIeee754<T>
    {
        Array.Clear(y);
        for (var b = 0; b < g.B; b++)
            for (var h = 0; h < g.H; h++)
                for (var c = 0; c < g.Chunks; c++)
                    for (var k = 0; k < g.R; k++)
                    {
                        var p = Probabilities(g, s, mask, b, h, c, k);
                        var yo = (((long)b * g.H + h) * g.Chunks * g.R + c * g.R + k) * g.D;
                        for (var t = 0; t < p.Length; t++)
                        {
                            var xo = (((long)b * g.H + h) * g.T + c * g.Lc + t) * g.D;
                            for (var e = 0; e < g.D; e++) y[yo + e] += p[t] * x[xo + e];
                        }
                    }
    }

    /// <summary>ds = P∘(dP − Σ P·dP), dP_t = dy·x_t; dx_t = Σ_k P_t·dy_k. Overwrites, or adds with <paramref name="accumulate"/>.</summary>
    internal static void Backward<T>(LsChunkProjectionGeometry g, T[] s, T[] x, T[] mask, T[] dy, T[] ds, T[] dx, bool accumulate) where T : IFloatingPointIeee754<T>
    {
        if (!accumulate) { Array.Clear(ds); Array.Clear(dx); }
        int hr = g.H * g.R;
        for (var b = 0; b < g.B; b++)
            for (var h = 0; h < g.H; h++)
                for (var c = 0; c < g.Chunks; c++)
                    for (var k = 0; k < g.R; k++)
                    {
                        var p = Probabilities(g, s, mask, b, h, c, k);
                        var yo = (((long)b * g.H + h) * g.Chunks * g.R + c * g.R + k) * g.D;
                        var dp = new T[p.Length];
                        var dot = T.Zero;
                        for (var t = 0; t < p.Length; t++)
                        {
                            var xo = (((long)b * g.H + h) * g.T + c * g.Lc + t) * g.D;
                            for (var e = 0; e < g.D; e++) { dp[t] += dy[yo + e] * x[xo + e]; dx[xo + e] += p[t] * dy[yo + e]; }
                            dot += p[t] * dp[t];
                        }
                        for (var t = 0; t < p.Length; t++) ds[((long)b * g.T + c * g.Lc + t) * hr + h * g.R + k] += p[t] * (dp[t] - dot);
                    }
    }
}
