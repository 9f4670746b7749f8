using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LsCausalAttentionParams in kernels/ls_causal_attention/ls_causal_attention.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LsCausalAttentionParams
{
    public ulong Q, K, V, U, VB, Rel, KC, VC, RelC, Mask, O, Lse, DOut, DQ, DK, DV, DU, DVB, DRel, DKC, DVC, DRelC;
    public ulong Lse64, DuPart, DvbPart, DRelPart, DRelCPart;
    public int B, H, L, P, D, W, Lc, R, Mc, Nc;
    public int Tiles, Cpb;
    public float Scale;
}

/// <summary>
/// The CUDA-core backward's scratch (<see cref="ScratchPieces"/>): each query's log-sum-exp in double [B·H·L]; the du and
/// dv_bias partials [B·H, key tiles, d] then [B·H, G, δ tiles, d]; dR's [B·H, G, w, d]; dRc's [B·H, Nc, d] (fp32; G query
/// groups of the rel pass). Tile sizes are the kernel file's KT and REL_GROUP, checked against the module at launch.
/// </summary>
static class LsCausalSimtScratch
{
    public const int KeyTile = 32, RelGroup = 4096;

    /// <summary>From the shapes of q [B, H, L, d], k [B, H, P + L, d], rel [H, w, d] and kc [B, H, Nc, d].</summary>
    public static ScratchPieces Of(Shape q, Shape k, Shape rel, Shape kc)
    {
        long bh = (long)q[0] * q[1], L = q[2], d = q[3], w = rel[1], groups = (L + RelGroup - 1) / RelGroup;
        long ktiles = (k[2] + KeyTile - 1) / KeyTile, dtiles = (w + KeyTile - 1) / KeyTile;
        return new(8 * bh * L, 4 * bh * (ktiles + groups * dtiles) * d, 4 * bh * groups * w * d, 4 * bh * kc[2] * d);
    }
}

/// <summary>
/// float32, and bf16 at head dims off the tensor cores, run kernels/ls_causal_attention/ls_causal_attention.cu (CUDA cores: forward,
/// the backward's dQ pass) and ls_causal_attention_bwd.cu (the backward's key-side passes and their fixed-order sums:
/// deterministic, no float atomics); bfloat16 runs kernels/ls_causal_attention/ls_causal_attention_mma.cu (tensor cores, one
/// instantiation per head dim, 16 queries per warp and up to 4 warps a block, spanning several short chunks; its backward
/// still adds the key-side gradients atomically).
/// </summary>
static class LsCausalAttentionCuda
{
    const string File = "ls_causal_attention/ls_causal_attention.cu", MmaFile = "ls_causal_attention/ls_causal_attention_mma.cu";
    const string BwdFile = "ls_causal_attention/ls_causal_attention_bwd.cu";

    static readonly string[] MmaForward = ["ls_causal_attention_fwd_mma_d16", "ls_causal_attention_fwd_mma_d32", "ls_causal_attention_fwd_mma_d48", "ls_causal_attention_fwd_mma_d64", "ls_causal_attention_fwd_mma_d80", "ls_causal_attention_fwd_mma_d96", "ls_causal_attention_fwd_mma_d112", "ls_causal_attention_fwd_mma_d128"];
    static readonly string[] MmaBackward = ["ls_causal_attention_bwd_mma_d16", "ls_causal_attention_bwd_mma_d32", "ls_causal_attention_bwd_mma_d48", "ls_causal_attention_bwd_mma_d64", "ls_causal_attention_bwd_mma_d80", "ls_causal_attention_bwd_mma_d96", "ls_causal_attention_bwd_mma_d112", "ls_causal_attention_bwd_mma_d128"];

    /// <summary>A launch's block: QB queries on Threads threads, spanning Cpb whole chunks (1: inside one chunk). The CUDA-core kernel's
    /// is read from its module (TLS_EXPORT: the kernel is the one source); the mma blocks are 16 queries a warp, sized by the chunk.</summary>
    readonly record struct Tiles(int QB, int Threads, int Cpb);

    static Tiles TilesOf(CudaBackend be, LsCausalGeometry g, Tensor q)
    {
        if (!UsesMma(g, q)) return new(be.Constant(File, "ls_causal_attention_f32_qb"), be.Constant(File, "ls_causal_attention_f32_threads"), 1);
        var cpb = ChunksPerBlock(g);
        var warps = cpb > 1 ? cpb * g.Lc / 16 : Math.Min(4, (Math.Min(g.Lc, g.L) + 15) / 16);
        return new(16 * warps, 32 * warps, cpb);
    }

