using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Ops;
using TransformerLS.Tensors;
using LN = TransformerLS.Ops.LayerNorm;
using LinearOp = TransformerLS.Ops.Linear;

namespace TransformerLS.Conformance;

/// <summary>A reference computation at any floating-point precision.</summary>
public interface IReference
{
    /// <summary><paramref name="stored"/> rounds a value the way the backend stores an intermediate tensor
    /// (identity for the float64 truth, the case's dtype for the same-precision computation).</summary>
    T[][] Run<T>(T[][] inputs, Func<T, T> stored) where T : IFloatingPointIeee754<T>;
}

/// <summary>
/// The table of op cases every backend must pass (ggml's test-backend-ops in spirit): each op family,
/// forward and backward, float32 and bfloat16, odd shapes. Tests and `tls check` run the same table.
/// </summary>
internal static partial class OpCases
{
    public static IReadOnlyList<OpCase> All { get; } = Build();

    static OpCase Make(string op, DType dt, string shapes, InputSpec[] ins, OutputSpec[] outs, Action<IBackend, Tensor[], Tensor[]> run,
        IReference r, Func<float, float>? sameInput = null) => new()
    {
        Op = op, Name = $"{op} {dt.Name()} {shapes}", Inputs = ins, Outputs = outs, Run = run,
        Reference64 = i => r.Run<double>(i, x => x), Reference32 = i => r.Run<float>(i, x => (float)dt.Round(x)), SamePrecisionInput = sameInput,
    };

    static InputSpec In(string name, DType dt, double scale = 1, params int[] dims) => new(name, new Shape(dims), dt, Scale: scale);
    static OutputSpec Out(string name, DType dt, params int[] dims) => new(name, new Shape(dims), dt);

