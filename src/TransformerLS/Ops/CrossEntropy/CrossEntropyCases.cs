using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// Cross-entropy's cases (see Conformance/OpCases): ignored rows in every target draw; the loss mean only in float32
// (it is float32 whatever the logits).
public static partial class CrossEntropy
{
    static string F(string method) => $"{nameof(CrossEntropy)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt)
    {
        var f = DType.Float32;
        foreach (var (n, v) in new[] { (37, 50), (5, 300), (1, 1) })
        {
            var shape = $"[{n},{v}]";
            var target = new InputSpec("target", new Shape(n), f, InputKind.ClassIndex, Scale: v);
            double logits = dt.Size() * (double)n * v;
            yield return Make(F(nameof(Forward)), "cross_entropy", dt, shape, [In("logits", dt, 3, n, v), target], [Out("loss", f, n), Out("lse", f, n)],
                (be, i, o) => Forward(be, i[0], i[1], o[0], o[1]), new CrossEntropyRef(v, false), bytes: logits + 12.0 * n);
            // The log-sum-exp the backward reads comes from a forward in the untimed setup.
            yield return Timed(F(nameof(Backward)), "cross_entropy_backward", dt, shape, [In("logits", dt, 3, n, v), target, In("dloss", f, 1, n)], [Out("dlogits", dt, n, v)],
                (be, i, o) =>
                {
                    var (loss, lse) = (be.Empty(new Shape(n), f), be.Empty(new Shape(n), f));
                    Forward(be, i[0], i[1], loss, lse);
                    return () => Backward(be, i[0], i[1], lse, i[2], o[0]);
                }, new CrossEntropyRef(v, true), bytes: 2 * logits + 12.0 * n);
        }
        if (dt != DType.Float32) yield break;
        foreach (var n in new[] { 37, 4099, 1 })
        {
            var target = new InputSpec("target", new Shape(n), f, InputKind.ClassIndex, Scale: 7);
            yield return Make(F(nameof(LossMean)), "loss_mean", f, $"[{n}]", [In("loss", f, 3, n), target], [Out("mean", f, 1), Out("count", f, 1)],
                (be, i, o) => LossMean(be, i[0], i[1], o[0], o[1]), new LossMeanRef(false), bytes: 8.0 * n);
            yield return Timed(F(nameof(LossMeanBackward)), "loss_mean_backward", f, $"[{n}]", [In("loss", f, 3, n), target, In("dmean", f, 1, 1)], [Out("dloss", f, n)],
                (be, i, o) =>
                {
                    var (mean, count) = (be.Empty(new Shape(1), f), be.Empty(new Shape(1), f));
                    LossMean(be, i[0], i[1], mean, count);
                    return () => LossMeanBackward(be, i[1], count, i[2], o[0]);
                }, new LossMeanRef(true), bytes: 8.0 * n);
        }
    }

    sealed record LossMeanRef(bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            Mean<T>(i[0], i[1], out var mean, out var count);
            if (!Backward) return [[mean], [count]];
            var d = new T[i[1].Length];
            MeanBackward<T>(i[1], count, i[2][0], d);
            return [d];
        }
    }

    sealed record CrossEntropyRef(int Vocab, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var n = i[1].Length;
            T[] loss = new T[n], lse = new T[n];
            Forward<T>(Vocab, i[0], i[1], loss, lse);
            if (!Backward) return [loss, lse];
            var dx = new T[i[0].Length];
            Backward<T>(Vocab, i[0], i[1], lse, i[2], dx);
            return [dx];
        }
    }
}
