using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The matmul's cases (see Conformance/OpCases): every transpose pair, a broadcast b, bf16 into float32, and TF32.
public static partial class MatMul
{
    internal static IEnumerable<OpCase> Cases(DType dt)
    {
        const string facade = $"{nameof(MatMul)}.{nameof(Forward)}";
        var f = DType.Float32;
        foreach (var (ta, tb, sa, sb, name) in new[]
        {
            (false, false, new[] { 2, 33, 47 }, new[] { 2, 47, 29 }, "NN [2,33,47]x[2,47,29]"),
            (false, true, new[] { 2, 33, 47 }, new[] { 29, 47 }, "NT [2,33,47]x[29,47]ᵀ (broadcast b)"),
            (true, false, new[] { 3, 47, 33 }, new[] { 3, 47, 29 }, "TN [3,47,33]ᵀx[3,47,29]"),
            (true, true, new[] { 1, 64, 17 }, new[] { 1, 5, 64 }, "TT [1,64,17]ᵀx[1,5,64]ᵀ"),
        })
        {
            int m = ta ? sa[^1] : sa[^2], n = tb ? sb[^2] : sb[^1], k = ta ? sa[^2] : sa[^1];
            var cShape = sa[..^2].Append(m).Append(n).ToArray();
            var g = new MatMulGeometry(sa[0], m, n, k, (long)sa[^1] * sa[^2], sb.Length > 2 ? (long)sb[^1] * sb[^2] : 0, (long)m * n);
            var flops = 2.0 * sa[0] * m * n * k;
            InputSpec[] ins = [new("a", new Shape(sa), dt), new("b", new Shape(sb), dt)];
            yield return Make(facade, "matmul", dt, name, ins, [new("c", new Shape(cShape), dt)],
                (be, i, o) => Forward(be, i[0], ta, i[1], tb, o[0]), new MatMulRef(g, ta, tb), flops);
            if (dt == DType.BFloat16 && !ta && tb)
                yield return Make(facade, "matmul_to_float32", dt, name, ins, [new("c", new Shape(cShape), f)],
                    (be, i, o) => Forward(be, i[0], ta, i[1], tb, o[0]), new MatMulRef(g, ta, tb), flops);
            if (dt == DType.Float32 && !ta && !tb)
                yield return Make(facade, "matmul_tf32", dt, name, ins, [new("c", new Shape(cShape), dt)],
                    (be, i, o) => RunTf32(be, () => Forward(be, i[0], ta, i[1], tb, o[0])), new MatMulRef(g, ta, tb), flops, sameInput: RoundToTf32);
        }
    }

    static void RunTf32(IBackend be, Action run)
    {
        if (be is not CudaBackend cuda) { run(); return; }
        var old = cuda.AllowTf32;
        cuda.AllowTf32 = true;
        try { run(); } finally { cuda.AllowTf32 = old; }
    }

    sealed record MatMulRef(MatMulGeometry G, bool TransA, bool TransB) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var c = new T[G.Batch * G.M * G.N];
            Reference<T>(G, i[0], TransA, i[1], TransB, c, T.One, T.Zero);
            return [c];
        }
    }
}