    static LsCausalAttentionParams Params(LsCausalGeometry g, Tiles t, in LsCausalInputs x, Tensor o, Tensor lse)
    {
        return new()
        {
            Q = x.Q.DevicePointer, K = x.K.DevicePointer, V = x.V.DevicePointer, U = x.U.DevicePointer, VB = x.VBias.DevicePointer,
            Rel = x.Rel.DevicePointer, KC = x.KC.DevicePointer, VC = x.VC.DevicePointer, RelC = x.RelC.DevicePointer,
            Mask = x.Mask?.DevicePointer ?? 0, O = o.DevicePointer, Lse = lse.DevicePointer,
            B = g.B, H = g.H, L = g.L, P = g.P, D = g.D, W = g.W, Lc = g.Lc, R = g.R, Mc = g.Mc, Nc = g.Nc,
            Tiles = QueryBlocks(g, t), Cpb = t.Cpb, Scale = g.Scale,
        };
    }

    /// <summary>bf16 at a tensor-core head dim (the tables above, by d / 16 − 1: the bidirectional kernels' rule); any other head
    /// dim, and float32, runs the CUDA-core kernel.</summary>
    static bool UsesMma(LsCausalGeometry g, Tensor q) => UsesMma(q.DType, g.D);

    internal static bool UsesMma(DType dtype, int d) => dtype == DType.BFloat16 && LsAttentionCuda.MmaHeadDim(d);

    /// <summary>Whole chunks an mma block spans (the kernel's cpb): as many as fill 64 queries when l is a multiple of 16 below 64
    /// (so every warp's 16 queries lie in one chunk), no more than the block has, and few enough that the compressed tile's
    /// shifted Rc rows ((cpb − 1)·r past the tile's) fit the qb + KT rows the kernel holds; else 1.</summary>
    static int ChunksPerBlock(LsCausalGeometry g)
    {
        if (g.Lc % 16 != 0 || g.Lc >= 64) return 1;
        var cpb = Math.Min(64 / g.Lc, g.BlockChunks);
        while (cpb > 1 && (cpb - 1) * g.R > cpb * g.Lc) cpb--;
        return cpb;
    }

    /// <summary>Query blocks per group of cpb chunks: a block never straddles two groups (with cpb = 1, two chunks).</summary>
    static int QueryBlocks(LsCausalGeometry g, Tiles t) => t.Cpb > 1 ? 1 : (Math.Min(g.Lc, g.L) + t.QB - 1) / t.QB;

    static Dim3 Grid(LsCausalGeometry g, Tiles t) => new((uint)((g.BlockChunks + t.Cpb - 1) / t.Cpb * QueryBlocks(g, t)), 1, (uint)(g.B * g.H));

    /// <summary>Dynamic shared memory of the mma kernels, from the table the kernel file exports by (warps, head dim) (one source).</summary>
    static uint MmaShared(CudaBackend be, LsCausalGeometry g, Tiles t, bool backward) =>
        (uint)be.Constant(MmaFile, backward ? "ls_causal_attention_bwd_mma_smem" : "ls_causal_attention_fwd_mma_smem", (t.QB / 16 - 1) * 8 + g.D / 16 - 1);

    public static void Forward(CudaBackend be, LsCausalGeometry g, LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse)
    {
        var t = TilesOf(be, g, x.Q);
        var p = Params(g, t, x, o, lse);
        if (UsesMma(g, x.Q))
            be.Kernel(MmaFile, MmaForward[g.D / 16 - 1]).Launch(Grid(g, t), (uint)t.Threads, MmaShared(be, g, t, false), be.Stream, p);
        else
            be.Kernel(File, x.Q.DType == DType.Float32 ? "ls_causal_attention_fwd_f32" : "ls_causal_attention_fwd_bf16").Launch(Grid(g, t), (uint)t.Threads, KernelShared.Checked(be, File, "ls_causal_attention_fwd_f32_smem_fixed", "ls_causal_attention_fwd_f32_smem_per_d", g.D, x.Q.DType, "causal LS attention forward"), be.Stream, p);
    }

    public static void Backward(CudaBackend be, LsCausalGeometry g, LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse, Tensor dout, in LsCausalGradients gr)
    {
        var t = TilesOf(be, g, x.Q);
        var p = Params(g, t, x, o, lse);
        p.DOut = dout.DevicePointer; p.DQ = gr.DQ.DevicePointer;
        if (!UsesMma(g, x.Q)) { BackwardSimt(be, g, t, p, x, gr); return; }
        // The tensor-core backward: everything but dq accumulates atomically in fp32.
        using var seq = new Float32Accumulators(be, gr.DK, gr.DV);
        using var cmp = new Float32Accumulators(be, gr.DKC, gr.DVC);
        using var bias = new Float32Accumulators(be, gr.DU, gr.DVBias);
        using var rel = new Float32Accumulators(be, gr.DRel, gr.DRelC);
        p.DK = seq.P0; p.DV = seq.P1; p.DKC = cmp.P0; p.DVC = cmp.P1; p.DU = bias.P0; p.DVB = bias.P1; p.DRel = rel.P0; p.DRelC = rel.P1;
        be.Kernel(MmaFile, MmaBackward[g.D / 16 - 1]).Launch(Grid(g, t), (uint)t.Threads, MmaShared(be, g, t, true), be.Stream, p);
        seq.Complete(); cmp.Complete(); bias.Complete(); rel.Complete();
    }

