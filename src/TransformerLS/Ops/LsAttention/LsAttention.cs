using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The LsAttention family: this facade; LsAttention.Reference.cs (checks, reference);
// LsAttentionCuda.cs (launcher, params mirror); LsAttentionNode.cs (graph node, builder); LsAttentionCases.cs (test and bench cases). See Ops/README.md.

/// <summary>The bidirectional LS attention (kernels/ls_attention/); checks once, then CUDA or the CPU reference.</summary>
public static partial class LsAttention
{
    /// <summary>
    /// One softmax over the r landmarks and the segment window of each query (reference section 1.4-1.5).
    /// q, k, v: [B, H, n, d] (q unscaled; the op applies 1/√d); kbar, vbar: [B, H, r, d]; mask: [B, n] float32
    /// (1 token, 0 pad) or null; o: q's shape; lse: [B, H, n] float32. q (with o, and in the backward dout and dq) may
    /// instead be token-major [B, n, H·d], the heads merged as a Linear writes them and as the output Linear reads them:
    /// the kernels then read and write the rows in place, so no split-heads or merge-heads copies are needed.
    /// </summary>
    public static void Forward(IBackend be, LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask, Tensor o, Tensor lse)
    {
        var g = CheckForward(be, cfg, q, k, v, kbar, vbar, mask, o, lse);
        if (be is CudaBackend cuda) LsAttentionCuda.Forward(cuda, g, cfg, q, k, v, kbar, vbar, mask, o, lse);
        else CpuReference.Run([q, k, v, kbar, vbar, mask], [o, lse], g, static (g, i, r) => Forward(g, i[0], i[1], i[2], i[3], i[4], i[5], r[0], r[1]));
    }

    /// <summary>Device scratch the backward allocates while it runs on the GPU, in every dtype: D = dO·O per query, the landmark
    /// gradients' fp32 partials per query group (<see cref="TokenGroups"/>), summed in group order, and each query's
    /// log-sum-exp in double (what the CUDA-core passes use instead of the forward's fp32 lse).</summary>
    public static long BackwardWorkspace(Device device, DType dtype, Shape k, Shape v, Shape kbar, Shape vbar) =>
        device.Kind != DeviceKind.Cuda ? 0 : LsAttentionScratch.Of(k, kbar).Bytes;

    /// <summary>Gradients of the LS attention from its saved output and log-sum-exp; every gradient is overwritten.</summary>
    public static void Backward(IBackend be, LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask,
        Tensor o, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv, Tensor dkbar, Tensor dvbar)
    {
        var g = CheckBackward(be, cfg, q, k, v, kbar, vbar, mask, o, lse, dout, dq, dk, dv, dkbar, dvbar);
        if (be is CudaBackend cuda) LsAttentionCuda.Backward(cuda, g, cfg, q, k, v, kbar, vbar, mask, o, lse, dout, dq, dk, dv, dkbar, dvbar);
        else CpuReference.Run([q, k, v, kbar, vbar, mask, o, lse, dout], [dq, dk, dv, dkbar, dvbar],
            g, static (g, i, r) => Backward(g, i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], i[8], r[0], r[1], r[2], r[3], r[4]));
    }
}
