using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Batched matmul through cuBLAS (fp32, TF32 when allowed, bf16 with fp32 accumulation).</summary>
static class MatMulCuda
{
    public static void Run(CudaBackend be, MatMulGeometry g, Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha, float beta)
    {
        if (g.Batch == 0 || g.M == 0 || g.N == 0) return;
        if (g.K == 0)
        {
            if (beta == 0) be.Fill(c, 0f); else ElementwiseCuda.Axpby(be, c, beta, null, 0f, c);
            return;
        }
        var precision = a.DType == DType.BFloat16 ? (c.DType == DType.Float32 ? GemmPrecision.BFloat16ToFloat32 : GemmPrecision.BFloat16)
            : be.AllowTf32 ? GemmPrecision.TensorFloat32 : GemmPrecision.Float32;
        // One shared b and untransposed a: the batch is just more rows of one GEMM.
        var (m, batch) = g.StrideB == 0 && !transA && (long)g.M * g.Batch <= int.MaxValue ? (g.M * g.Batch, 1) : (g.M, g.Batch);
        be.Blas.GemmStridedBatched(transA, transB, m, g.N, g.K, alpha, a.DevicePointer, g.StrideA,
            b.DevicePointer, g.StrideB, beta, c.DevicePointer, g.StrideC, batch, precision);
    }
}