    static List<OpCase> Build()
    {
        var list = new List<OpCase>();
        foreach (var dt in new[] { DType.Float32, DType.BFloat16 })
        {
            var f = DType.Float32;
            list.Add(Make("axpby", dt, "[3,257]", [In("a", dt, 1, 3, 257), In("b", dt, 1, 3, 257)], [Out("y", dt, 3, 257)],
                (be, i, o) => Elementwise.Axpby(be, i[0], 0.7f, i[1], -1.3f, o[0]), new AxpbyRef(0.7, -1.3, true)));
            list.Add(Make("scale", dt, "[1001]", [In("a", dt, 1, 1001)], [Out("y", dt, 1001)],
                (be, i, o) => Elementwise.Axpby(be, i[0], -2.5f, null, 0f, o[0]), new AxpbyRef(-2.5, 0, false)));
            list.Add(Make("gelu", dt, "[4,333]", [In("x", dt, 2, 4, 333)], [Out("y", dt, 4, 333)],
                (be, i, o) => Elementwise.Gelu(be, i[0], o[0]), new GeluRef(false)));
            list.Add(Make("gelu_backward", dt, "[4,333]", [In("x", dt, 2, 4, 333), In("dy", dt, 1, 4, 333)], [Out("dx", dt, 4, 333)],
                (be, i, o) => Elementwise.GeluBackward(be, i[0], i[1], o[0]), new GeluRef(true)));
            list.Add(Make("relu", dt, "[4,333]", [In("x", dt, 2, 4, 333)], [Out("y", dt, 4, 333)],
                (be, i, o) => Elementwise.Relu(be, i[0], o[0]), new ReluRef(false)));
            list.Add(Make("relu_backward", dt, "[4,333]", [In("x", dt, 2, 4, 333), In("dy", dt, 1, 4, 333)], [Out("dx", dt, 4, 333)],
                (be, i, o) => Elementwise.ReluBackward(be, i[0], i[1], o[0]), new ReluRef(true)));
            // A seed above 2^32 exercises both halves of the counter hash; the same mask on both backends or the row fails.
            list.Add(Make("dropout", dt, "[3,5000] p0.3", [In("x", dt, 1, 3, 5000)], [Out("y", dt, 3, 5000)],
                (be, i, o) => Elementwise.Dropout(be, i[0], o[0], 0.3f, 0x1234_5678_9abcUL), new DropoutRef(0.3f, 0x1234_5678_9abcUL)));
            list.Add(Make("bias_add", dt, "[5,7,96]", [In("x", dt, 1, 5, 7, 96), In("bias", dt, 1, 96)], [Out("y", dt, 5, 7, 96)],
                (be, i, o) => Elementwise.BiasAdd(be, i[0], i[1], o[0]), new BiasAddRef()));
            var other = dt == DType.Float32 ? DType.BFloat16 : DType.Float32;
            list.Add(Make("cast", dt, $"[7,129] -> {other.Name()}", [In("x", dt, 3, 7, 129)], [Out("y", other, 7, 129)],
                (be, i, o) => Elementwise.Cast(be, i[0], o[0]), new IdentityRef()));
            list.Add(Make("column_sum", dt, "[300,67]", [In("x", dt, 1, 300, 67)], [Out("y", dt, 67)],
                (be, i, o) => Elementwise.ColumnSum(be, i[0], o[0]), new ColumnSumRef()));
            list.Add(Make("add_to", dt, "[5,301] += float32", [In("x", dt, 1, 5, 301), In("y0", f, 1, 5, 301)], [Out("y", f, 5, 301)],
                (be, i, o) => { Elementwise.Cast(be, i[1], o[0]); Elementwise.AddTo(be, i[0], o[0]); }, new AxpbyRef(1, 1, true)));
            if (dt == DType.BFloat16)
            {
                list.Add(Make("add_to", dt, "[5,301] += bfloat16", [In("x", dt, 1, 5, 301), In("y0", dt, 1, 5, 301)], [Out("y", dt, 5, 301)],
                    (be, i, o) => { Elementwise.Cast(be, i[1], o[0]); Elementwise.AddTo(be, i[0], o[0]); }, new AxpbyRef(1, 1, true)));
                list.Add(Make("column_sum", dt, "[300,67] -> float32", [In("x", dt, 1, 300, 67)], [Out("y", f, 67)],
                    (be, i, o) => Elementwise.ColumnSum(be, i[0], o[0]), new ColumnSumRef()));
            }

            foreach (var (ta, tb, sa, sb, name) in new[]
            {
                (false, false, new[] { 2, 33, 47 }, new[] { 2, 47, 29 }, "NN [2,33,47]x[2,47,29]"),
                (false, true, new[] { 2, 33, 47 }, new[] { 29, 47 }, "NT [2,33,47]x[29,47]ᵀ (broadcast b)"),
                (true, false, new[] { 3, 47, 33 }, new[] { 3, 47, 29 }, "TN [3,47,33]ᵀx[3,47,29]"),
                (true, true, new[] { 1, 64, 17 }, new[] { 1, 5, 64 }, "TT [1,64,17]ᵀx[1,5,64]ᵀ"),
            })
            {
                int m = ta ? sa[^1] : sa[^2], n = tb ? sb[^2] : sb[^1];
                var cShape = sa[..^2].Append(m).Append(n).ToArray();
                var g = new MatMulGeometry(sa[0], m, n, ta ? sa[^2] : sa[^1], (long)sa[^1] * sa[^2], sb.Length > 2 ? (long)sb[^1] * sb[^2] : 0, (long)m * n);
                list.Add(Make("matmul", dt, name, [new("a", new Shape(sa), dt), new("b", new Shape(sb), dt)], [new("c", new Shape(cShape), dt)],
                    (be, i, o) => MatMul.Forward(be, i[0], ta, i[1], tb, o[0]), new MatMulRef(g, ta, tb)));
                if (dt == DType.BFloat16 && !ta && tb)
                    list.Add(Make("matmul_to_float32", dt, name, [new("a", new Shape(sa), dt), new("b", new Shape(sb), dt)], [new("c", new Shape(cShape), f)],
                        (be, i, o) => MatMul.Forward(be, i[0], ta, i[1], tb, o[0]), new MatMulRef(g, ta, tb)));
                if (dt == DType.Float32 && !ta && !tb)
                    list.Add(Make("matmul_tf32", dt, name, [new("a", new Shape(sa), dt), new("b", new Shape(sb), dt)], [new("c", new Shape(cShape), dt)],
                        (be, i, o) => RunTf32(be, () => MatMul.Forward(be, i[0], ta, i[1], tb, o[0])), new MatMulRef(g, ta, tb), MatMul.RoundToTf32));
            }

            list.Add(Make("linear", dt, "[3,5,64]->48", [In("x", dt, 1, 3, 5, 64), In("w", dt, 0.125, 48, 64), In("b", dt, 1, 48)], [Out("y", dt, 3, 5, 48)],
                (be, i, o) => LinearOp.Forward(be, i[0], i[1], i[2], o[0]), new LinearRef(15, 64, 48, false)));
            list.Add(Make("linear_backward", dt, "[3,5,64]->48",
                [In("x", dt, 1, 3, 5, 64), In("w", dt, 0.125, 48, 64), In("dy", dt, 1, 3, 5, 48)],
                [Out("dx", dt, 3, 5, 64), Out("dw", dt, 48, 64), Out("db", dt, 48)],
                (be, i, o) => LinearOp.Backward(be, i[2], i[0], i[1], o[0], o[1], o[2]), new LinearRef(15, 64, 48, true)));

            foreach (var (rows, cols) in new[] { (21, 96), (2, 1000), (1, 7) })
            {
                var shape = $"[{rows},{cols}]";
                list.Add(Make("layernorm", dt, shape, [In("x", dt, 3, rows, cols), In("gamma", f, 1, cols), In("beta", f, 1, cols)], [Out("y", dt, rows, cols)],
                    (be, i, o) => LayerNorm.Forward(be, i[0], i[1], i[2], o[0], null, null, 1e-5f), new LayerNormRef(rows, cols, false)));
                list.Add(Make("layernorm_backward", dt, shape,
                    [In("x", dt, 3, rows, cols), In("gamma", f, 1, cols), In("beta", f, 1, cols), In("dy", dt, 1, rows, cols)],
                    [Out("dx", dt, rows, cols), Out("dgamma", f, cols), Out("dbeta", f, cols)],
                    (be, i, o) => RunLayerNormBackward(be, i, o), new LayerNormRef(rows, cols, true)));
            }

            foreach (var (dims, axis) in new[] { (new[] { 4, 6, 50 }, -1), (new[] { 2, 300, 12 }, 1), (new[] { 5, 1 }, 0) })
            {
                var s = new Shape(dims);
                var shape = $"{s} axis {axis}";
                var ax = s.Axis(axis, nameof(axis));
                var geo = new SoftmaxGeometry(s.Product(0, ax), s[ax], s.Product(ax + 1, s.Rank));
                list.Add(Make("softmax", dt, shape, [new("x", s, dt, Scale: 3)], [new("y", s, dt)],
                    (be, i, o) => Softmax.Forward(be, i[0], o[0], axis), new SoftmaxRef(geo, false)));
                list.Add(Make("softmax_backward", dt, shape, [new("y", s, dt, InputKind.SoftmaxOfNormal, 3, axis), new("dy", s, dt)], [new("dx", s, dt)],
                    (be, i, o) => Softmax.Backward(be, i[0], i[1], o[0], axis), new SoftmaxRef(geo, true)));
            }

            AddAttention(list, dt);
            AddCls(list, dt);
            AddCausal(list, dt);
            AddChunkProjection(list, dt);
            AddLayoutAndDualLayerNorm(list, dt);
            AddOptimizer(list, dt);
            AddCrossEntropy(list, dt);
            AddEmbedding(list, dt);
        }
        return list;
    }

