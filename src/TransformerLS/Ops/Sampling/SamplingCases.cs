using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// Sampling's cases: greedy, plain temperature, top-k, top-p and both, at vocabularies of 1, 7, 256 (the byte LM) and 1000
// (not a power of two), with inactive rows in every draw. The token must be the float64 rule's, or its token for a draw
// (and top-p) within 1e-5 of the row's (Admissible): a float32 sampler moves each boundary between two tokens by ~1e-6
// of the mass, and with 256 tokens a row some draw lands that close to one in a few hundred rows.
public static partial class Sampling
{
    static string F(string method) => $"{nameof(Sampling)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt)
    {
        var f = DType.Float32;
        foreach (var (n, v, t, k, p) in new[] { (37, 256, 0f, 0, 1f), (37, 256, 1f, 0, 1f), (19, 256, 0.7f, 40, 1f), (19, 1000, 1.3f, 0, 0.9f), (5, 7, 1f, 3, 0.5f), (1, 1, 1f, 0, 1f), (64, 256, 0.8f, 0, 0.95f) })
        {
            var shape = $"[{n},{v}] T{t} k{k} p{p}";
            // A token counts as right when it is the float64 rule's for a draw (and top-p) within 1e-5 of the row's.
            yield return Make(F(nameof(SampleRows)), "sample_rows", dt, shape,
                [In("logits", dt, 3, n, v), new InputSpec("uniforms", new Shape(n), f, InputKind.Uniform01)], [Out("tokens", f, n)],
                (be, i, o) => SampleRows(be, i[0], i[1], t, k, p, o[0]), new SampleRef(v, t, k, p), bytes: dt.Size() * (double)n * v + 8.0 * n,
                admissible: (ins, _, got, truth) => [.. truth.Select((r, row) => ins[1][row] >= 0 && got[row] >= 0 && got[row] < v && got[row] == Math.Floor(got[row])
                    && Admissible(ins[0].AsSpan(row * v, v), ins[1][row], t, k, p, (int)got[row], 1e-5) ? got[row] : r)]);
        }
    }

    sealed record SampleRef(int Vocab, float Temperature, int TopK, float TopP) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var tokens = new T[i[1].Length];
            Sample<T>(Vocab, i[0], i[1], Temperature, TopK, TopP, tokens);
            return [tokens];
        }
    }
}
