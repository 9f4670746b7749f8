using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The MatMul family: this facade; MatMul.Reference.cs (checks, reference); MatMulCuda.cs (launcher, params mirror);
// MatMulNode.cs (graph node, builder); MatMulCases.cs (test and bench cases). See Ops/README.md.

/// <summary>Batched matmul (cuBLAS on the GPU, no kernels/ folder of its own); checks once, then cuBLAS or the CPU reference.</summary>
public static partial class MatMul
{
    /// <summary>
    /// Batched row-major c = alpha·op(a)·op(b) + beta·c over the leading axes; b may be 2-D (one matrix for the
    /// whole batch). Reads c only when beta ≠ 0. c has a's dtype, or float32 when a and b are bfloat16.
    /// </summary>
    public static void Forward(IBackend be, Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha = 1f, float beta = 0f)
    {
        var g = CheckShapes(be, a, transA, b, transB, c);
        if (be is CudaBackend cuda) MatMulCuda.Run(cuda, g, a, transA, b, transB, c, alpha, beta);
        else CpuReference.Run([a, b], [c], (g, transA, transB, alpha, beta), static (s, i, o) => { var (g, transA, transB, alpha, beta) = s; Reference<double>(g, i[0], transA, i[1], transB, o[0], alpha, beta); }, read: beta == 0 ? 0u : 1u);
    }
}
