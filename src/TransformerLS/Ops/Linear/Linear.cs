using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The Linear family: this facade; LinearNode.cs (graph node, builder);
// LinearCases.cs (test and bench cases). See Ops/README.md.

/// <summary>
/// y = x·Wᵀ + b over the last axis (PyTorch's Linear, weight [out, in]): on the GPU one cuBLASLt GEMM with the bias in
/// its epilogue (LinearCuda.cs); elsewhere composed from the backend's matmul, bias add and column sum.
/// </summary>
public static partial class Linear
{
    /// <summary>y = x·Wᵀ + b, or with <paramref name="accumulate"/> y += x·Wᵀ + b (a residual added in the same GEMM: on the GPU the
    /// sum is taken in fp32 and rounded once into y).</summary>
    public static void Forward(IBackend be, Tensor x, Tensor weight, Tensor? bias, Tensor y, bool accumulate = false)
    {
        Check.RankAtLeast(x, 2, nameof(x));
        Check.RankAtLeast(weight, 2, nameof(weight));
        if (weight.Shape.Rank != 2 || weight.Shape[1] != x.Shape[-1])
            throw new ArgumentException($"weight has shape {weight.Shape}; expected [out, {x.Shape[-1]}] for x of shape {x.Shape}", nameof(weight));
        if (bias is not null) Check.Vector(be, bias, weight.Shape[0], x.DType, nameof(bias));
        var beta = accumulate ? 1f : 0f;
        if (accumulate && be is not CudaBackend)
        {
            // The CPU computes y + x·Wᵀ + b in float64 and rounds once into y, as the GPU's GEMM does in fp32.
            MatMul.CheckShapes(be, x, false, weight, true, y);
            int K = x.Shape[-1], N = weight.Shape[0], rows = checked((int)(x.Count / Math.Max(1, K)));
            CpuReference.Run([x, weight, bias], [y], (Rows: rows, K, N, HasBias: bias is not null), static (s, i, o) =>
            {
                MatMul.Reference<double>(new(1, s.Rows, s.N, s.K, 0, 0, 0), i[0], false, i[1], true, o[0], 1.0, 1.0);
                if (s.HasBias) Elementwise.BiasAdd<double>(o[0], i[2], o[0]);
            }, read: 1);
            return;
        }
        // The batched matmul with a 2-D weight folds the leading axes into one GEMM; no views needed.
        if (bias is null) { MatMul.Forward(be, x, false, weight, true, y, 1f, beta); return; }
        // The GPU adds the bias in the GEMM's epilogue (cuBLASLt), in fp32, with one rounding into y.
        var g = MatMul.CheckShapes(be, x, false, weight, true, y);
        if (be is CudaBackend cuda && y.DType == x.DType) { LinearCuda.Forward(cuda, g, x, weight, bias, y, beta); return; }
        if (!accumulate) be.Fill(y, 0f);
        Elementwise.BiasAdd(be, y, bias, y);
        MatMul.Forward(be, x, false, weight, true, y, 1f, 1f);
    }

    /// <summary>Device scratch the backward allocates while it runs: the bias gradient's two-stage column sum on the GPU.</summary>
    public static long BackwardWorkspace(Device device, Shape? bias, Shape y) =>
        bias is null ? 0 : ColumnGroups.SumScratchBytes(device, y.Count / Math.Max(1, y[-1]), y[-1]);

    /// <summary>dx = dy·W, dW (+)= dyᵀ·x, db (+)= Σ dy; any of the three may be null.</summary>
    public static void Backward(IBackend be, Tensor dy, Tensor x, Tensor weight, Tensor? dx, Tensor? dweight, Tensor? dbias, bool accumulate = false)
    {
        Check.RankAtLeast(x, 2, nameof(x));
        Check.On(be, dy, nameof(dy));
        if (dy.Shape.Rank != x.Shape.Rank || dy.Shape[-1] != weight.Shape[0] || !dy.Shape.Dims[..^1].SequenceEqual(x.Shape.Dims[..^1]))
            throw new ArgumentException(
                $"dy has shape {dy.Shape}; expected [{string.Join(", ", x.Shape.Dims[..^1].ToArray())}, {weight.Shape[0]}] for x {x.Shape} and weight {weight.Shape}", nameof(dy));
        if (dx is not null) MatMul.Forward(be, dy, false, weight, false, dx);
        if (dbias is not null) Elementwise.ColumnSum(be, dy, dbias, accumulate ? 1f : 0f);
        if (dweight is null) return;
        using var dy2 = Rows(dy);
        using var x2 = Rows(x);
        MatMul.Forward(be, dy2, true, x2, false, dweight, 1f, accumulate ? 1f : 0f);
    }

    static Tensor Rows(Tensor t) => t.Reshape(checked((int)(t.Count / Math.Max(1, t.Shape[-1]))), t.Shape[-1]);
}
