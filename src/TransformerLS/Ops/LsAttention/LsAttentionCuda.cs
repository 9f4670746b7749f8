using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops.LsAttention;

/// <summary>Mirror of LsAttnParams in kernels/ls_attention_bidir.cu.</summary>
[StructLayout(LayoutKind.Sequential)]
struct LsAttnParams
{
    public ulong Q, K, V, KBar, VBar, Mask, O, Lse, DOut, DQ, DK, DV, DKBar, DVBar;
    public int B, H, N, D, W, R, E, Chunks;
    public float Scale;
}

static class LsAttentionCuda
{
    const string File = "ls_attention_bidir.cu";
    const int KT = 32, QB = 32, Threads = 128;

    static void CheckHeadDim(LsAttentionGeometry g)
    {
        if (g.D % 32 != 0 || g.D > 128)
            throw new ArgumentOutOfRangeException("q", g.D, "the CUDA LS attention supports head dims 32, 64, 96 and 128 (d % 32 == 0, d <= 128)");
    }

    static LsAttnParams Params(LsAttentionGeometry g, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask, Tensor o, Tensor lse) => new()
    {
        Q = q.DevicePointer, K = k.DevicePointer, V = v.DevicePointer, KBar = kbar.DevicePointer, VBar = vbar.DevicePointer,
        Mask = mask?.DevicePointer ?? 0, O = o.DevicePointer, Lse = lse.DevicePointer,
        B = g.B, H = g.H, N = g.N, D = g.D, W = g.W, R = g.R, E = g.E, Chunks = Chunks(g), Scale = g.Scale,
    };

    /// <summary>Query chunks of QB per segment; the kernel splits blockIdx.x by the same number.</summary>
    static int Chunks(LsAttentionGeometry g) => (g.W + QB - 1) / QB;

    static Dim3 Grid(LsAttentionGeometry g) => new((uint)(g.Segments * Chunks(g)), 1, (uint)(g.B * g.H));

    public static void Forward(CudaBackend be, LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask, Tensor o, Tensor lse)
    {
        var g = LsAttention.CheckForward(be, cfg, q, k, v, kbar, vbar, mask, o, lse);
        CheckHeadDim(g);
        var p = Params(g, q, k, v, kbar, vbar, mask, o, lse);
        var smem = (uint)(4 * (2 * KT * (g.D + 1) + 2 * QB * g.D + 2 * QB + 2 * KT));
        be.Kernel(File, q.DType == DType.Float32 ? "ls_attn_fwd_f32" : "ls_attn_fwd_bf16").Launch(Grid(g), Threads, smem, be.Stream, p);
    }

    public static void Backward(CudaBackend be, LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask,
        Tensor o, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv, Tensor dkbar, Tensor dvbar)
    {
        var g = LsAttention.CheckBackward(be, cfg, q, k, v, kbar, vbar, mask, o, lse, dout, dq, dk, dv, dkbar, dvbar);
        CheckHeadDim(g);
        // Key gradients accumulate atomically in fp32.
        using var grads = new Float32Accumulators(be, dk, dv, dkbar, dvbar);
        var p = Params(g, q, k, v, kbar, vbar, mask, o, lse);
        p.DOut = dout.DevicePointer; p.DQ = dq.DevicePointer; p.DK = grads.P0; p.DV = grads.P1; p.DKBar = grads.P2; p.DVBar = grads.P3;
        var smem = (uint)(4 * (4 * KT * (g.D + 1) + 3 * QB * g.D + 3 * QB + 2 * KT));
        be.Kernel(File, q.DType == DType.Float32 ? "ls_attn_bwd_f32" : "ls_attn_bwd_bf16").Launch(Grid(g), Threads, smem, be.Stream, p);
        grads.Complete();
    }
}
