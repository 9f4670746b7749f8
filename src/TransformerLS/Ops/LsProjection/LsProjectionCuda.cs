using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LsProjectionParams in kernels/ls_projection/ls_projection.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LsProjectionParams
{
    public ulong S, K, V, Mask, ColMax, ColSum, KBarAcc, VBarAcc, DKBar, DVBar, ColDot, DK, DV, DS;
    public int B, H, N, D, R, Accumulate, Phase;
}

static class LsProjectionCuda
{
    const string File = "ls_projection/ls_projection.cu";
    const int Threads = 256; // the kernels stride by blockDim: the launcher's choice

    /// <summary>Tokens per block, read from the module (TLS_EXPORT): the kernel is the one source.</summary>
    static int TChunk(CudaBackend be) => be.Constant(File, "ls_projection_tchunk");

    static LsProjectionParams Params(LsProjectionGeometry g, Tensor s, Tensor k, Tensor v, Tensor? mask, Tensor colmax, Tensor colsum) => new()
    {
        S = s.DevicePointer, K = k.DevicePointer, V = v.DevicePointer, Mask = mask?.DevicePointer ?? 0,
        ColMax = colmax.DevicePointer, ColSum = colsum.DevicePointer, B = g.B, H = g.H, N = g.N, D = g.D, R = g.R,
    };

    static Dim3 Chunks(LsProjectionGeometry g, int tchunk) => new((uint)((g.N + tchunk - 1) / tchunk), (uint)g.H, (uint)g.B);

    /// <summary>The kernel's carve-up as the kernel file exports it (one source), checked against the device's limit.</summary>
    static uint SharedBytes(CudaBackend be, LsProjectionGeometry g, bool backward)
    {
        long bytes = backward
            ? be.Constant(File, "ls_projection_bwd_smem_fixed") + (long)be.Constant(File, "ls_projection_bwd_smem_per_d") * g.D
            : (long)be.Constant(File, "ls_projection_compress_smem_per_r") * g.R + (long)be.Constant(File, "ls_projection_compress_smem_per_d") * g.D;
        if (bytes > be.Context.Device.MaxSharedMemoryPerBlockOptin)
            throw new ArgumentOutOfRangeException("kbar", $"r={g.R}, d={g.D}",
                $"the CUDA projection needs {bytes} bytes of shared memory for r={g.R}, d={g.D}; the device allows {be.Context.Device.MaxSharedMemoryPerBlockOptin}");
        return (uint)bytes;
    }

    public static void Forward(CudaBackend be, LsProjectionGeometry g, Tensor s, Tensor k, Tensor v, Tensor? mask, Tensor kbar, Tensor vbar, Tensor colmax, Tensor colsum)
    {
        var (tchunk, smem) = (TChunk(be), SharedBytes(be, g, backward: false));
        var f32 = k.DType == DType.Float32;
        var p = Params(g, s, k, v, mask, colmax, colsum);
        be.Kernel(File, f32 ? "ls_projection_stats_f32" : "ls_projection_stats_bf16")
            .Launch(new Dim3((uint)((g.H * g.R + 127) / 128), (uint)g.B), 128, 0, be.Stream, p);
        // K̄ and V̄ sum partial products over sequence chunks atomically, in fp32.
        using var sums = new Float32Accumulators(be, kbar, vbar);
        p.KBarAcc = sums.P0;
        p.VBarAcc = sums.P1;
        be.Kernel(File, f32 ? "ls_projection_compress_f32" : "ls_projection_compress_bf16").Launch(Chunks(g, tchunk), Threads, smem, be.Stream, p);
        sums.Complete();
    }

    public static void Backward(CudaBackend be, LsProjectionGeometry g, Tensor s, Tensor k, Tensor v, Tensor? mask, Tensor colmax, Tensor colsum,
        Tensor dkbar, Tensor dvbar, Tensor ds, Tensor dk, Tensor dv, bool accumulate)
    {
        var (tchunk, smem) = (TChunk(be), SharedBytes(be, g, backward: true));
        var p = Params(g, s, k, v, mask, colmax, colsum);
        p.DKBar = dkbar.DevicePointer; p.DVBar = dvbar.DevicePointer; p.DK = dk.DevicePointer; p.DV = dv.DevicePointer;
        p.DS = ds.DevicePointer; p.Accumulate = accumulate ? 1 : 0;
        var bytes = LsProjection.BackwardWorkspace(be.Device, dkbar.Shape); // a double per column
        p.ColDot = be.Context.Allocator.Allocate(bytes);
        try
        {
            CudaMemory.Fill32(be.Stream, p.ColDot, 0, bytes / 4);
            var kernel = be.Kernel(File, k.DType == DType.Float32 ? "ls_projection_bwd_f32" : "ls_projection_bwd_bf16");
            kernel.Launch(Chunks(g, tchunk), Threads, smem, be.Stream, p);
            p.Phase = 1;
            kernel.Launch(Chunks(g, tchunk), Threads, smem, be.Stream, p);
        }
        finally
        {
            be.Context.Allocator.Free(p.ColDot, bytes);
        }
    }
}
