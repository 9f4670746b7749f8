using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The Linear's cases (see Conformance/OpCases): test mode [3,5,64] → 48; perf mode every token of the bench, D → D.
public static partial class Linear
{
    static string F(string method) => $"{nameof(Linear)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt) => CasesAt(dt, [3, 5], 64, 48);

    internal static IEnumerable<OpCase> PerfCases(KernelShape k, DType dt) => CasesAt(dt, [k.Tokens], k.Dim, k.Dim).Where(c => !c.Op.EndsWith("_accumulate")); // the bench times forward and backward

    static IEnumerable<OpCase> CasesAt(DType dt, int[] lead, int inDim, int outDim)
    {
        var rows = lead.Aggregate(1, (a, b) => a * b);
        var shape = $"[{string.Join(",", lead)},{inDim}]->{outDim}";
        double s = dt.Size(), x = (double)rows * inDim, y = (double)rows * outDim, w = (double)inDim * outDim;
        int[] xs = [.. lead, inDim], ys = [.. lead, outDim];
        var wScale = 1.0 / Math.Sqrt(inDim);
        // y = x·Wᵀ + b: 2·rows·in·out FLOPs.
        yield return Make(F(nameof(Forward)), "linear", dt, shape, [In("x", dt, 1, xs), In("w", dt, wScale, outDim, inDim), In("b", dt, 1, outDim)], [Out("y", dt, ys)],
            (be, i, o) => Forward(be, i[0], i[1], i[2], o[0]), new LinearRef(rows, inDim, outDim, false), 2 * x * outDim, s * (x + y + w + outDim));
        // y += x·Wᵀ + b (a residual in the same GEMM): y starts as y0.
        yield return Make(F(nameof(Forward)), "linear_accumulate", dt, shape,
            [In("x", dt, 1, xs), In("w", dt, wScale, outDim, inDim), In("b", dt, 1, outDim), In("y0", dt, 1, ys)], [Out("y", dt, ys)],
            (be, i, o) => { Elementwise.Cast(be, i[3], o[0]); Forward(be, i[0], i[1], i[2], o[0], accumulate: true); },
            new LinearRef(rows, inDim, outDim, false, Accumulate: true), 2 * x * outDim, s * (x + 2 * y + w + outDim));
        // dx = dy·W, dW = dyᵀ·x, db = Σ dy: 4·rows·in·out FLOPs.
        yield return Make(F(nameof(Backward)), "linear_backward", dt, shape, [In("x", dt, 1, xs), In("w", dt, wScale, outDim, inDim), In("dy", dt, 1, ys)],
            [Out("dx", dt, xs), Out("dw", dt, outDim, inDim), Out("db", dt, outDim)],
            (be, i, o) => Backward(be, i[2], i[0], i[1], o[0], o[1], o[2]), new LinearRef(rows, inDim, outDim, true), 4 * x * outDim, s * (2 * x + y + 2 * w + outDim));
        // The graph's parameter targets: dW += dyᵀ·x and db += Σ dy into float32 gradients that start as dw0 and db0 (the GEMM's beta 1,
        // the column sum's beta 1).
        var f = DType.Float32;
        yield return Make(F(nameof(Backward)), "linear_backward_accumulate", dt, shape,
            [In("x", dt, 1, xs), In("w", dt, wScale, outDim, inDim), In("dy", dt, 1, ys), In("dw0", f, 1, outDim, inDim), In("db0", f, 1, outDim)],
            [Out("dx", dt, xs), Out("dw", f, outDim, inDim), Out("db", f, outDim)],
            (be, i, o) => { Elementwise.Cast(be, i[3], o[1]); Elementwise.Cast(be, i[4], o[2]); Backward(be, i[2], i[0], i[1], o[0], o[1], o[2], accumulate: true); },
            new LinearRef(rows, inDim, outDim, true, Accumulate: true), 4 * x * outDim, s * (2 * x + y + w + outDim) + 4.0 * 2 * (w + outDim));
    }

    sealed record LinearRef(int Rows, int In, int Out, bool Backward, bool Accumulate = false) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            if (!Backward)
            {
                var y = Accumulate ? (T[])i[3].Clone() : new T[Rows * Out];
                MatMul.Reference<T>(new(1, Rows, Out, In, 0, 0, 0), i[0], false, i[1], true, y, T.One, Accumulate ? T.One : T.Zero);
                Elementwise.BiasAdd<T>(y, i[2], y);
                return [y];
            }
            T[] dx = new T[Rows * In];
            T[] dw = Accumulate ? (T[])i[3].Clone() : new T[Out * In], db = Accumulate ? (T[])i[4].Clone() : new T[Out];
            var beta = Accumulate ? T.One : T.Zero;
            MatMul.Reference<T>(new(1, Rows, In, Out, 0, 0, 0), i[2], false, i[1], false, dx, T.One, T.Zero);
            MatMul.Reference<T>(new(1, Out, In, Rows, 0, 0, 0), i[2], true, i[0], false, dw, T.One, beta);
            Elementwise.ColumnSum<T>(i[2], db, beta);
            return [dx, dw, db];
        }
    }
}
