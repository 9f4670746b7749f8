using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>
/// y = x·Wᵀ + b (+ y with beta 1: a residual) as one cuBLASLt GEMM with the bias in its epilogue: the product is accumulated in fp32, the bias added in
/// fp32 and the sum rounded once into y (bf16 or fp32), so no fp32 temporaries and no extra launches.
/// </summary>
static class LinearCuda
{
    public static void Forward(CudaBackend be, MatMulGeometry g, Tensor x, Tensor weight, Tensor bias, Tensor y, float beta = 0f)
    {
        int outFeatures = g.N, inFeatures = g.K;
        var rows = (long)g.Batch * g.M;
        if (rows == 0 || outFeatures == 0) return;
        if (rows > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(x), x.Shape.ToString(), $"the CUDA Linear takes at most {int.MaxValue} rows; x has {rows}");
        if (inFeatures == 0)
        {
            if (beta == 0f) be.Fill(y, 0f);
            Elementwise.BiasAdd(be, y, bias, y);
            return;
        }
        var precision = x.DType == DType.BFloat16 ? GemmPrecision.BFloat16 : be.AllowTf32 ? GemmPrecision.TensorFloat32 : GemmPrecision.Float32;
        be.BlasLt.Matmul(false, true, (int)rows, outFeatures, inFeatures, 1f, x.DevicePointer, weight.DevicePointer, beta, y.DevicePointer,
            bias.DevicePointer, precision, GemmEpilogue.Bias);
    }
}
