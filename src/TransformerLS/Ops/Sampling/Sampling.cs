using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The Sampling family: this facade; Sampling.Reference.cs (checks, the draw rule); SamplingCuda.cs (launcher, params
// mirror); SamplingCases.cs (test and bench cases). See Ops/README.md.

/// <summary>Drawing a token from each row of logits on the backend (kernels/sampling/): the logits stay where they are.</summary>
public static partial class Sampling
{
    /// <summary>
    /// tokens_i = the token drawn from row i of logits [N, V] with the draw uniforms_i in [0, 1) (negative: an inactive row,
    /// token −1) by <see cref="DrawRow{T}"/>'s rule: temperature 0 is greedy; otherwise softmax(logits/temperature) cut to
    /// the <paramref name="topK"/> most likely (0: no cut) and to the shortest prefix reaching <paramref name="topP"/> of
    /// the mass (1: no cut). uniforms and tokens: float32 [N]. On the GPU, V is at most 1024.
    /// </summary>
    public static void SampleRows(IBackend be, Tensor logits, Tensor uniforms, float temperature, int topK, float topP, Tensor tokens)
    {
        var (n, v) = CheckRows(be, logits, uniforms, temperature, topK, topP, tokens);
        if (be is CudaBackend cuda) { SamplingCuda.SampleRows(cuda, n, v, logits, uniforms, temperature, topK, topP, tokens); return; }
        CpuReference.Run([logits, uniforms], [tokens], (v, temperature, topK, topP), static (s, i, o) => Sample<double>(s.v, i[0], i[1], s.temperature, s.topK, s.topP, o[0]));
    }
}
