using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Geometry of a batched row-major product: op(a) is m×k, op(b) is k×n, c is m×n, per batch entry.</summary>
internal readonly record struct MatMulGeometry(int Batch, int M, int N, int K, long StrideA, long StrideB, long StrideC);

/// <summary>Checks and CPU reference of the batched matmul (cuBLAS on the GPU).</summary>
public static partial class MatMul
{
    internal static MatMulGeometry CheckShapes(IBackend be, Tensor a, bool transA, Tensor b, bool transB, Tensor c)
    {
        Check.On(be, a, nameof(a)); Check.On(be, b, nameof(b)); Check.On(be, c, nameof(c));
        Check.RankAtLeast(a, 2, nameof(a)); Check.RankAtLeast(b, 2, nameof(b)); Check.RankAtLeast(c, 2, nameof(c));
        Check.DTypeIs(b, a.DType, nameof(b));
        // bf16 products may be written in float32 (one rounding later, e.g. after a bias add).
        if (!(a.DType == DType.BFloat16 && c.DType == DType.Float32)) Check.DTypeIs(c, a.DType, nameof(c));
        int m = transA ? a.Shape[-1] : a.Shape[-2], k = transA ? a.Shape[-2] : a.Shape[-1];
        int kb = transB ? b.Shape[-1] : b.Shape[-2], n = transB ? b.Shape[-2] : b.Shape[-1];
        if (kb != k)
            throw new ArgumentException($"b has shape {b.Shape} (transB={transB}): its inner dimension {kb} must equal a's {k} (a {a.Shape}, transA={transA})", nameof(b));
        var batch = a.Shape.Product(0, a.Shape.Rank - 2);
        var batchB = b.Shape.Product(0, b.Shape.Rank - 2);
        if (b.Shape.Rank > 2 && batchB != batch)
            throw new ArgumentException($"b has shape {b.Shape}: its batch ({batchB}) must equal a's ({batch}) or b must be 2-D", nameof(b));
        var cOk = c.Shape.Rank == a.Shape.Rank && c.Shape[-2] == m && c.Shape[-1] == n
                  && c.Shape.Dims[..^2].SequenceEqual(a.Shape.Dims[..^2]);
        if (!cOk) Check.SameShape(c, new Shape([.. a.Shape.Dims[..^2], m, n]), nameof(c)); // throws with the expected shape
        if (batch > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(a), a.Shape.ToString(), "batch must fit in an int");
        return new MatMulGeometry((int)batch, m, n, k, (long)m * k, b.Shape.Rank > 2 ? (long)k * n : 0, (long)m * n);
    }

    internal static void Reference<T>(MatMulGeometry g, ReadOnlySpan<T> a, bool transA, ReadOnlySpan<T> b, bool transB, Span<T> c, T alpha, T beta)
        where T : IFloatingPointIeee754<T>
    {
        for (var z = 0; z < g.Batch; z++)
        {
            var pa = a.Slice((int)(z * g.StrideA), g.M * g.K);
            var pb = b.Slice((int)(z * g.StrideB), g.K * g.N);
            var pc = c.Slice((int)(z * g.StrideC), g.M * g.N);
            for (var i = 0; i < g.M; i++)
                for (var j = 0; j < g.N; j++)
                {
                    var s = T.Zero;
                    for (var p = 0; p < g.K; p++)
                        s += (transA ? pa[p * g.M + i] : pa[i * g.K + p]) * (transB ? pb[j * g.K + p] : pb[p * g.N + j]);
                    pc[i * g.N + j] = beta == T.Zero ? alpha * s : alpha * s + beta * pc[i * g.N + j];
                }
        }
    }

    /// <summary>Rounds a float to TF32 (10 mantissa bits, nearest even), as the tensor cores read fp32 inputs.</summary>
    internal static float RoundToTf32(float f)
    {
        var u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7f800000u) == 0x7f800000u) return f;
        u += 0xfffu + ((u >> 13) & 1u);
        return BitConverter.UInt32BitsToSingle(u & 0xffffe000u);
    }
}
