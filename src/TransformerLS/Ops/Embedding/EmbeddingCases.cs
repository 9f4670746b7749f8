using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The embedding's cases (see Conformance/OpCases): padding tokens in every draw; the backward accumulates.
public static partial class Embedding
{
    static string F(string method) => $"{nameof(Embedding)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt)
    {
        var f = DType.Float32;
        foreach (var (n, v, d) in new[] { (45, 20, 33), (3, 256, 64) })
        {
            var shape = $"N{n} V{v} D{d}";
            var tokens = new InputSpec("tokens", new Shape(n), f, InputKind.ClassIndex, Scale: v);  // some −1: padding
            double rows = (double)n * d;
            yield return Make(F(nameof(Forward)), "embedding", dt, shape, [In("weight", dt, 1, v, d), tokens], [Out("y", dt, n, d)],
                (be, i, o) => Forward(be, i[0], i[1], o[0]), new EmbeddingRef(d, false), bytes: 2 * dt.Size() * rows + 4.0 * n);
            yield return Make(F(nameof(Backward)), "embedding_backward", dt, shape + " accumulate", [tokens, In("dy", dt, 1, n, d), In("dweight0", f, 1, v, d)], [Out("dweight", f, v, d)],
                (be, i, o) => { Elementwise.Cast(be, i[2], o[0]); Backward(be, i[0], i[1], o[0], accumulate: true); }, new EmbeddingRef(d, true),
                bytes: dt.Size() * rows + 8.0 * rows + 4.0 * n);
        }
    }

    sealed record EmbeddingRef(int Dim, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            if (Backward)
            {
                var dw = (T[])i[2].Clone();
                Backward<T>(Dim, i[0], i[1], dw);
                return [dw];
            }
            var y = new T[i[1].Length * Dim];
            Forward<T>(Dim, i[0], i[1], y);
            return [y];
        }
    }
}
