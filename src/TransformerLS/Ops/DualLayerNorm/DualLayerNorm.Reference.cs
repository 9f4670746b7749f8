using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>S stacked inputs (1: one tensor, 2: K and V) of B·T tokens with D = H·d channels.</summary>
internal readonly record struct DualLayerNormGeometry(int S, int B, int H, int T, int D, bool TokenMajor)
{
    public int Channels => H * D;
    public int Rows => B * T;
}

/// <summary>
/// Checks and CPU reference of kernels/dual_layer_norm/: LayerNorm over all H·d channels of each token, applied
/// to K and (optionally) V with one set of weights. x is token-major [B, T, H·d] or head-split [B, H, T, d];
/// y is head-split [B, H, T, d]; mean and rstd are [S, B, T] float32; gamma and beta [H·d] float32.
/// </summary>
public static partial class DualLayerNorm
{
    internal static DualLayerNormGeometry CheckForward(IBackend be, Tensor xk, Tensor? xv, Tensor gamma, Tensor beta, Tensor yk, Tensor? yv,
        Tensor mean, Tensor rstd, float eps)
    {
        Check.On(be, yk, nameof(yk));
        if (yk.Shape.Rank != 4) throw new ArgumentException($"yk has shape {yk.Shape}; expected [B, H, T, d]", nameof(yk));
        int B = yk.Shape[0], H = yk.Shape[1], T = yk.Shape[2], d = yk.Shape[3];
        if (H * d == 0) throw new ArgumentException($"yk has shape {yk.Shape}: no channels to normalize", nameof(yk));
        Check.On(be, xk, nameof(xk));
        Check.DTypeIs(xk, yk.DType, nameof(xk));
        var tokenMajor = xk.Shape.Rank == 3;
        if (!(tokenMajor ? xk.Shape.Dims.SequenceEqual([B, T, H * d]) : xk.Shape.Dims.SequenceEqual([B, H, T, d])))
            throw new ArgumentException($"xk has shape {xk.Shape}; expected [{B}, {T}, {H * d}] (token-major) or [{B}, {H}, {T}, {d}] (head-split)", nameof(xk));
        if ((xv is null) != (yv is null)) throw new ArgumentException("xv and yv must both be given or both be null", nameof(xv));
        if (xv is not null) { Check.Like(be, xv, xk, nameof(xv)); Check.Like(be, yv!, yk, nameof(yv)); }
        var s = xv is null ? 1 : 2;
        Check.Vector(be, gamma, H * d, DType.Float32, nameof(gamma));
        Check.Vector(be, beta, H * d, DType.Float32, nameof(beta));
        Stats(be, mean, s, B, T, nameof(mean));
        Stats(be, rstd, s, B, T, nameof(rstd));
        Check.Positive(eps, nameof(eps));
        return new DualLayerNormGeometry(s, B, H, T, d, tokenMajor);
    }

    internal static DualLayerNormGeometry CheckBackward(IBackend be, Tensor dyk, Tensor? dyv, Tensor xk, Tensor? xv, Tensor gamma, Tensor mean, Tensor rstd,
        Tensor dxk, Tensor? dxv, Tensor dgamma, Tensor dbeta)
    {
        var g = CheckForward(be, xk, xv, gamma, dgamma, dyk, dyv, mean, rstd, 1f);
        Check.Like(be, dxk, xk, nameof(dxk));
        if ((xv is null) != (dxv is null)) throw new ArgumentException("dxv must be given exactly when xv is", nameof(dxv));
        if (dxv is not null) Check.Like(be, dxv, xk, nameof(dxv));
        Check.Like(be, dbeta, dgamma, nameof(dbeta));
        return g;
    }

    static void Stats(IBackend be, Tensor t, int s, int b, int n, string name)
    {
        Check.On(be, t, name);
        Check.DTypeIs(t, DType.Float32, name);
        Check.Dims(t, name, s, b, n);
    }

    /// <summary>Index in x of (token row, channel), and in the head-split layout.</summary>
    static long In(DualLayerNormGeometry g, int row, int col) => g.TokenMajor ? (long)row * g.Channels + col : Split(g, row, col);
    static long Split(DualLayerNormGeometry g, int row, int col) => (((long)(row / g.T) * g.H + col / g.D) * g.T + row % g.T) * g.D + col % g.D;

    static T[] Gather<T>(DualLayerNormGeometry g, T[] x, bool inputLayout)
    {
        var rows = new T[(long)g.Rows * g.Channels];
        for (var r = 0; r < g.Rows; r++)
            for (var c = 0; c < g.Channels; c++) rows[(long)r * g.Channels + c] = x[inputLayout ? In(g, r, c) : Split(g, r, c)];
        return rows;
    }

    static void Scatter<T>(DualLayerNormGeometry g, T[] rows, T[] y, bool inputLayout)
    {
        for (var r = 0; r < g.Rows; r++)
            for (var c = 0; c < g.Channels; c++) y[inputLayout ? In(g, r, c) : Split(g, r, c)] = rows[(long)r * g.Channels + c];
    }

    /// <summary>One stacked input: y (head-split) and its rows' statistics.</summary>
    internal static void Forward<T>(DualLayerNormGeometry g, T[] x, T[] gamma, T[] beta, T[] y, Span<T> mean, Span<T> rstd, T eps) where T : IFloatingPointIeee754<T>
    {
        var rows = Gather(g, x, true);
        var outRows = new T[rows.Length];
        LayerNorm.Forward<T>(g.Rows, g.Channels, rows, gamma, beta, outRows, mean, rstd, eps);
        Scatter(g, outRows, y, false);
    }

    /// <summary>One stacked input: dx (x's layout); dgamma and dbeta are added to.</summary>
    internal static void Backward<T>(DualLayerNormGeometry g, T[] dy, T[] x, T[] gamma, ReadOnlySpan<T> mean, ReadOnlySpan<T> rstd, T[] dx, T[] dgamma, T[] dbeta)
        where T : IFloatingPointIeee754<T>
    {
        var dxRows = new T[(long)g.Rows * g.Channels];
        LayerNorm.Backward<T>(g.Rows, g.Channels, Gather(g, dy, false), Gather(g, x, true), gamma, mean, rstd, dxRows, dgamma, dbeta, true);
        Scatter(g, dxRows, dx, true);
    }
}