    static void RunTf32(IBackend be, Action run)
    {
        if (be is not CudaBackend cuda) { run(); return; }
        var old = cuda.AllowTf32;
        cuda.AllowTf32 = true;
        try { run(); } finally { cuda.AllowTf32 = old; }
    }

    static void RunLayerNormBackward(IBackend be, Tensor[] i, Tensor[] o)
    {
        var rows = (int)(i[0].Count / i[0].Shape[-1]);
        using var mean = be.Empty(new Shape(rows), DType.Float32);
        using var rstd = be.Empty(new Shape(rows), DType.Float32);
        using var y = be.Empty(i[0].Shape, i[0].DType);
        LayerNorm.Forward(be, i[0], i[1], i[2], y, mean, rstd, 1e-5f);
        LayerNorm.Backward(be, i[3], i[0], i[1], mean, rstd, o[0], o[1], o[2]);
    }

    sealed record AxpbyRef(double Alpha, double Beta, bool HasB) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            Elementwise.Axpby<T>(i[0], T.CreateChecked(Alpha), HasB ? i[1] : default, T.CreateChecked(Beta), y);
            return [y];
        }
    }

    sealed record GeluRef(bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            if (Backward) Elementwise.GeluBackward<T>(i[0], i[1], y); else Elementwise.Gelu<T>(i[0], y);
            return [y];
        }
    }

    sealed record ReluRef(bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            if (Backward) Elementwise.ReluBackward<T>(i[0], i[1], y); else Elementwise.Relu<T>(i[0], y);
            return [y];
        }
    }

    sealed record DropoutRef(float P, ulong Seed) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            Elementwise.Dropout<T>(i[0], y, P, Seed);
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
            Elementwise.BiasAdd<T>(i[0], i[1], y);
            return [y];
        }
    }

    sealed record ColumnSumRef : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[67];
            Elementwise.ColumnSum<T>(i[0], y, T.Zero);
            return [y];
        }
    }

    sealed record MatMulRef(MatMulGeometry G, bool TransA, bool TransB) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var c = new T[G.Batch * G.M * G.N];
            MatMul.Reference<T>(G, i[0], TransA, i[1], TransB, c, T.One, T.Zero);
            return [c];
        }
    }

    sealed record LinearRef(int Rows, int In, int Out, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            if (!Backward)
            {
                var y = new T[Rows * Out];
                MatMul.Reference<T>(new(1, Rows, Out, In, 0, 0, 0), i[0], false, i[1], true, y, T.One, T.Zero);
                Elementwise.BiasAdd<T>(y, i[2], y);
                return [y];
            }
            T[] dx = new T[Rows * In], dw = new T[Out * In], db = new T[Out];
            MatMul.Reference<T>(new(1, Rows, In, Out, 0, 0, 0), i[2], false, i[1], false, dx, T.One, T.Zero);
            MatMul.Reference<T>(new(1, Out, In, Rows, 0, 0, 0), i[2], true, i[0], false, dw, T.One, T.Zero);
            Elementwise.ColumnSum<T>(i[2], db, T.Zero);
            return [dx, dw, db];
        }
    }

    sealed record LayerNormRef(int Rows, int Cols, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            T[] y = new T[Rows * Cols], mean = new T[Rows], rstd = new T[Rows];
            LN.Forward<T>(Rows, Cols, i[0], i[1], i[2], y, mean, rstd, T.CreateChecked(1e-5f));
            if (!Backward) return [y];
            T[] dx = new T[Rows * Cols], dg = new T[Cols], db = new T[Cols];
            LN.Backward<T>(Rows, Cols, i[3], i[0], i[1], mean, rstd, dx, dg, db, false);
            return [dx, dg, db];
        }
    }

    sealed record SoftmaxRef(SoftmaxGeometry G, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            if (Backward) Softmax.Backward<T>(G, i[0], i[1], y); else Softmax.Forward<T>(G, i[0], y);
            return [y];
        }
    }
}
