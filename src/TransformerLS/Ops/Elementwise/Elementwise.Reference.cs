using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Checks and CPU reference of kernels/elementwise/, generic over the accumulation type.</summary>
public static partial class Elementwise
{
    internal static void CheckAxpby(IBackend be, Tensor a, Tensor? b, Tensor y)
    {
        Check.On(be, a, nameof(a));
        if (b is not null) Check.Like(be, b, a, nameof(b));
        Check.Like(be, y, a, nameof(y));
    }

    internal static void CheckUnary(IBackend be, Tensor x, Tensor y, Tensor? dy = null)
    {
        Check.On(be, x, nameof(x));
        if (dy is not null) Check.Like(be, dy, x, nameof(dy));
        Check.Like(be, y, x, dy is null ? "y" : "dx");
    }

    internal static void CheckCast(IBackend be, Tensor x, Tensor y)
    {
        Check.On(be, x, nameof(x));
        Check.On(be, y, nameof(y));
        Check.SameShape(y, x.Shape, nameof(y));
    }

    /// <summary>Returns the row length (the bias length).</summary>
    internal static int CheckBiasAdd(IBackend be, Tensor x, Tensor bias, Tensor y)
    {
        Check.On(be, x, nameof(x));
        Check.RankAtLeast(x, 1, nameof(x));
        Check.Vector(be, bias, x.Shape[-1], x.DType, nameof(bias));
        Check.Like(be, y, x, nameof(y));
        return x.Shape[-1];
    }

    /// <summary>y has x's dtype, or float32 (bf16 bias gradients summed into fp32 parameter gradients).</summary>
    internal static int CheckColumnSum(IBackend be, Tensor x, Tensor y)
    {
        Check.On(be, x, nameof(x));
        Check.RankAtLeast(x, 1, nameof(x));
        Check.Vector(be, y, x.Shape[-1], y.DType == DType.Float32 ? DType.Float32 : x.DType, nameof(y));
        return x.Shape[-1];
    }

    /// <summary>y += x: y has x's shape and x's dtype or float32.</summary>
    internal static void CheckAddTo(IBackend be, Tensor x, Tensor y)
    {
        Check.On(be, x, nameof(x));
        Check.On(be, y, nameof(y));
        Check.SameShape(y, x.Shape, nameof(y));
        if (y.DType != DType.Float32) Check.DTypeIs(y, x.DType, nameof(y));
    }

    internal static void Axpby<T>(ReadOnlySpan<T> a, T alpha, ReadOnlySpan<T> b, T beta, Span<T> y) where T : IFloatingPointIeee754<T>
    {
        for (var i = 0; i < y.Length; i++) y[i] = alpha * a[i] + (b.IsEmpty ? T.Zero : beta * b[i]);
    }

    internal static void Gelu<T>(ReadOnlySpan<T> x, Span<T> y) where T : IFloatingPointIeee754<T>
    {
        var half = T.CreateChecked(0.5);
        for (var i = 0; i < y.Length; i++) y[i] = half * x[i] * (T.One + Erf(x[i] * T.CreateChecked(0.70710678118654752)));
    }

