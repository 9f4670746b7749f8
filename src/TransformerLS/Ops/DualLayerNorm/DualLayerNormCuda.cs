using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of DualLayerNormParams in kernels/dual_layer_norm/dual_layer_norm.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct DualLayerNormParams
{
    public ulong X0, X1, Y0, Y1, Dy0, Dy1, Dx0, Dx1, Gamma, Beta, Mean, Rstd, DGamma, DBeta, Partial;
    public int S, B, H, T, D, TokenMajor;
    public float Eps;
    public int Groups;
}

static class DualLayerNormCuda
{
    const string File = "dual_layer_norm/dual_layer_norm.cu";
    const int RowsPerBlock = 4; // one warp per token row

    // The row-in-registers kernels (kernels/common/row_vectors.cuh), by dtype and vectors per lane (1-4).
    static readonly string[] ForwardRows = ["dual_layer_norm_fwd_rows_v1_f32", "dual_layer_norm_fwd_rows_v2_f32", "dual_layer_norm_fwd_rows_v3_f32", "dual_layer_norm_fwd_rows_v4_f32",
        "dual_layer_norm_fwd_rows_v1_bf16", "dual_layer_norm_fwd_rows_v2_bf16", "dual_layer_norm_fwd_rows_v3_bf16", "dual_layer_norm_fwd_rows_v4_bf16"];
    static readonly string[] BackwardRows = ["dual_layer_norm_bwd_rows_v1_f32", "dual_layer_norm_bwd_rows_v2_f32", "dual_layer_norm_bwd_rows_v3_f32", "dual_layer_norm_bwd_rows_v4_f32",
        "dual_layer_norm_bwd_rows_v1_bf16", "dual_layer_norm_bwd_rows_v2_bf16", "dual_layer_norm_bwd_rows_v3_bf16", "dual_layer_norm_bwd_rows_v4_bf16"];

    static DualLayerNormParams Params(DualLayerNormGeometry g) => new() { S = g.S, B = g.B, H = g.H, T = g.T, D = g.D, TokenMajor = g.TokenMajor ? 1 : 0 };

    static uint RowBlocks(DualLayerNormGeometry g) => (uint)(((long)g.S * g.Rows + RowsPerBlock - 1) / RowsPerBlock);

    public static void Forward(CudaBackend be, DualLayerNormGeometry g, Tensor xk, Tensor? xv, Tensor gamma, Tensor beta, Tensor yk, Tensor? yv, Tensor mean, Tensor rstd, float eps)
    {
        var p = Params(g);
        p.X0 = xk.DevicePointer; p.X1 = xv?.DevicePointer ?? 0; p.Y0 = yk.DevicePointer; p.Y1 = yv?.DevicePointer ?? 0;
        p.Gamma = gamma.DevicePointer; p.Beta = beta.DevicePointer; p.Mean = mean.DevicePointer; p.Rstd = rstd.DevicePointer; p.Eps = eps;
        var rowsKernel = RowVectors.Kernel(ForwardRows, xk.DType, g.Channels, g.D, xk, xv, yk, yv, gamma, beta);
        if (rowsKernel is null)
            be.Kernel(File, xk.DType == DType.Float32 ? "dual_layer_norm_fwd_f32" : "dual_layer_norm_fwd_bf16").Launch(RowBlocks(g), 32 * RowsPerBlock, 0, be.Stream, p);
        else
            be.Kernel(File, rowsKernel).Launch(RowVectors.Blocks(be, File, (long)g.S * g.Rows, RowsPerBlock), 32 * RowsPerBlock, 0, be.Stream, p);
    }

    public static void Backward(CudaBackend be, DualLayerNormGeometry g, Tensor dyk, Tensor? dyv, Tensor xk, Tensor? xv, Tensor gamma, Tensor mean, Tensor rstd,
        Tensor dxk, Tensor? dxv, Tensor dgamma, Tensor dbeta)
    {
        var p = Params(g);
        p.X0 = xk.DevicePointer; p.X1 = xv?.DevicePointer ?? 0; p.Dy0 = dyk.DevicePointer; p.Dy1 = dyv?.DevicePointer ?? 0;
        p.Dx0 = dxk.DevicePointer; p.Dx1 = dxv?.DevicePointer ?? 0; p.Gamma = gamma.DevicePointer; p.Mean = mean.DevicePointer; p.Rstd = rstd.DevicePointer;
        p.DGamma = dgamma.DevicePointer; p.DBeta = dbeta.DevicePointer;
        var f32 = xk.DType == DType.Float32;
        var rowsKernel = RowVectors.Kernel(BackwardRows, xk.DType, g.Channels, g.D, xk, xv, dyk, dyv, dxk, dxv, gamma);
        if (rowsKernel is null)
            be.Kernel(File, f32 ? "dual_layer_norm_bwd_input_f32" : "dual_layer_norm_bwd_input_bf16").Launch(RowBlocks(g), 32 * RowsPerBlock, 0, be.Stream, p);
        // dγ, dβ over K and V together: per-group partial sums into scratch, then the groups in order (deterministic).
        long rows = (long)g.S * g.Rows;
        p.Groups = ColumnGroups.Of(rows);
        var bytes = ColumnGroups.ScratchBytes(be.Device, rows, g.Channels);
        p.Partial = be.Context.Allocator.Allocate(bytes);
        try
        {
            if (rowsKernel is null)
                be.Kernel(File, f32 ? "dual_layer_norm_bwd_params_f32" : "dual_layer_norm_bwd_params_bf16")
                    .Launch(new Dim3((uint)((g.Channels + 31) / 32), (uint)p.Groups), new Dim3(32, 8), 0, be.Stream, p);
            else // dx and the partial sums in one pass over x and dy
                be.Kernel(File, rowsKernel).Launch((uint)p.Groups, (uint)be.Constant(File, "dual_layer_norm_bwd_rows_threads"), 0, be.Stream, p);
            be.Kernel(File, f32 ? "dual_layer_norm_bwd_params_sum_f32" : "dual_layer_norm_bwd_params_sum_bf16")
                .Launch((uint)((g.Channels + 31) / 32), new Dim3(32, 8), 0, be.Stream, p);
        }
        finally { be.Context.Allocator.Free(p.Partial, bytes); }
    }
}
