using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The LsCausalAttention family: this facade; LsCausalAttention.Reference.cs (checks, reference);
// LsCausalAttentionCuda.cs (launcher, params mirror); LsCausalAttentionNode.cs (graph node, builder); LsCausalAttentionCases.cs (test and bench cases). See Ops/README.md.

/// <summary>The causal LS attention (kernels/ls_causal_attention/); checks once, then CUDA or the CPU reference.</summary>
public static partial class LsCausalAttention
{
    /// <summary>
    /// One softmax over the compressed keys of earlier chunks and the band of the last w positions, with the
    /// Transformer-XL relative terms (reference section 3.2-3.4). Shapes: <see cref="LsCausalInputs"/>;
    /// o: like q; lse: [B, H, L] float32.
    /// </summary>
    public static void Forward(IBackend be, LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse)
    {
        var g = CheckForward(be, cfg, x, o, lse);
        if (be is CudaBackend cuda) { LsCausalAttentionCuda.Forward(cuda, g, cfg, x, o, lse); return; }
        CpuReference.Run([x.Q, x.K, x.V, x.U, x.VBias, x.Rel, x.KC, x.VC, x.RelC, x.Mask], [o, lse], g, static (g, i, r) => Forward(g, Data(i), r[0], r[1]));
    }

    /// <summary>
    /// Device scratch the backward allocates while it runs on the GPU (<paramref name="inputs"/>: the shapes of q, k, v, u,
    /// vbias, rel, kc, vc, relc): on the tensor cores (bf16), fp32 sums of every gradient but dq; on the CUDA cores, each
    /// query's log-sum-exp in double and the per-(b, h) partials of du, dv_bias, dR and dRc.
    /// </summary>
    public static long BackwardWorkspace(Device device, DType dtype, ReadOnlySpan<Shape> inputs)
    {
        if (device.Kind != DeviceKind.Cuda) return 0;
        if (!LsCausalAttentionCuda.UsesMma(dtype, inputs[0][3])) return LsCausalSimtScratch.Of(inputs[0], inputs[1], inputs[5], inputs[6]).Bytes;
        long n = 0;
        foreach (var s in inputs[1..]) n += s.Count;
        return Float32Accumulators.ScratchBytes(dtype, [n]);
    }

    /// <summary>Gradients of the causal LS attention from its saved output and log-sum-exp; every gradient is overwritten.</summary>
    public static void Backward(IBackend be, LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse, Tensor dout, in LsCausalGradients grads)
    {
        var g = CheckBackward(be, cfg, x, o, lse, dout, grads);
        if (be is CudaBackend cuda) { LsCausalAttentionCuda.Backward(cuda, g, cfg, x, o, lse, dout, grads); return; }
        CpuReference.Run([x.Q, x.K, x.V, x.U, x.VBias, x.Rel, x.KC, x.VC, x.RelC, x.Mask, o, lse, dout],
            [grads.DQ, grads.DK, grads.DV, grads.DU, grads.DVBias, grads.DRel, grads.DKC, grads.DVC, grads.DRelC],
            g, static (g, i, r) => Backward(g, Data(i), i[10], i[11], i[12], new LsCausalData<double>(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], [])));
    }

    static LsCausalData<double> Data(double[][] i) => new(i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], i[8], i[9]);
}
