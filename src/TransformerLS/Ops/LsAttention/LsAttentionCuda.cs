using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Ops.Elementwise;
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
        B = g.B, H = g.H, N = g.N, D = g.D, W = g.W, R = g.R, E = g.E, Chunks = (g.W + QB - 1) / QB, Scale = g.Scale,
    };

    static Dim3 Grid(LsAttentionGeometry g) => new((uint)(g.Segments * ((g.W + QB - 1) / QB)), 1, (uint)(g.B * g.H));

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
        var f32 = q.DType == DType.Float32;
        long seq = (long)g.B * g.H * g.N * g.D, lm = (long)g.B * g.H * g.R * g.D;
        // Key gradients accumulate atomically in fp32: straight into float32 outputs, via scratch for bf16.
        var scratch = f32 ? 0UL : be.Context.Allocator.Allocate(4 * (2 * seq + 2 * lm));
        try
        {
            ulong gk = f32 ? dk.DevicePointer : scratch, gv = f32 ? dv.DevicePointer : scratch + (ulong)(4 * seq);
            ulong gkb = f32 ? dkbar.DevicePointer : scratch + (ulong)(8 * seq), gvb = f32 ? dvbar.DevicePointer : scratch + (ulong)(8 * seq + 4 * lm);
            CudaMemory.Fill32(be.Stream, gk, 0, seq);
            CudaMemory.Fill32(be.Stream, gv, 0, seq);
            CudaMemory.Fill32(be.Stream, gkb, 0, lm);
            CudaMemory.Fill32(be.Stream, gvb, 0, lm);
            var p = Params(g, q, k, v, kbar, vbar, mask, o, lse);
            p.DOut = dout.DevicePointer; p.DQ = dq.DevicePointer; p.DK = gk; p.DV = gv; p.DKBar = gkb; p.DVBar = gvb;
            var smem = (uint)(4 * (4 * KT * (g.D + 1) + 3 * QB * g.D + 3 * QB + 2 * KT));
            be.Kernel(File, f32 ? "ls_attn_bwd_f32" : "ls_attn_bwd_bf16").Launch(Grid(g), Threads, smem, be.Stream, p);
            if (f32) return;
            ElementwiseCuda.ConvertFromFloat32(be, gk, dk, seq);
            ElementwiseCuda.ConvertFromFloat32(be, gv, dv, seq);
            ElementwiseCuda.ConvertFromFloat32(be, gkb, dkbar, lm);
            ElementwiseCuda.ConvertFromFloat32(be, gvb, dvbar, lm);
        }
        finally
        {
            if (scratch != 0) be.Context.Allocator.Free(scratch, 4 * (2 * seq + 2 * lm)); // stream-ordered: after the kernels
        }
    }
}
