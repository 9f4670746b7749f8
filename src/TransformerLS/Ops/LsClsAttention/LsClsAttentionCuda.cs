using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LsClsAttentionParams in kernels/ls_cls_attention/ls_cls_attention.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LsClsAttentionParams
{
    public ulong Q, K, V, C, Mask, O, Lse, DOut, DQ, DK, DV, DC;
    public int B, H, N, D, Accumulate;
    public float Scale;
}

static class LsClsAttentionCuda
{
    const string File = "ls_cls_attention/ls_cls_attention.cu";
    /// <summary>The kernels' block (NWARP warps), read from the module (TLS_EXPORT).</summary>
    static uint Threads(CudaBackend be) => (uint)be.Constant(File, "ls_cls_attention_threads");

    static LsClsAttentionParams Params(LsClsGeometry g, Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse)
    {
        if (g.D > 128) throw new ArgumentOutOfRangeException("q", g.D, "the CUDA CLS attention supports head dims up to 128");
        return new()
        {
            Q = q.DevicePointer, K = k.DevicePointer, V = v.DevicePointer, C = c.DevicePointer, Mask = mask?.DevicePointer ?? 0,
            O = o.DevicePointer, Lse = lse.DevicePointer, B = g.B, H = g.H, N = g.N, D = g.D, Scale = g.Scale,
        };
    }

    public static void Forward(CudaBackend be, LsClsGeometry g, Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse)
    {
        var p = Params(g, q, k, v, c, mask, o, lse);
        be.Kernel(File, q.DType == DType.Float32 ? "ls_cls_attention_fwd_f32" : "ls_cls_attention_fwd_bf16").Launch((uint)(g.B * g.H), Threads(be), 0, be.Stream, p);
    }

    public static void Backward(CudaBackend be, LsClsGeometry g, Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse, Tensor dout,
        Tensor dq, Tensor dk, Tensor dv, Tensor dc, bool accumulate)
    {
        var p = Params(g, q, k, v, c, mask, o, lse);
        p.DOut = dout.DevicePointer; p.DQ = dq.DevicePointer; p.DK = dk.DevicePointer; p.DV = dv.DevicePointer; p.DC = dc.DevicePointer;
        p.Accumulate = accumulate ? 1 : 0;
        be.Kernel(File, q.DType == DType.Float32 ? "ls_cls_attention_bwd_f32" : "ls_cls_attention_bwd_bf16").Launch((uint)(g.B * g.H), Threads(be), 0, be.Stream, p);
    }
}
