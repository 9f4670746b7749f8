using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The LsClsAttention family: this facade; LsClsAttention.Reference.cs (checks, reference);
// LsClsAttentionCuda.cs (launcher, params mirror); LsClsAttentionNode.cs (graph node, builder); LsClsAttentionCases.cs (test and bench cases). See Ops/README.md.

/// <summary>The CLS attention of the LRA last layer (kernels/ls_cls_attention/); checks once, then CUDA or the CPU reference.</summary>
public static partial class LsClsAttention
{
    /// <summary>
    /// o = softmax([σq·k, σq·C_t for real tokens t])·[v; C_t] (reference section 1.6). q, k, v, o: [B, H, d] (q unscaled);
    /// c: [B, H, n, d], the tokens' attention outputs; mask [B, n] or null; lse: [B, H] float32.
    /// </summary>
    public static void Forward(IBackend be, Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse)
    {
        var g = CheckForward(be, q, k, v, c, mask, o, lse);
        if (be is CudaBackend cuda) LsClsAttentionCuda.Forward(cuda, g, q, k, v, c, mask, o, lse);
        else CpuReference.Run([q, k, v, c, mask], [o, lse], g, static (g, i, r) => Forward(g, i[0], i[1], i[2], i[3], i[4], r[0], r[1]));
    }

    /// <summary>dq, dk, dv overwritten; dc overwritten or, with <paramref name="accumulate"/>, added to.</summary>
    public static void Backward(IBackend be, Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse, Tensor dout,
        Tensor dq, Tensor dk, Tensor dv, Tensor dc, bool accumulate = false)
    {
        var g = CheckBackward(be, q, k, v, c, mask, o, lse, dout, dq, dk, dv, dc);
        if (be is CudaBackend cuda) LsClsAttentionCuda.Backward(cuda, g, q, k, v, c, mask, o, lse, dout, dq, dk, dv, dc, accumulate);
        else CpuReference.Run([q, k, v, c, mask, o, lse, dout], [dq, dk, dv, dc],
            (g, accumulate), static (s, i, r) => { var (g, accumulate) = s; Backward(g, i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], r[0], r[1], r[2], r[3], accumulate); }, read: accumulate ? 8u : 0u);
    }
}
