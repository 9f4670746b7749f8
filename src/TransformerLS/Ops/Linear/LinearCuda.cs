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

    /// <summary>
    /// dW (+)= dyᵀ·x and db (+)= Σ_rows dy as one cuBLASLt GEMM whose epilogue reduces dy over the GEMM's k (the rows) while its tiles
    /// stream through: no separate column sum. The epilogue writes db, so with <paramref name="accumulate"/> it writes a [out] fp32
    /// scratch that is then added into an fp32 db (one rounding, as the column sum's). False (nothing done) where the types, shapes
    /// or the heuristic rule it out; the caller then takes the column sum and the plain GEMM.
    /// </summary>
    public static bool WeightAndBiasGrad(CudaBackend be, Tensor dy, Tensor x, Tensor dweight, Tensor dbias, bool accumulate)
    {
        int rows = dy.Shape[0], outFeatures = dy.Shape[1], inFeatures = x.Shape[1];
        if (rows == 0 || outFeatures == 0 || inFeatures == 0 || dy.DType != x.DType || dweight.DType != dbias.DType) return false;
        if (dweight.Shape.Rank != 2 || dweight.Shape[0] != outFeatures || dweight.Shape[1] != inFeatures || dbias.Count != outFeatures) return false;
        // An accumulating bf16 db would round twice (the scratch, then the sum): the column sum rounds once.
        if (accumulate && dbias.DType != DType.Float32) return false;
        var precision = dy.DType == DType.BFloat16 ? (dweight.DType == DType.Float32 ? GemmPrecision.BFloat16ToFloat32 : GemmPrecision.BFloat16)
            : dweight.DType == DType.Float32 ? (be.AllowTf32 ? GemmPrecision.TensorFloat32 : GemmPrecision.Float32) : (GemmPrecision?)null;
        if (precision is null) return false;
        if (!accumulate)
            return be.BlasLt.TryMatmul(true, false, outFeatures, inFeatures, rows, 1f, dy.DevicePointer, x.DevicePointer, 0f, dweight.DevicePointer,
                dbias.DevicePointer, precision.Value, GemmEpilogue.BiasGradient);
        using var sum = be.Empty(new Shape(outFeatures), DType.Float32);
        if (!be.BlasLt.TryMatmul(true, false, outFeatures, inFeatures, rows, 1f, dy.DevicePointer, x.DevicePointer, 1f, dweight.DevicePointer,
                sum.DevicePointer, precision.Value, GemmEpilogue.BiasGradient)) return false;
        Elementwise.AddTo(be, sum, dbias);
        return true;
    }
}
