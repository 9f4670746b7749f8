using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LayerNormParams in kernels/layer_norm/layer_norm.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LayerNormParams
{
    public ulong X, Gamma, Beta, Y, Mean, Rstd, Dy, Dx, DGamma, DBeta, Partial;
    public int Rows, Cols;
    public float Eps;
    public int Accumulate, Groups;
}

static class LayerNormCuda
{
    const string File = "layer_norm/layer_norm.cu";
    const int RowsPerBlock = 4; // one warp per row

    // The row-in-registers kernels (kernels/common/row_vectors.cuh), by dtype and vectors per lane (1-4).
    static readonly string[] ForwardRows = ["layer_norm_fwd_rows_v1_f32", "layer_norm_fwd_rows_v2_f32", "layer_norm_fwd_rows_v3_f32", "layer_norm_fwd_rows_v4_f32",
        "layer_norm_fwd_rows_v1_bf16", "layer_norm_fwd_rows_v2_bf16", "layer_norm_fwd_rows_v3_bf16", "layer_norm_fwd_rows_v4_bf16"];
    static readonly string[] BackwardRows = ["layer_norm_bwd_rows_v1_f32", "layer_norm_bwd_rows_v2_f32", "layer_norm_bwd_rows_v3_f32", "layer_norm_bwd_rows_v4_f32",
        "layer_norm_bwd_rows_v1_bf16", "layer_norm_bwd_rows_v2_bf16", "layer_norm_bwd_rows_v3_bf16", "layer_norm_bwd_rows_v4_bf16"];

    public static void Forward(CudaBackend be, int rows, int cols, Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor? mean, Tensor? rstd, float eps)
    {
        var p = new LayerNormParams
        {
            X = x.DevicePointer, Gamma = gamma.DevicePointer, Beta = beta.DevicePointer, Y = y.DevicePointer,
            Mean = mean?.DevicePointer ?? 0, Rstd = rstd?.DevicePointer ?? 0, Rows = rows, Cols = cols, Eps = eps,
        };
        var rowsKernel = RowVectors.Kernel(ForwardRows, x.DType, cols, x, y, gamma, beta);
        if (rowsKernel is null)
            be.Kernel(File, x.DType == DType.Float32 ? "layer_norm_fwd_f32" : "layer_norm_fwd_bf16")
                .Launch((uint)((rows + RowsPerBlock - 1) / RowsPerBlock), 32 * RowsPerBlock, 0, be.Stream, p);
        else
            be.Kernel(File, rowsKernel).Launch(RowVectors.Blocks(be, File, rows, RowsPerBlock), 32 * RowsPerBlock, 0, be.Stream, p);
    }

    public static void Backward(CudaBackend be, int rows, int cols, Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx, Tensor dgamma, Tensor dbeta, bool accumulate)
    {
        var p = new LayerNormParams
        {
            X = x.DevicePointer, Gamma = gamma.DevicePointer, Mean = mean.DevicePointer, Rstd = rstd.DevicePointer,
            Dy = dy.DevicePointer, Dx = dx.DevicePointer, DGamma = dgamma.DevicePointer, DBeta = dbeta.DevicePointer,
            Rows = rows, Cols = cols, Accumulate = accumulate ? 1 : 0, Groups = ColumnGroups.Of(rows),
        };
        var f32 = x.DType == DType.Float32;
        var rowsKernel = RowVectors.Kernel(BackwardRows, x.DType, cols, x, dy, dx, gamma);
        if (rowsKernel is null)
            be.Kernel(File, f32 ? "layer_norm_bwd_input_f32" : "layer_norm_bwd_input_bf16")
                .Launch((uint)((rows + RowsPerBlock - 1) / RowsPerBlock), 32 * RowsPerBlock, 0, be.Stream, p);
        // dγ, dβ: per-group partial sums into scratch, then the groups in order (deterministic; no atomics). The fused
        // kernel writes dx and the partial sums in one pass over x and dy.
        var bytes = ColumnGroups.ScratchBytes(be.Device, rows, cols);
        p.Partial = be.Context.Allocator.Allocate(bytes);
        try
        {
            if (rowsKernel is null)
                be.Kernel(File, f32 ? "layer_norm_bwd_params_f32" : "layer_norm_bwd_params_bf16")
                    .Launch(new Dim3((uint)((cols + 31) / 32), (uint)p.Groups), new Dim3(32, 8), 0, be.Stream, p);
            else
                be.Kernel(File, rowsKernel).Launch((uint)p.Groups, (uint)be.Constant(File, "layer_norm_bwd_rows_threads"), 0, be.Stream, p);
            be.Kernel(File, f32 ? "layer_norm_bwd_params_sum_f32" : "layer_norm_bwd_params_sum_bf16")
                .Launch((uint)((cols + 31) / 32), new Dim3(32, 8), 0, be.Stream, p);
        }
        finally { be.Context.Allocator.Free(p.Partial, bytes); }
    }
}
