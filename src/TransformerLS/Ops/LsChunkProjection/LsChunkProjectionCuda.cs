using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LsChunkProjectionParams in kernels/ls_chunk_projection/ls_chunk_projection.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LsChunkProjectionParams
{
    public ulong S, X, Mask, Y, Dy, Ds, Dx;
    public int B, H, T, D, R, L, Chunks, Accumulate;
}

static class LsChunkProjectionCuda
{
    const string File = "ls_chunk_projection/ls_chunk_projection.cu";
    const int Threads = 128;

    static LsChunkProjectionParams Params(LsChunkProjectionGeometry g, Tensor s, Tensor x, Tensor? mask) => new()
    {
        S = s.DevicePointer, X = x.DevicePointer, Mask = mask?.DevicePointer ?? 0,
        B = g.B, H = g.H, T = g.T, D = g.D, R = g.R, L = g.Lc, Chunks = g.Chunks,
    };

    /// <summary>The kernel's carve-up as the kernel file exports it (one source), checked against the device's limit.</summary>
    static uint SharedBytes(CudaBackend be, LsChunkProjectionGeometry g, bool backward)
    {
        long bytes = backward
            ? (long)be.Constant(File, "ls_chunk_projection_bwd_smem_per_lr") * g.Lc * g.R + (long)be.Constant(File, "ls_chunk_projection_bwd_smem_per_r") * g.R
            : (long)be.Constant(File, "ls_chunk_projection_fwd_smem_per_lr") * g.Lc * g.R + (long)be.Constant(File, "ls_chunk_projection_fwd_smem_per_r") * g.R;
        if (bytes > be.Context.Device.MaxSharedMemoryPerBlockOptin)
            throw new ArgumentOutOfRangeException("chunk", $"l={g.Lc}, r={g.R}",
                $"the CUDA chunk projection needs {bytes} bytes of shared memory for l·r = {g.Lc}·{g.R}; the device allows {be.Context.Device.MaxSharedMemoryPerBlockOptin}");
        return (uint)bytes;
    }

    static Dim3 Grid(LsChunkProjectionGeometry g) => new((uint)g.Chunks, (uint)g.H, (uint)g.B);

    public static void Forward(CudaBackend be, LsChunkProjectionGeometry g, int chunk, Tensor s, Tensor x, Tensor? mask, Tensor y)
    {
        var p = Params(g, s, x, mask);
        p.Y = y.DevicePointer;
        var smem = SharedBytes(be, g, backward: false);
        be.Kernel(File, x.DType == DType.Float32 ? "ls_chunk_projection_fwd_f32" : "ls_chunk_projection_fwd_bf16").Launch(Grid(g), Threads, smem, be.Stream, p);
    }

    public static void Backward(CudaBackend be, LsChunkProjectionGeometry g, int chunk, Tensor s, Tensor x, Tensor? mask, Tensor dy, Tensor ds, Tensor dx, bool accumulate)
    {
        var p = Params(g, s, x, mask);
        p.Dy = dy.DevicePointer; p.Ds = ds.DevicePointer; p.Dx = dx.DevicePointer; p.Accumulate = accumulate ? 1 : 0;
        var smem = SharedBytes(be, g, backward: true);
        be.Kernel(File, x.DType == DType.Float32 ? "ls_chunk_projection_bwd_f32" : "ls_chunk_projection_bwd_bf16").Launch(Grid(g), Threads, smem, be.Stream, p);
    }
}
