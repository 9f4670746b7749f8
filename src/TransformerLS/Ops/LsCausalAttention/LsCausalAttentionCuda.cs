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
    public int B, H, L, P, D, W, Lc, R, Mc, Nc, Tiles;
    public float Scale;
}

/// <summary>
/// float32 runs kernels/ls_causal_attention/ls_causal_attention.cu (CUDA cores); bfloat16 runs kernels/ls_causal_attention/ls_causal_attention_mma.cu
/// (tensor cores, one instantiation per head dim, 16 queries per warp and up to 4 warps a block).
/// </summary>
static class LsCausalAttentionCuda
{
    const string File = "ls_causal_attention/ls_causal_attention.cu", MmaFile = "ls_causal_attention/ls_causal_attention_mma.cu";

    /// <summary>
    /// The kernels' blocks, read from their modules (TLS_EXPORT), so each kernel is the one source: the fp32 kernel's QB
    /// queries, KT keys and Threads; the mma kernels' KT keys per window tile and RW relative rows per warp.
    /// </summary>
    readonly record struct Tiles(int QB, int KT, int Threads, int MmaKT, int MmaRW)
    {
        public int RT => QB + KT - 1; // relative rows an fp32 block needs per window tile
    }

    static Tiles TilesOf(CudaBackend be, Tensor q) => UsesMma(q)
        ? new(0, 0, 0, be.Constant(MmaFile, "ls_causal_attention_mma_kt"), be.Constant(MmaFile, "ls_causal_attention_mma_rw"))
        : new(be.Constant(File, "ls_causal_attention_f32_qb"), be.Constant(File, "ls_causal_attention_f32_kt"), be.Constant(File, "ls_causal_attention_f32_threads"), 0, 0);
    static readonly string[] MmaForward = ["ls_causal_attention_fwd_mma_d32", "ls_causal_attention_fwd_mma_d64", "ls_causal_attention_fwd_mma_d96", "ls_causal_attention_fwd_mma_d128"];
    static readonly string[] MmaBackward = ["ls_causal_attention_bwd_mma_d32", "ls_causal_attention_bwd_mma_d64", "ls_causal_attention_bwd_mma_d96", "ls_causal_attention_bwd_mma_d128"];

    static LsCausalAttentionParams Params(LsCausalGeometry g, Tiles t, in LsCausalInputs x, Tensor o, Tensor lse)
    {
        if (g.D % 32 != 0 || g.D > 128)
            throw new ArgumentOutOfRangeException("q", g.D, "the CUDA causal LS attention supports head dims 32, 64, 96 and 128 (d % 32 == 0, d <= 128)");
        return new()
        {
            Q = x.Q.DevicePointer, K = x.K.DevicePointer, V = x.V.DevicePointer, U = x.U.DevicePointer, VB = x.VBias.DevicePointer,
            Rel = x.Rel.DevicePointer, KC = x.KC.DevicePointer, VC = x.VC.DevicePointer, RelC = x.RelC.DevicePointer,
            Mask = x.Mask?.DevicePointer ?? 0, O = o.DevicePointer, Lse = lse.DevicePointer,
            B = g.B, H = g.H, L = g.L, P = g.P, D = g.D, W = g.W, Lc = g.Lc, R = g.R, Mc = g.Mc, Nc = g.Nc,
            Tiles = QueryBlocks(g, BlockQueries(g, t, x.Q)), Scale = g.Scale,
        };
    }

    static bool UsesMma(Tensor q) => q.DType == DType.BFloat16;

    /// <summary>Warps of an mma block: 16 queries each, no more than a chunk holds, at most 4.</summary>
    static int MmaWarps(LsCausalGeometry g) => Math.Min(4, (Math.Min(g.Lc, g.L) + 15) / 16);

    static int BlockQueries(LsCausalGeometry g, Tiles t, Tensor q) => UsesMma(q) ? 16 * MmaWarps(g) : t.QB;

    /// <summary>Query blocks per projection chunk: a block never straddles two chunks.</summary>
    static int QueryBlocks(LsCausalGeometry g, int blockQueries) => (Math.Min(g.Lc, g.L) + blockQueries - 1) / blockQueries;

