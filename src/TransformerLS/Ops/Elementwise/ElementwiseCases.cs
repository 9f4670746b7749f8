using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The elementwise family's cases (see Conformance/OpCases): test mode at small odd shapes, perf mode for GELU at the
// MLP width of the bench (bandwidth-bound: bytes only).
public static partial class Elementwise
{
    static string F(string method) => $"{nameof(Elementwise)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt)
    {
        var f = DType.Float32;
        yield return Make(F(nameof(Axpby)), "axpby", dt, "[3,257]", [In("a", dt, 1, 3, 257), In("b", dt, 1, 3, 257)], [Out("y", dt, 3, 257)],
            (be, i, o) => Axpby(be, i[0], 0.7f, i[1], -1.3f, o[0]), new AxpbyRef(0.7, -1.3, true));
        yield return Make(F(nameof(Axpby)), "scale", dt, "[1001]", [In("a", dt, 1, 1001)], [Out("y", dt, 1001)],
            (be, i, o) => Axpby(be, i[0], -2.5f, null, 0f, o[0]), new AxpbyRef(-2.5, 0, false));
        foreach (var c in GeluCases(dt, 4, 333, 2)) yield return c;
        yield return Make(F(nameof(BiasGelu)), "bias_gelu", dt, "[5,3,96]", [In("x", dt, 2, 5, 3, 96), In("bias", dt, 1, 96)], [Out("y", dt, 5, 3, 96)],
            (be, i, o) => BiasGelu(be, i[0], i[1], o[0]), new BiasGeluRef(false), bytes: dt.Size() * (2 * 1440 + 96));
        yield return Make(F(nameof(BiasGeluBackward)), "bias_gelu_backward", dt, "[5,3,96]", [In("x", dt, 2, 5, 3, 96), In("bias", dt, 1, 96), In("dy", dt, 1, 5, 3, 96)],
            [Out("dx", dt, 5, 3, 96)], (be, i, o) => BiasGeluBackward(be, i[0], i[1], i[2], o[0]), new BiasGeluRef(true), bytes: dt.Size() * (3 * 1440 + 96));
        yield return Make(F(nameof(Relu)), "relu", dt, "[4,333]", [In("x", dt, 2, 4, 333)], [Out("y", dt, 4, 333)],
            (be, i, o) => Relu(be, i[0], o[0]), new ReluRef(false));
        yield return Make(F(nameof(ReluBackward)), "relu_backward", dt, "[4,333]", [In("x", dt, 2, 4, 333), In("dy", dt, 1, 4, 333)], [Out("dx", dt, 4, 333)],
            (be, i, o) => ReluBackward(be, i[0], i[1], o[0]), new ReluRef(true));
        // A seed above 2^32 exercises both halves of the counter hash; the same mask on both backends or the row fails.
        yield return Make(F(nameof(Dropout)), "dropout", dt, "[3,5000] p0.3", [In("x", dt, 1, 3, 5000)], [Out("y", dt, 3, 5000)],
            (be, i, o) => Dropout(be, i[0], o[0], 0.3f, 0x1234_5678_9abcUL), new DropoutRef(0.3f, 0x1234_5678_9abcUL));
        yield return Make(F(nameof(BiasAdd)), "bias_add", dt, "[5,7,96]", [In("x", dt, 1, 5, 7, 96), In("bias", dt, 1, 96)], [Out("y", dt, 5, 7, 96)],
            (be, i, o) => BiasAdd(be, i[0], i[1], o[0]), new BiasAddRef());
        var other = dt == DType.Float32 ? DType.BFloat16 : DType.Float32;
        yield return Make(F(nameof(Cast)), "cast", dt, $"[7,129] -> {other.Name()}", [In("x", dt, 3, 7, 129)], [Out("y", other, 7, 129)],
            (be, i, o) => Cast(be, i[0], o[0]), new IdentityRef());
        yield return Make(F(nameof(ColumnSum)), "column_sum", dt, "[300,67]", [In("x", dt, 1, 300, 67)], [Out("y", dt, 67)],
            (be, i, o) => ColumnSum(be, i[0], o[0]), new ColumnSumRef(67));
        // cols % 8 == 0: the CUDA backend's 8-columns-a-thread kernel (a last block of one thread's columns), with enough
        // rows for its four-rows-in-flight loop and its tail.
        yield return Make(F(nameof(ColumnSum)), "column_sum", dt, "[4100,264]", [In("x", dt, 1, 4100, 264)], [Out("y", dt, 264)],
            (be, i, o) => ColumnSum(be, i[0], o[0]), new ColumnSumRef(264));
        yield return Make(F(nameof(AddTo)), "add_to", dt, "[5,301] += float32", [In("x", dt, 1, 5, 301), In("y0", f, 1, 5, 301)], [Out("y", f, 5, 301)],
            (be, i, o) => { Cast(be, i[1], o[0]); AddTo(be, i[0], o[0]); }, new AxpbyRef(1, 1, true));
        if (dt != DType.BFloat16) yield break;
        yield return Make(F(nameof(AddTo)), "add_to", dt, "[5,301] += bfloat16", [In("x", dt, 1, 5, 301), In("y0", dt, 1, 5, 301)], [Out("y", dt, 5, 301)],
            (be, i, o) => { Cast(be, i[1], o[0]); AddTo(be, i[0], o[0]); }, new AxpbyRef(1, 1, true));
        yield return Make(F(nameof(ColumnSum)), "column_sum", dt, "[300,67] -> float32", [In("x", dt, 1, 300, 67)], [Out("y", f, 67)],
            (be, i, o) => ColumnSum(be, i[0], o[0]), new ColumnSumRef(67));
    }