    /// <summary>
    /// The CUDA-core backward: the dQ pass (which also takes each query's log-sum-exp again in double), then the key-side passes
    /// over window keys, window offsets, compressed rows and compressed offsets, each gradient element written by one thread, and
    /// the sums over (b, h) of du, dv_bias, dR and dRc in a fixed order. Gradients are written in their own dtype, once.
    /// </summary>
    static void BackwardSimt(CudaBackend be, LsCausalGeometry g, Tiles t, LsCausalAttentionParams p, in LsCausalInputs x, in LsCausalGradients gr)
    {
        var (f32, dtype) = (x.Q.DType == DType.Float32, x.Q.DType);
        var kt = be.Constant(BwdFile, "ls_causal_attention_bwd_f32_kt");
        var group = be.Constant(BwdFile, "ls_causal_attention_bwd_f32_rel_group");
        if (kt != LsCausalSimtScratch.KeyTile || group != LsCausalSimtScratch.RelGroup)
            throw new InvalidOperationException($"{BwdFile} exports KT {kt} and REL_GROUP {group}; LsCausalSimtScratch plans {LsCausalSimtScratch.KeyTile} and {LsCausalSimtScratch.RelGroup}");
        // Shared memory checked before anything is allocated or launched.
        var dqSmem = KernelShared.Checked(be, File, "ls_causal_attention_bwd_dq_f32_smem_fixed", "ls_causal_attention_bwd_dq_f32_smem_per_d", g.D, dtype, "causal LS attention backward");
        var passSmem = KernelShared.Checked(be, BwdFile, "ls_causal_attention_bwd_keys_f32_smem_fixed", "ls_causal_attention_bwd_keys_f32_smem_per_d", g.D, dtype, "causal LS attention backward");
        var threads = (uint)be.Constant(BwdFile, "ls_causal_attention_bwd_f32_threads");
        p.DK = gr.DK.DevicePointer; p.DV = gr.DV.DevicePointer; p.DKC = gr.DKC.DevicePointer; p.DVC = gr.DVC.DevicePointer;
        p.DU = gr.DU.DevicePointer; p.DVB = gr.DVBias.DevicePointer; p.DRel = gr.DRel.DevicePointer; p.DRelC = gr.DRelC.DevicePointer;
        var scratch = LsCausalSimtScratch.Of(x.Q.Shape, x.K.Shape, x.Rel.Shape, x.KC.Shape);
        var block = be.Context.Allocator.Allocate(scratch.Bytes);
        try
        {
            long bh = (long)g.B * g.H, ktiles = (g.Keys + kt - 1) / kt;
            (p.Lse64, p.DuPart, p.DRelPart, p.DRelCPart) = (scratch.At(block, 0), scratch.At(block, 1), scratch.At(block, 2), scratch.At(block, 3));
            p.DvbPart = p.DuPart + (ulong)(4 * bh * ktiles * g.D);
            var z = (uint)bh;
            uint Columns(int n) => (uint)((n + kt - 1) / kt);
            be.Kernel(File, (f32 ? "ls_causal_attention_bwd_dq_f32" : "ls_causal_attention_bwd_dq_bf16")).Launch(Grid(g, t), (uint)t.Threads, dqSmem, be.Stream, p);
            be.Kernel(BwdFile, (f32 ? "ls_causal_attention_bwd_keys_f32" : "ls_causal_attention_bwd_keys_bf16")).Launch(new Dim3(Columns(g.Keys), 1, z), threads, passSmem, be.Stream, p);
            be.Kernel(BwdFile, (f32 ? "ls_causal_attention_bwd_rel_f32" : "ls_causal_attention_bwd_rel_bf16")).Launch(new Dim3(Columns(g.W), (uint)((g.L + group - 1) / group), z), threads, passSmem, be.Stream, p);
            be.Kernel(BwdFile, (f32 ? "ls_causal_attention_bwd_ckeys_f32" : "ls_causal_attention_bwd_ckeys_bf16")).Launch(new Dim3(Columns(g.Nc), 1, z), threads, passSmem, be.Stream, p);
            be.Kernel(BwdFile, (f32 ? "ls_causal_attention_bwd_crel_f32" : "ls_causal_attention_bwd_crel_bf16")).Launch(new Dim3(Columns(g.Nc), 1, z), threads, passSmem, be.Stream, p);
            var outputs = (long)g.H * (g.W + g.Nc + 2) * g.D;
            be.Kernel(BwdFile, (f32 ? "ls_causal_attention_bwd_sum_f32" : "ls_causal_attention_bwd_sum_bf16")).Launch((uint)Math.Clamp((outputs + 255) / 256, 1, 65535L * 16), 256, 0, be.Stream, p);
        }
        finally
        {
            be.Context.Allocator.Free(block, scratch.Bytes);
        }
    }
}