    static Dim3 Grid(LsCausalGeometry g, Tiles t, Tensor q) => new((uint)(g.BlockChunks * QueryBlocks(g, BlockQueries(g, t, q))), 1, (uint)(g.B * g.H));

    /// <summary>Bytes of the mma kernels' shared memory: the same 16-byte pieces in the order carve_common and the
    /// backward take them.</summary>
    static uint MmaShared(LsCausalGeometry g, Tiles t, bool backward)
    {
        static int Take(int n, int size) => (n * size + 15) / 16 * 16;
        int qb = 16 * MmaWarps(g), d = g.D, row = d + 8, MmaKT = t.MmaKT, MmaRW = t.MmaRW;
        int bytes = Take(MmaKT, 8) + Take(qb + MmaKT, 8) + Take(qb * row, 2) + 2 * Take(MmaKT * row, 2) + Take((qb + MmaKT) * row, 2)
            + 2 * Take(d, 4) + Take(MmaKT, 4) + Take(qb + MmaKT, 4) + Take(qb * (MmaRW + 4), 4);
        if (backward)
            bytes += Take(qb * row, 2) + 4 * Take(qb * (MmaKT + 8), 2) + 2 * Take(qb * (MmaRW + 8), 2)
                + Take(MmaKT, 4) + Take(qb + MmaKT, 4) + 2 * Take(d, 4);
        return (uint)bytes;
    }

    /// <summary>Shared floats both kernels carve first (kernel: carve_common).</summary>
    static int Common(Tiles t, int d) => 2 * t.KT * (d + 1) + t.RT * (d + 1) + 2 * d + t.KT + t.RT + 2 * t.KT;

    public static void Forward(CudaBackend be, LsCausalGeometry g, LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse)
    {
        var t = TilesOf(be, x.Q);
        var p = Params(g, t, x, o, lse);
        if (UsesMma(x.Q))
            be.Kernel(MmaFile, MmaForward[g.D / 32 - 1]).Launch(Grid(g, t, x.Q), 32 * MmaWarps(g), MmaShared(g, t, false), be.Stream, p);
        else
            be.Kernel(File, "ls_causal_attention_fwd_f32").Launch(Grid(g, t, x.Q), (uint)t.Threads, (uint)(4 * (Common(t, g.D) + 2 * t.QB * g.D + 2 * t.QB)), be.Stream, p);
    }

    public static void Backward(CudaBackend be, LsCausalGeometry g, LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse, Tensor dout, in LsCausalGradients gr)
    {
        var t = TilesOf(be, x.Q);
        var p = Params(g, t, x, o, lse);
        // Everything but dq accumulates atomically in fp32.
        using var seq = new Float32Accumulators(be, gr.DK, gr.DV);
        using var cmp = new Float32Accumulators(be, gr.DKC, gr.DVC);
        using var bias = new Float32Accumulators(be, gr.DU, gr.DVBias);
        using var rel = new Float32Accumulators(be, gr.DRel, gr.DRelC);
        p.DOut = dout.DevicePointer; p.DQ = gr.DQ.DevicePointer;
        p.DK = seq.P0; p.DV = seq.P1; p.DKC = cmp.P0; p.DVC = cmp.P1; p.DU = bias.P0; p.DVB = bias.P1; p.DRel = rel.P0; p.DRelC = rel.P1;
        var d = g.D;
        if (UsesMma(x.Q))
            be.Kernel(MmaFile, MmaBackward[d / 32 - 1]).Launch(Grid(g, t, x.Q), 32 * MmaWarps(g), MmaShared(g, t, true), be.Stream, p);
        else // 4·QB: Lse, qok and the double D_i
            be.Kernel(File, "ls_causal_attention_bwd_f32").Launch(Grid(g, t, x.Q), (uint)t.Threads,
                (uint)(4 * (Common(t, d) + 2 * t.KT * (d + 1) + t.RT * (d + 1) + t.KT + t.RT + 2 * d + 3 * t.QB * d + 4 * t.QB)), be.Stream, p);
        seq.Complete(); cmp.Complete(); bias.Complete(); rel.Complete();
    }
}
