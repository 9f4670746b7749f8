using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LsProjectionParams in kernels/ls_projection/ls_projection.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LsProjectionParams
{
    public ulong S, K, V, Mask, ColMax, ColSum, KBar, VBar, PMax, PSum, KPart, VPart, DKBar, DVBar, CPart, ColDot, DK, DV, DS, KBar32, VBar32;
    public int B, H, N, D, R, Groups, GroupTokens, Accumulate, Phase;
}

/// <summary>
/// The scratch of one projection call on the GPU (<see cref="ScratchPieces"/>): forward, per token group the column max
/// (float) and sum (double) [B, G, H·r] and the partial K̄, V̄ [G, B, H, r, d] fp32; backward, per group Σ P·dP [B, G, H·r]
/// and its sum [B, H·r], doubles.
/// </summary>
static class LsProjectionScratch
{
    public static ScratchPieces Forward(Shape k, Shape kbar)
    {
        var groups = TokenGroups.Of(k[2]).Groups;
        long columns = (long)kbar[0] * kbar[1] * kbar[2];
        return new(4 * groups * columns, 8 * groups * columns, 4 * groups * kbar.Count, 4 * groups * kbar.Count);
    }

    public static ScratchPieces Backward(Shape k, Shape kbar)
    {
        var groups = TokenGroups.Of(k[2]).Groups;
        long columns = (long)kbar[0] * kbar[1] * kbar[2];
        return new(8 * groups * columns, 8 * columns);
    }
}

/// <summary>
/// Launchers of kernels/ls_projection/: every sum over the sequence in two fixed-order stages (no atomics). The products
/// run on the tensor cores (ls_projection_mma.cu) for bf16 with d = 16·k ≤ 128, on the CUDA cores otherwise; the
/// tensor-core forward reads the scores once (online softmax per group), the CUDA-core one twice (statistics first). Given the
/// forward's unrounded landmarks, the tensor-core backward is one pass over the sequence instead of two.
/// </summary>
static class LsProjectionCuda
{
    const string File = "ls_projection/ls_projection.cu", MmaFile = "ls_projection/ls_projection_mma.cu";
    static readonly string[] MmaCompress = ["ls_projection_compress_mma_d16", "ls_projection_compress_mma_d32", "ls_projection_compress_mma_d48",
        "ls_projection_compress_mma_d64", "ls_projection_compress_mma_d80", "ls_projection_compress_mma_d96", "ls_projection_compress_mma_d112",
        "ls_projection_compress_mma_d128"];
    static readonly string[] MmaBackward = ["ls_projection_bwd_mma_d16", "ls_projection_bwd_mma_d32", "ls_projection_bwd_mma_d48",
        "ls_projection_bwd_mma_d64", "ls_projection_bwd_mma_d80", "ls_projection_bwd_mma_d96", "ls_projection_bwd_mma_d112", "ls_projection_bwd_mma_d128"];

    static bool UsesMma(Tensor k, LsProjectionGeometry g) => k.DType == DType.BFloat16 && g.D % 16 == 0 && g.D <= 128;
    const uint Flat = 256; // threads of the one-thread-per-column stage-2 kernels (they take any block size)

    static string Name(Tensor k, string f32, string bf16) => k.DType == DType.Float32 ? f32 : bf16;

    static LsProjectionParams Params(LsProjectionGeometry g, Tensor s, Tensor k, Tensor v, Tensor? mask, Tensor colmax, Tensor colsum)
    {
        var (groups, tokens) = TokenGroups.Of(g.N);
        return new()
        {
            S = s.DevicePointer, K = k.DevicePointer, V = v.DevicePointer, Mask = mask?.DevicePointer ?? 0,
            ColMax = colmax.DevicePointer, ColSum = colsum.DevicePointer, B = g.B, H = g.H, N = g.N, D = g.D, R = g.R,
            Groups = groups, GroupTokens = tokens,
        };
    }

    /// <summary>Blocks (group, h, b) of the compress and backward kernels.</summary>
    static Dim3 GroupGrid(LsProjectionGeometry g, in LsProjectionParams p) => new((uint)p.Groups, (uint)g.H, (uint)g.B);

    /// <summary>Threads of a compress or backward block, as its module exports them (TLS_EXPORT).</summary>
    static uint Threads(CudaBackend be, bool mma) =>
        (uint)(mma ? be.Constant(MmaFile, "ls_projection_mma_threads") : be.Constant(File, "ls_projection_threads"));

    static Dim3 Columns(LsProjectionGeometry g) => (uint)(((long)g.B * g.H * g.R + Flat - 1) / Flat);

    /// <summary>Blocks of Flat threads for one warp per (b, column).</summary>
    static Dim3 ColumnWarps(LsProjectionGeometry g) => (uint)(((long)g.B * g.H * g.R * 32 + Flat - 1) / Flat);

    /// <summary>K̄ at landmarks32's start, V̄ half way: the unrounded landmarks [2, B, H, r, d] fp32, or (0, 0).</summary>
    static (ulong, ulong) Halves(Tensor? landmarks32) =>
        landmarks32 is null ? (0, 0) : (landmarks32.DevicePointer, landmarks32.DevicePointer + (ulong)(landmarks32.Count / 2 * sizeof(float)));

