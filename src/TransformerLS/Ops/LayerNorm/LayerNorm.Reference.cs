using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Checks and CPU reference of kernels/layer_norm/ (LayerNorm over the last axis).</summary>
public static partial class LayerNorm
{
    /// <summary>Returns (rows, cols).</summary>
    internal static (int Rows, int Cols) CheckForward(IBackend be, Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor? mean, Tensor? rstd, float eps)
    {
        Check.On(be, x, nameof(x));
        Check.RankAtLeast(x, 1, nameof(x));
        var cols = x.Shape[-1];
        var rows = x.Shape.Product(0, x.Shape.Rank - 1);
        if (cols == 0) throw new ArgumentException($"x has shape {x.Shape}: the normalized axis must not be empty", nameof(x));
        if (rows > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(x), x.Shape.ToString(), "at most 2^31-1 rows");
        Check.Vector(be, gamma, cols, DType.Float32, nameof(gamma));
        Check.Vector(be, beta, cols, DType.Float32, nameof(beta));
        Check.Like(be, y, x, nameof(y));
        if ((mean is null) != (rstd is null)) throw new ArgumentException("mean and rstd must both be given or both be null", nameof(mean));
        if (mean is not null) Check.Vector(be, mean, (int)rows, DType.Float32, nameof(mean));
        if (rstd is not null) Check.Vector(be, rstd, (int)rows, DType.Float32, nameof(rstd));
        Check.Positive(eps, nameof(eps));
        return ((int)rows, cols);
    }

    internal static (int Rows, int Cols) CheckBackward(IBackend be, Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx, Tensor dgamma, Tensor dbeta)
    {
        var (rows, cols) = CheckForward(be, x, gamma, dgamma, dx, mean, rstd, 1f);
        Check.Like(be, dy, x, nameof(dy));
        Check.Like(be, dbeta, dgamma, nameof(dbeta));
        return (rows, cols);
    }

    internal static void Forward<T>(int rows, int cols, ReadOnlySpan<T> x, ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, Span<T> y, Span<T> mean, Span<T> rstd, T eps)
        where T : IFloatingPointIeee754<T>
    {
        var n = T.CreateChecked(cols);
        for (var r = 0; r < rows; r++)
        {
            var row = x.Slice(r * cols, cols);
            var m = T.Zero;
            foreach (var v in row) m += v;
            m /= n;
            var var = T.Zero;
            foreach (var v in row) var += (v - m) * (v - m);
            var rs = T.One / T.Sqrt(var / n + eps);
            for (var c = 0; c < cols; c++) y[r * cols + c] = (row[c] - m) * rs * gamma[c] + beta[c];
            if (!mean.IsEmpty) { mean[r] = m; rstd[r] = rs; }
        }
    }

    internal static void Backward<T>(int rows, int cols, ReadOnlySpan<T> dy, ReadOnlySpan<T> x, ReadOnlySpan<T> gamma, ReadOnlySpan<T> mean, ReadOnlySpan<T> rstd,
        Span<T> dx, Span<T> dgamma, Span<T> dbeta, bool accumulate) where T : IFloatingPointIeee754<T>
    {
        var n = T.CreateChecked(cols);
        if (!accumulate) { dgamma.Clear(); dbeta.Clear(); }
        for (var r = 0; r < rows; r++)
        {
            T sg = T.Zero, sgx = T.Zero;
            for (var c = 0; c < cols; c++)
            {
                var i = r * cols + c;
                var xhat = (x[i] - mean[r]) * rstd[r];
                var g = dy[i] * gamma[c];
                sg += g; sgx += g * xhat;
                dgamma[c] += dy[i] * xhat;
                dbeta[c] += dy[i];
            }
            sg /= n; sgx /= n;
            for (var c = 0; c < cols; c++)
            {
                var i = r * cols + c;
                var xhat = (x[i] - mean[r]) * rstd[r];
                dx[i] = rstd[r] * (dy[i] * gamma[c] - sg - xhat * sgx);
            }
        }
    }
}
