using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The LsChunkProjection family: this facade; LsChunkProjection.Reference.cs (checks, reference);
// LsChunkProjectionCuda.cs (launcher, params mirror); LsChunkProjectionNode.cs (graph node, builder); LsChunkProjectionCases.cs (test and bench cases). See Ops/README.md.

/// <summary>The chunked dynamic projection of the causal attention (kernels/ls_chunk_projection/); checks once, then CUDA or the CPU reference.</summary>
public static partial class LsChunkProjection
{
    /// <summary>
    /// y[c·r + k] = Σ_t P_t·x_t, P = softmax over the tokens of chunk c (l positions) of scores[:, h·r + k], per head.
    /// scores [B, T, H·r]; x [B, H, T, d]; mask [B, T] or null; y [B, H, ⌈T/l⌉·r, d].
    /// </summary>
    public static void Forward(IBackend be, int chunk, Tensor scores, Tensor x, Tensor? mask, Tensor y)
    {
        var g = CheckForward(be, chunk, scores, x, mask, y);
        if (be is CudaBackend cuda) LsChunkProjectionCuda.Forward(cuda, g, chunk, scores, x, mask, y);
        else CpuReference.Run([scores, x, mask], [y], g, static (g, i, r) => Forward(g, i[0], i[1], i[2], r[0]));
    }

    /// <summary>dscores and dx, overwritten or, with <paramref name="accumulate"/>, added to.</summary>
    public static void Backward(IBackend be, int chunk, Tensor scores, Tensor x, Tensor? mask, Tensor dy, Tensor dscores, Tensor dx, bool accumulate = false)
    {
        var g = CheckBackward(be, chunk, scores, x, mask, dy, dscores, dx);
        if (be is CudaBackend cuda) LsChunkProjectionCuda.Backward(cuda, g, chunk, scores, x, mask, dy, dscores, dx, accumulate);
        else CpuReference.Run([scores, x, mask, dy], [dscores, dx], (g, accumulate), static (s, i, r) => { var (g, accumulate) = s; Backward(g, i[0], i[1], i[2], i[3], r[0], r[1], accumulate); },
            read: accumulate ? 3u : 0u);
    }
}
