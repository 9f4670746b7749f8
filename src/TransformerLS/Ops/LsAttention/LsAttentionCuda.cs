using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LsAttentionParams in kernels/ls_attention/ls_attention.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LsAttentionParams
{
    public ulong Q, K, V, KBar, VBar, Mask, O, Lse, DOut, DQ, DK, DV, DKBar, DVBar;
    public int B, H, N, D, W, R, E, Chunks;
    public float Scale;
}

/// <summary>
/// float32 runs kernels/ls_attention/ls_attention.cu (CUDA cores); bfloat16 runs kernels/ls_attention/ls_attention_mma.cu
/// (tensor cores, one instantiation per head dim).
/// </summary>
static class LsAttentionCuda
{
    const string File = "ls_attention/ls_attention.cu", MmaFile = "ls_attention/ls_attention_mma.cu";
    static readonly string[] MmaForward = ["ls_attention_fwd_mma_d32", "ls_attention_fwd_mma_d64", "ls_attention_fwd_mma_d96", "ls_attention_fwd_mma_d128"];
    static readonly string[] MmaBackward = ["ls_attention_bwd_mma_d32", "ls_attention_bwd_mma_d64", "ls_attention_bwd_mma_d96", "ls_attention_bwd_mma_d128"];

    /// <summary>A kernel's block: QB queries, Threads threads; read from its module (TLS_EXPORT), so the kernel is the one source.</summary>
    readonly record struct Tiles(int QB, int Threads);

    static Tiles TilesOf(CudaBackend be, Tensor q) => UsesMma(q)
        ? new(be.Constant(MmaFile, "ls_attention_mma_qb"), be.Constant(MmaFile, "ls_attention_mma_threads"))
        : new(be.Constant(File, "ls_attention_f32_qb"), be.Constant(File, "ls_attention_f32_threads"));

    static void CheckHeadDim(LsAttentionGeometry g)
    {
        if (g.D % 32 != 0 || g.D > 128)
            throw new ArgumentOutOfRangeException("q", g.D, "the CUDA LS attention supports head dims 32, 64, 96 and 128 (d % 32 == 0, d <= 128)");
    }

    static LsAttentionParams Params(LsAttentionGeometry g, Tiles t, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask, Tensor o, Tensor lse) => new()
    {
        Q = q.DevicePointer, K = k.DevicePointer, V = v.DevicePointer, KBar = kbar.DevicePointer, VBar = vbar.DevicePointer,
        Mask = mask?.DevicePointer ?? 0, O = o.DevicePointer, Lse = lse.DevicePointer,
        B = g.B, H = g.H, N = g.N, D = g.D, W = g.W, R = g.R, E = g.E, Chunks = Chunks(g, t), Scale = g.Scale,
    };

    static bool UsesMma(Tensor q) => q.DType == DType.BFloat16;

    /// <summary>Query chunks per segment; the kernel splits blockIdx.x by the same number.</summary>
    static int Chunks(LsAttentionGeometry g, Tiles t) => (g.W + t.QB - 1) / t.QB;

    static Dim3 Grid(LsAttentionGeometry g, Tiles t) => new((uint)(g.Segments * Chunks(g, t)), 1, (uint)(g.B * g.H));

    /// <summary>Dynamic shared memory of the kernel's carve-up, fixed + per_d·d, as the kernel file exports it (one source).</summary>
    static uint Shared(CudaBackend be, LsAttentionGeometry g, Tensor q, bool backward) => (UsesMma(q), backward) switch
    {
        (true, false) => (uint)(be.Constant(MmaFile, "ls_attention_fwd_mma_smem_fixed") + be.Constant(MmaFile, "ls_attention_fwd_mma_smem_per_d") * g.D),
        (true, true) => (uint)(be.Constant(MmaFile, "ls_attention_bwd_mma_smem_fixed") + be.Constant(MmaFile, "ls_attention_bwd_mma_smem_per_d") * g.D),
        (false, false) => (uint)(be.Constant(File, "ls_attention_fwd_f32_smem_fixed") + be.Constant(File, "ls_attention_fwd_f32_smem_per_d") * g.D),
        (false, true) => (uint)(be.Constant(File, "ls_attention_bwd_f32_smem_fixed") + be.Constant(File, "ls_attention_bwd_f32_smem_per_d") * g.D),
    };

    public static void Forward(CudaBackend be, LsAttentionGeometry g, LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask, Tensor o, Tensor lse)
    {
        CheckHeadDim(g);
        var t = TilesOf(be, q);
        var p = Params(g, t, q, k, v, kbar, vbar, mask, o, lse);
        if (UsesMma(q))
            be.Kernel(MmaFile, MmaForward[g.D / 32 - 1]).Launch(Grid(g, t), (uint)t.Threads, Shared(be, g, q, false), be.Stream, p);
        else
            be.Kernel(File, "ls_attention_fwd_f32").Launch(Grid(g, t), (uint)t.Threads, Shared(be, g, q, false), be.Stream, p);
    }

    public static void Backward(CudaBackend be, LsAttentionGeometry g, LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask,
        Tensor o, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv, Tensor dkbar, Tensor dvbar)
    {
        CheckHeadDim(g);
        // Key gradients accumulate atomically in fp32.
        using var grads = new Float32Accumulators(be, dk, dv, dkbar, dvbar);
        var t = TilesOf(be, q);
        var p = Params(g, t, q, k, v, kbar, vbar, mask, o, lse);
        p.DOut = dout.DevicePointer; p.DQ = dq.DevicePointer; p.DK = grads.P0; p.DV = grads.P1; p.DKBar = grads.P2; p.DVBar = grads.P3;
        if (UsesMma(q))
            be.Kernel(MmaFile, MmaBackward[g.D / 32 - 1]).Launch(Grid(g, t), (uint)t.Threads, Shared(be, g, q, true), be.Stream, p);
        else
            be.Kernel(File, "ls_attention_bwd_f32").Launch(Grid(g, t), (uint)t.Threads, Shared(be, g, q, true), be.Stream, p);
        grads.Complete();
    }
}
