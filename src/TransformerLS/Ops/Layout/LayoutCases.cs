using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The layout family's cases (see Conformance/OpCases): a head split and an accumulating slice copy.
public static partial class Layout
{
    static string F(string method) => $"{nameof(Layout)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt)
    {
        double s = dt.Size();
        yield return Make(F(nameof(SwapAxes12)), "swap_axes12", dt, "[2,5,3,7]", [In("x", dt, 1, 2, 5, 3, 7)], [Out("y", dt, 2, 3, 5, 7)],
            (be, i, o) => SwapAxes12(be, i[0], o[0]), new SwapRef(2, 5, 3, 7), bytes: s * 2 * 210);
        // Rows of 4 move element by element on the GPU, rows of 24 (whole groups of 8, aligned tensors) as 16-byte vectors.
        foreach (var d in new[] { 4, 24 })
        {
            var slice = new SliceGeometry(2, d, 3, 7, 1, 2, 2);
            yield return Make(F(nameof(CopySlice)), "copy_slice", dt, $"[2,3,{d}][1:3] += into [2,7,{d}][2:4]", [In("src", dt, 1, 2, 3, d), In("base", dt, 1, 2, 7, d)],
                [Out("dst", dt, 2, 7, d)],
                (be, i, o) =>
                {
                    CopySlice(be, i[1], 0, o[0], 0, 1, 7);
                    CopySlice(be, i[0], 1, o[0], 2, 1, 2, accumulate: true);
                }, new SliceRef(slice), bytes: s * 3 * 4 * d);
        }
        // Two heads of three sequences written at their own rows (about one in ten draws is -1: that sequence is left alone).
        yield return Make(F(nameof(WriteRows)), "write_rows", dt, "[3,2,2,4] into [3,2,5,4] at rows[3]",
            [In("src", dt, 1, 3, 2, 2, 4), In("base", dt, 1, 3, 2, 5, 4), new InputSpec("rows", new Shape(3), DType.Float32, InputKind.ClassIndex, Scale: 4)],
            [Out("dst", dt, 3, 2, 5, 4)],
            (be, i, o) =>
            {
                CopySlice(be, i[1], 0, o[0], 0, 2, 5);
                WriteRows(be, i[0], i[2], o[0]);
            }, new WriteRowsRef(), bytes: s * 2 * 3 * 2 * 2 * 4);
        // The same write twice in one batched launch, into two destinations: rows of 4, 16 and 6 values (the GPU copies
        // 16-byte units where the rows are whole units: 4 fp32, 16 of either dtype; else values one by one).
        foreach (var d in new[] { 4, 16, 6 })
            yield return Make(F(nameof(WriteRows)), "write_rows_batch", dt, $"2 x [3,2,2,{d}] into [3,2,5,{d}] at rows[3]",
                [In("src", dt, 1, 3, 2, 2, d), In("base", dt, 1, 3, 2, 5, d), new InputSpec("rows", new Shape(3), DType.Float32, InputKind.ClassIndex, Scale: 4)],
                [Out("dst", dt, 3, 2, 5, d), Out("dst2", dt, 3, 2, 5, d)],
                (be, i, o) =>
                {
                    CopySlice(be, i[1], 0, o[0], 0, 2, 5);
                    CopySlice(be, i[1], 0, o[1], 0, 2, 5);
                    WriteRows(be, [new RowWrite(i[0], i[2], o[0]), new RowWrite(i[0], i[2], o[1])]);
                }, new WriteRowsBatchRef(d), bytes: s * 4 * 3 * 2 * 2 * d);
    }

    sealed record WriteRowsBatchRef(int D) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var (a, b) = ((T[])i[1].Clone(), (T[])i[1].Clone());
            WriteRows(2, 2, 5, D, i[0], i[2], a);
            WriteRows(2, 2, 5, D, i[0], i[2], b);
            return [a, b];
        }
    }

    sealed record WriteRowsRef : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = (T[])i[1].Clone();
            WriteRows(2, 2, 5, 4, i[0], i[2], y);
            return [y];
        }
    }

    sealed record SwapRef(int A, int B, int C, int D) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            SwapAxes12(A, B, C, D, i[0], y);
            return [y];
        }
    }

    sealed record SliceRef(SliceGeometry G) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = (T[])i[1].Clone();
            CopySlice(G, i[0], y, true);
            return [y];
        }
    }
}
