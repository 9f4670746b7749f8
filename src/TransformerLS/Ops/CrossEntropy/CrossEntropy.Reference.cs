using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Checks and CPU reference of kernels/cross_entropy/, generic over the accumulation type.</summary>
public static partial class CrossEntropy
{
    /// <summary>
    /// logits [N, V]; target, loss (dloss in the backward: <paramref name="lossName"/>), lse: float32 [N]; returns (N, V).
    /// Target values are checked on the CPU only.
    /// </summary>
    internal static (int Rows, int Vocab) CheckShapes(IBackend be, Tensor logits, Tensor target, Tensor loss, Tensor lse, string lossName = "loss")
    {
        Check.On(be, logits, nameof(logits));
        if (logits.Shape.Rank != 2 || logits.Shape[1] < 1)
            throw new ArgumentException($"{nameof(logits)} has shape {logits.Shape}; expected [rows, classes] with classes >= 1", nameof(logits));
        int n = logits.Shape[0], v = logits.Shape[1];
        Check.Vector(be, target, n, DType.Float32, nameof(target));
        Check.Vector(be, loss, n, DType.Float32, lossName);
        Check.Vector(be, lse, n, DType.Float32, nameof(lse));
        return (n, v);
    }

    /// <summary>loss (dloss in the backward), target: float32 [N]; mean (dmean), count: float32 [1]; returns N.</summary>
    internal static int CheckMean(IBackend be, Tensor loss, Tensor target, Tensor mean, Tensor count, string lossName = "loss", string meanName = "mean")
    {
        Check.On(be, loss, lossName);
        if (loss.Shape.Rank != 1) throw new ArgumentException($"{lossName} has shape {loss.Shape}; expected [rows]", lossName);
        var n = loss.Shape[0];
        Check.Vector(be, loss, n, DType.Float32, lossName);
        Check.Vector(be, target, n, DType.Float32, nameof(target));
        Check.Vector(be, mean, 1, DType.Float32, meanName);
        Check.Vector(be, count, 1, DType.Float32, nameof(count));
        return n;
    }

    /// <summary>mean = Σ loss over rows with a target / their count (0 if none): torch's mean with ignored targets.</summary>
    internal static void Mean<T>(ReadOnlySpan<T> loss, ReadOnlySpan<T> target, out T mean, out T count) where T : IFloatingPointIeee754<T>
    {
        T s = T.Zero, c = T.Zero;
        for (var i = 0; i < loss.Length; i++)
            if (target[i] >= T.Zero) { s += loss[i]; c += T.One; }
        mean = c > T.Zero ? s / c : T.Zero;
        count = c;
    }

    internal static void MeanBackward<T>(ReadOnlySpan<T> target, T count, T dmean, Span<T> dloss) where T : IFloatingPointIeee754<T>
    {
        var g = count > T.Zero ? dmean / count : T.Zero;
        for (var i = 0; i < dloss.Length; i++) dloss[i] = target[i] < T.Zero ? T.Zero : g;
    }

    /// <summary>Every target must be a class index in [0, V) or negative (ignored): out of range would read past the row.</summary>
    internal static void CheckTargets(ReadOnlySpan<double> target, int vocab)
    {
        for (var i = 0; i < target.Length; i++)
            if (target[i] >= vocab || (target[i] >= 0 && target[i] != Math.Floor(target[i])) || double.IsNaN(target[i]))
                throw new ArgumentOutOfRangeException(nameof(target), target[i], $"target[{i}] must be a class index in [0, {vocab}) or negative (ignored)");
    }

    internal static void Forward<T>(int vocab, ReadOnlySpan<T> x, ReadOnlySpan<T> target, Span<T> loss, Span<T> lse) where T : IFloatingPointIeee754<T>
    {
        for (var i = 0; i < loss.Length; i++)
        {
            var row = x.Slice(i * vocab, vocab);
            var t = int.CreateTruncating(target[i]);
            if (t < 0) { loss[i] = T.Zero; lse[i] = T.Zero; continue; }
            var m = T.NegativeInfinity;
            foreach (var a in row) m = T.Max(m, a);
            var s = T.Zero;
            foreach (var a in row) s += T.Exp(a - m);
            lse[i] = m + T.Log(s);
            loss[i] = lse[i] - row[t];
        }
    }

    internal static void Backward<T>(int vocab, ReadOnlySpan<T> x, ReadOnlySpan<T> target, ReadOnlySpan<T> lse, ReadOnlySpan<T> dloss, Span<T> dx)
        where T : IFloatingPointIeee754<T>
    {
        for (var i = 0; i < lse.Length; i++)
        {
            var t = int.CreateTruncating(target[i]);
            for (var j = 0; j < vocab; j++)
                dx[i * vocab + j] = t < 0 ? T.Zero : dloss[i] * (T.Exp(x[i * vocab + j] - lse[i]) - (j == t ? T.One : T.Zero));
        }
    }
}