    /// <summary>y = GELU(x + bias) over rows of bias's length.</summary>
    internal static void BiasGelu<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> bias, Span<T> y) where T : IFloatingPointIeee754<T>
    {
        var s = new T[1];
        for (var i = 0; i < y.Length; i++)
        {
            s[0] = x[i] + bias[i % bias.Length];
            Gelu<T>(s, y.Slice(i, 1));
        }
    }

    /// <summary>dx = dy·GELU'(x + bias).</summary>
    internal static void BiasGeluBackward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> bias, ReadOnlySpan<T> dy, Span<T> dx) where T : IFloatingPointIeee754<T>
    {
        var s = new T[1];
        for (var i = 0; i < dx.Length; i++)
        {
            s[0] = x[i] + bias[i % bias.Length];
            GeluBackward<T>(s, dy.Slice(i, 1), dx.Slice(i, 1));
        }
    }

    internal static void GeluBackward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx) where T : IFloatingPointIeee754<T>
    {
        var half = T.CreateChecked(0.5);
        for (var i = 0; i < dx.Length; i++)
        {
            var cdf = half * (T.One + Erf(x[i] * T.CreateChecked(0.70710678118654752)));
            var pdf = T.CreateChecked(0.39894228040143268) * T.Exp(-half * x[i] * x[i]);
            dx[i] = dy[i] * (cdf + x[i] * pdf);
        }
    }

    internal static void Relu<T>(ReadOnlySpan<T> x, Span<T> y) where T : IFloatingPointIeee754<T>
    {
        for (var i = 0; i < y.Length; i++) y[i] = T.Max(x[i], T.Zero);
    }

    internal static void ReluBackward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx) where T : IFloatingPointIeee754<T>
    {
        for (var i = 0; i < dx.Length; i++) dx[i] = x[i] > T.Zero ? dy[i] : T.Zero;
    }

    internal static void CheckDropout(IBackend be, Tensor x, Tensor y, float p)
    {
        CheckUnary(be, x, y);
        if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "the dropout probability must be in [0, 1)");
    }

    /// <summary>A graph replay's run seed: 8 bytes (a float32 [2] or bf16 [4] tensor holding the 64-bit seed's bits).</summary>
    internal static void CheckRunSeed(IBackend be, Tensor runSeed)
    {
        Check.On(be, runSeed, nameof(runSeed));
        if (runSeed.Bytes != 8) throw new ArgumentException($"runSeed has shape {runSeed.Shape} ({runSeed.Bytes} bytes); expected the 8 bytes of a 64-bit seed", nameof(runSeed));
    }

    static uint Mix32(uint x)
    {
        x ^= x >> 16; x *= 0x7feb352du;
        x ^= x >> 15; x *= 0x846ca68bu;
        return x ^ (x >> 16);
    }

    /// <summary>Whether dropout keeps element <paramref name="i"/>: the kernel's counter hash, bit for bit.</summary>
    internal static bool KeepMask(ulong seed, long i, float p)
    {
        var h = Mix32((uint)i ^ Mix32((uint)((ulong)i >> 32) ^ Mix32((uint)seed ^ Mix32((uint)(seed >> 32)))));
        return (h >> 8) * (1f / 16777216f) >= p;
    }

    /// <summary>y = x·keep/(1 − p); the backward is the same map applied to dy.</summary>
    internal static void Dropout<T>(ReadOnlySpan<T> x, Span<T> y, float p, ulong seed) where T : IFloatingPointIeee754<T>
    {
        var scale = T.CreateChecked(1f / (1f - p));
        for (var i = 0; i < y.Length; i++) y[i] = KeepMask(seed, i, p) ? x[i] * scale : T.Zero;
    }

    internal static void BiasAdd<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> bias, Span<T> y) where T : IFloatingPointIeee754<T>
    {
        for (var i = 0; i < y.Length; i++) y[i] = x[i] + bias[i % bias.Length];
    }

    internal static void ColumnSum<T>(ReadOnlySpan<T> x, Span<T> y, T beta) where T : IFloatingPointIeee754<T>
    {
        var cols = y.Length;
        for (var c = 0; c < cols; c++)
        {
            var s = T.Zero;
            for (var i = c; i < x.Length; i += cols) s += x[i];
            y[c] = beta == T.Zero ? s : beta * y[c] + s;
        }
    }

    /// <summary>erf to double precision (≈1e-15): a Taylor series near 0, a continued fraction for erfc in the tails.</summary>
    internal static T Erf<T>(T x) where T : IFloatingPointIeee754<T> => T.CreateChecked(Erf(double.CreateChecked(x)));

    internal static double Erf(double x)
    {
        if (double.IsNaN(x)) return x;
        var ax = Math.Abs(x);
        if (ax < 2.5)
        {
            double sum = 0, term = ax, x2 = ax * ax;
            for (var n = 0; n < 100; n++)
            {
                var t = term / (2 * n + 1);
                sum += t;
                if (Math.Abs(t) < 1e-17 * Math.Abs(sum)) break;
                term *= -x2 / (n + 1);
            }
            return Math.CopySign(sum * 1.1283791670955126, x);
        }
        if (ax > 6) return Math.CopySign(1.0, x);
        // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))), evaluated bottom-up.
        double f = ax;
        for (var k = 60; k >= 1; k--) f = ax + k / 2.0 / f;
        var erfc = Math.Exp(-ax * ax) / (f * 1.7724538509055160);
        return Math.CopySign(1 - erfc, x);
    }
}
