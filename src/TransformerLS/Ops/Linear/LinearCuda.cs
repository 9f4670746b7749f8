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

    /// <summary>Scratch for the epilogue's bias gradient when it is added into an accumulating one: [out] fp32 (or bf16).</summary>
    public static long BiasScratchBytes(Device device, long outFeatures) => device.Kind != DeviceKind.Cuda ? 0 : 4 * outFeatures;

    /// <summary>
    /// dW (+)= dyᵀ·x with db (+)= Σ_rows dy in the same cuBLASLt GEMM (its bias-gradient epilogue reduces dy over the GEMM's k,
    /// the rows, in fp32, without reading dy again). The epilogue writes db; accumulating, it writes a scratch row that one
    /// axpby adds into db. False, with nothing launched, where the library has no such algorithm (types, layout) or db's
    /// dtype is not dW's; the caller then sums the columns itself.
    /// </summary>
    public static bool TryBackwardWeightAndBias(CudaBackend be, MatMulGeometry g, Tensor dy, Tensor x, Tensor dweight, Tensor dbias, bool accumulate)
    {
        if (g.Batch != 1 || g.K == 0 || g.M == 0 || g.N == 0 || dbias.DType != dweight.DType) return false;
        var precision = dy.DType == DType.BFloat16 ? (dweight.DType == DType.Float32 ? GemmPrecision.BFloat16ToFloat32 : GemmPrecision.BFloat16)
            : be.AllowTf32 ? GemmPrecision.TensorFloat32 : GemmPrecision.Float32;
        if (!accumulate)
            return be.BlasLt.TryMatmul(true, false, g.M, g.N, g.K, 1f, dy.DevicePointer, x.DevicePointer, 0f, dweight.DevicePointer,
                dbias.DevicePointer, precision, GemmEpilogue.BiasGradientA);
        var bytes = BiasScratchBytes(be.Device, g.M);
        var scratch = be.Context.Allocator.Allocate(bytes);
        try
        {
            if (!be.BlasLt.TryMatmul(true, false, g.M, g.N, g.K, 1f, dy.DevicePointer, x.DevicePointer, 1f, dweight.DevicePointer,
                    scratch, precision, GemmEpilogue.BiasGradientA)) return false;
            ElementwiseCuda.AddInto(be, dbias.DType, scratch, dbias.DevicePointer, dbias.Count);
            return true;
        }
        finally
        {
            be.Context.Allocator.Free(scratch, bytes);
        }
    }
}
