using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// LayerNorm's cases (see Conformance/OpCases): test mode at odd row counts and widths; perf mode every token of the bench.
public static partial class LayerNorm
{
    static string F(string method) => $"{nameof(LayerNorm)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt) => new[] { (21, 96), (2, 1000), (1, 7), (300, 512), (5, 640) }.SelectMany(s => CasesAt(dt, s.Item1, s.Item2, 3));

    internal static IEnumerable<OpCase> PerfCases(KernelShape k, DType dt) => CasesAt(dt, k.Tokens, k.Dim, 1);

    static IEnumerable<OpCase> CasesAt(DType dt, int rows, int cols, double scale)
    {
        var f = DType.Float32;
        var shape = $"[{rows},{cols}]";
        double s = dt.Size(), n = (double)rows * cols;
        InputSpec[] ins = [In("x", dt, scale, rows, cols), In("gamma", f, 1, cols), In("beta", f, 1, cols)];
        yield return Make(F(nameof(Forward)), "layer_norm", dt, shape, ins, [Out("y", dt, rows, cols)],
            (be, i, o) => Forward(be, i[0], i[1], i[2], o[0], null, null, 1e-5f), new LayerNormRef(rows, cols, false), bytes: s * 2 * n + 8.0 * cols);
        // The statistics come from a forward in the untimed setup, as the graph saves them.
        yield return Timed(F(nameof(Backward)), "layer_norm_backward", dt, shape, [.. ins, In("dy", dt, 1, rows, cols)],
            [Out("dx", dt, rows, cols), Out("dgamma", f, cols), Out("dbeta", f, cols)],
            (be, i, o) =>
            {
                var (mean, rstd, y) = (be.Empty(new Shape(rows), f), be.Empty(new Shape(rows), f), be.Empty(i[0].Shape, i[0].DType));
                Forward(be, i[0], i[1], i[2], y, mean, rstd, 1e-5f);
                return () => Backward(be, i[3], i[0], i[1], mean, rstd, o[0], o[1], o[2]);
            }, new LayerNormRef(rows, cols, true), bytes: s * 3 * n + 8.0 * rows + 12.0 * cols);
    }

    sealed record LayerNormRef(int Rows, int Cols, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            T[] y = new T[Rows * Cols], mean = new T[Rows], rstd = new T[Rows];
            Forward<T>(Rows, Cols, i[0], i[1], i[2], y, mean, rstd, T.CreateChecked(1e-5f));
            if (!Backward) return [y];
            T[] dx = new T[Rows * Cols], dg = new T[Cols], db = new T[Cols];
            Backward<T>(Rows, Cols, i[3], i[0], i[1], mean, rstd, dx, dg, db, false);
            return [dx, dg, db];
        }
    }
}