    public static void Forward(CudaBackend be, LsProjectionGeometry g, Tensor s, Tensor k, Tensor v, Tensor? mask, Tensor kbar, Tensor vbar, Tensor colmax, Tensor colsum,
        Tensor? landmarks32)
    {
        var p = Params(g, s, k, v, mask, colmax, colsum);
        p.KBar = kbar.DevicePointer; p.VBar = vbar.DevicePointer;
        (p.KBar32, p.VBar32) = Halves(landmarks32);
        var scratch = LsProjectionScratch.Forward(k.Shape, kbar.Shape);
        var block = be.Context.Allocator.Allocate(scratch.Bytes);
        try
        {
            (p.PMax, p.PSum, p.KPart, p.VPart) = (scratch.At(block, 0), scratch.At(block, 1), scratch.At(block, 2), scratch.At(block, 3));
            var statsSum = be.Kernel(File, Name(k, "ls_projection_stats_sum_f32", "ls_projection_stats_sum_bf16"));
            if (UsesMma(k, g))
            {
                // One pass: each group's statistics come with its partials (relative to the group's own max), merged after.
                be.Kernel(MmaFile, MmaCompress[g.D / 16 - 1]).Launch(GroupGrid(g, p), Threads(be, true),
                    (uint)be.Constant(MmaFile, "ls_projection_compress_mma_smem", g.D / 16 - 1), be.Stream, p);
                statsSum.Launch(ColumnWarps(g), Flat, 0, be.Stream, p);
                // 4 elements a thread (d is a multiple of 16 here), 32 threads of them a block row.
                be.Kernel(File, "ls_projection_compress_sum_scaled_bf16").Launch((uint)((kbar.Count + 127) / 128), new Dim3(32, 8), 0, be.Stream, p);
            }
            else
            {
                // Two passes: the statistics first, then the partials of the normalized P.
                var statsColumns = be.Constant(File, "ls_projection_stats_columns");
                be.Kernel(File, Name(k, "ls_projection_stats_f32", "ls_projection_stats_bf16")).Launch(new Dim3((uint)((g.H * g.R + statsColumns - 1) / statsColumns), (uint)p.Groups, (uint)g.B), new Dim3(32, 8), 0, be.Stream, p);
                statsSum.Launch(ColumnWarps(g), Flat, 0, be.Stream, p);
                be.Kernel(File, Name(k, "ls_projection_compress_f32", "ls_projection_compress_bf16")).Launch(GroupGrid(g, p), Threads(be, false), 0, be.Stream, p);
                var sums = (uint)Math.Clamp(((long)kbar.Count + Flat - 1) / Flat, 1, 65535L * 16);
                be.Kernel(File, Name(k, "ls_projection_compress_sum_f32", "ls_projection_compress_sum_bf16")).Launch(sums, Flat, 0, be.Stream, p);
            }
        }
        finally
        {
            be.Context.Allocator.Free(block, scratch.Bytes);
        }
    }

    public static void Backward(CudaBackend be, LsProjectionGeometry g, Tensor s, Tensor k, Tensor v, Tensor? mask, Tensor colmax, Tensor colsum,
        Tensor dkbar, Tensor dvbar, Tensor ds, Tensor dk, Tensor dv, bool accumulate, Tensor? landmarks32)
    {
        var p = Params(g, s, k, v, mask, colmax, colsum);
        p.DKBar = dkbar.DevicePointer; p.DVBar = dvbar.DevicePointer; p.DK = dk.DevicePointer; p.DV = dv.DevicePointer;
        p.DS = ds.DevicePointer; p.Accumulate = accumulate ? 1 : 0;
        (p.KBar32, p.VBar32) = Halves(landmarks32);
        var mma = UsesMma(k, g);
        var kernel = mma ? be.Kernel(MmaFile, MmaBackward[g.D / 16 - 1]) : be.Kernel(File, Name(k, "ls_projection_bwd_f32", "ls_projection_bwd_bf16"));
        var shared = mma
            ? be.Constant(MmaFile, "ls_projection_bwd_mma_smem", g.D / 16 - 1) + (long)be.Constant(MmaFile, "ls_projection_bwd_mma_smem_per_r") * g.R
            : (long)be.Constant(File, "ls_projection_bwd_smem_per_r") * g.R;
        // Named by the argument that sets it (r); static shared memory (the CUDA-core kernel's tiles) counts too.
        if (shared + kernel.StaticSharedBytes > be.Context.Device.MaxSharedMemoryPerBlockOptin)
            throw new ArgumentOutOfRangeException("dkbar", $"r={g.R}",
                $"the CUDA projection backward needs {shared + kernel.StaticSharedBytes} bytes of shared memory for r={g.R}, d={g.D}; " +
                $"the device allows {be.Context.Device.MaxSharedMemoryPerBlockOptin}");
        var scratch = LsProjectionScratch.Backward(k.Shape, dkbar.Shape);
        var block = be.Context.Allocator.Allocate(scratch.Bytes);
        try
        {
            (p.CPart, p.ColDot) = (scratch.At(block, 0), scratch.At(block, 1));
            var (grid, threads) = (GroupGrid(g, p), Threads(be, mma));
            if (mma && landmarks32 is not null)
            {
                // One pass: Σ_t P·dP per column from the identity K̄·dK̄ + V̄·dV̄, then dK, dV and dS together (phase 2).
                be.Kernel(File, "ls_projection_coldot_landmarks_bf16").Launch((uint)(((long)g.B * g.H * g.R * 32 + Flat - 1) / Flat), Flat, 0, be.Stream, p);
                p.Phase = 2;
                kernel.Launch(grid, threads, (uint)shared, be.Stream, p);
                return;
            }
            kernel.Launch(grid, threads, (uint)shared, be.Stream, p);
            be.Kernel(File, Name(k, "ls_projection_coldot_f32", "ls_projection_coldot_bf16")).Launch(Columns(g), Flat, 0, be.Stream, p);
            p.Phase = 1;
            kernel.Launch(grid, threads, (uint)shared, be.Stream, p);
        }
        finally
        {
            be.Context.Allocator.Free(block, scratch.Bytes);
        }
    }
}
