using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The Embedding family: this facade; Embedding.Reference.cs (checks, reference);
// EmbeddingCuda.cs (launcher, params mirror); EmbeddingNode.cs (graph node, builder); EmbeddingCases.cs (test and bench cases). See Ops/README.md.

/// <summary>Token embedding (kernels/embedding/); checks once, then CUDA or the CPU reference.</summary>
public static partial class Embedding
{
    /// <summary>y[i] = weight[tokens[i]] (weight [V, D], tokens float32 [N] indices, negative = padding: a zero row); y [N, D].</summary>
    public static void Forward(IBackend be, Tensor weight, Tensor tokens, Tensor y)
    {
        var (n, v, d) = CheckShapes(be, weight, nameof(weight), tokens, y, nameof(y));
        Check.DTypeIs(y, weight.DType, nameof(y));
        if (be is CudaBackend cuda) { EmbeddingCuda.Forward(cuda, n, v, d, weight, tokens, y); return; }
        CpuReference.Run([weight, tokens], [y], (v, d), static (s, i, o) => {
            var (v, d) = s;
            CheckTokens(i[1], v);
            Forward<double>(d, i[0], i[1], o[0]);
        });
    }

    /// <summary>dweight (float32 [V, D]) = or += the sum of dy rows per token; padding tokens add nothing.</summary>
    public static void Backward(IBackend be, Tensor tokens, Tensor dy, Tensor dweight, bool accumulate = false)
    {
        var (n, v, d) = CheckShapes(be, dweight, nameof(dweight), tokens, dy, nameof(dy));
        Check.DTypeIs(dweight, DType.Float32, nameof(dweight));
        if (be is CudaBackend cuda) { EmbeddingCuda.Backward(cuda, n, v, d, tokens, dy, dweight, accumulate); return; }
        CpuReference.Run([tokens, dy], [dweight], (v, d), static (s, i, o) => {
            var (v, d) = s;
            CheckTokens(i[0], v);
            Backward<double>(d, i[0], i[1], o[0]);
        }, read: accumulate ? 1u : 0u);
    }
}