    /// <summary>GELU on the MLP width 4·D of every token.</summary>
    internal static IEnumerable<OpCase> PerfCases(KernelShape k, DType dt) => GeluCases(dt, k.Tokens, 4 * k.Dim, 1);

    static IEnumerable<OpCase> GeluCases(DType dt, int rows, int cols, double scale)
    {
        var shape = $"[{rows},{cols}]";
        double s = dt.Size(), n = (double)rows * cols;
        yield return Make(F(nameof(Gelu)), "gelu", dt, shape, [In("x", dt, scale, rows, cols)], [Out("y", dt, rows, cols)],
            (be, i, o) => Gelu(be, i[0], o[0]), new GeluRef(false), bytes: s * 2 * n);
        yield return Make(F(nameof(GeluBackward)), "gelu_backward", dt, shape, [In("x", dt, scale, rows, cols), In("dy", dt, 1, rows, cols)], [Out("dx", dt, rows, cols)],
            (be, i, o) => GeluBackward(be, i[0], i[1], o[0]), new GeluRef(true), bytes: s * 3 * n);
    }

    sealed record AxpbyRef(double Alpha, double Beta, bool HasB) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            Axpby<T>(i[0], T.CreateChecked(Alpha), HasB ? i[1] : default, T.CreateChecked(Beta), y);
            return [y];
        }
    }

    sealed record GeluRef(bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            if (Backward) GeluBackward<T>(i[0], i[1], y); else Gelu<T>(i[0], y);
            return [y];
        }
    }

    sealed record BiasGeluRef(bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            if (Backward) BiasGeluBackward<T>(i[0], i[1], i[2], y); else BiasGelu<T>(i[0], i[1], y);
            return [y];
        }
    }

    sealed record ReluRef(bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            if (Backward) ReluBackward<T>(i[0], i[1], y); else Relu<T>(i[0], y);
            return [y];
        }
    }

    sealed record DropoutRef(float P, ulong Seed) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            Dropout<T>(i[0], y, P, Seed);
            return [y];
        }
    }

    sealed record IdentityRef : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T> => [(T[])i[0].Clone()];
    }

    sealed record BiasAddRef : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            BiasAdd<T>(i[0], i[1], y);
            return [y];
        }
    }

    sealed record ColumnSumRef(int Cols) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[Cols];
            ColumnSum<T>(i[0], y, T.Zero);
            return [y];
        }
    }
}
