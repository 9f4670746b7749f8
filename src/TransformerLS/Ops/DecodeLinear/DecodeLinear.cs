using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The DecodeLinear family: this facade; DecodeLinear.Reference.cs (checks, reference); DecodeLinearCuda.cs (launcher,
// params mirror); DecodeLinearCases.cs (test and bench cases). See Ops/README.md.

/// <summary>One output of <see cref="DecodeLinear.Forward"/>: y (+)= n(x)·Wᵀ + b, W [out, in] as PyTorch's Linear.</summary>
public readonly record struct DecodeLinearOutput(Tensor Weight, Tensor? Bias, Tensor Y);

/// <summary>The LayerNorm <see cref="DecodeLinear.Forward"/> applies to x's rows first (float32 γ, β), written to <paramref name="Normed"/>.</summary>
public readonly record struct DecodeLinearNorm(Tensor Gamma, Tensor Beta, float Eps, Tensor Normed);

/// <summary>
/// The Linear maps of one decode step: y_j (+)= act(n(x)·W_jᵀ + b_j) for up to <see cref="MaxOutputs"/> weights sharing x,
/// n = LayerNorm (<see cref="DecodeLinearNorm"/>) or identity, act = GELU or identity. The result is the unfused chain's
/// (LayerNorm, then Linear, then Gelu, each stored in x's dtype). On the GPU, where x has few rows (up to 16: a decode
/// step's batch; kernels/decode_linear/: in bf16 from 4 rows on the tensor cores, a block an 8-column tile; otherwise a
/// warp a weight row, x staged 16 rows at a time), one launch for the whole chain; elsewhere, or for more rows, that chain.
/// </summary>
public static partial class DecodeLinear
{
    /// <summary>The most weight matrices one call takes.</summary>
    public const int MaxOutputs = 4;

    /// <param name="x">[..., K] in the model's dtype.</param>
    /// <param name="norm">The LayerNorm of x's rows first, or null.</param>
    /// <param name="outputs">1 to <see cref="MaxOutputs"/> outputs: weight [n_j, K], bias [n_j] or null, y [..., n_j], all in x's dtype.</param>
    /// <param name="gelu">y_j = GELU(the stored sum), as Linear then Gelu store it (not with <paramref name="accumulate"/>).</param>
    /// <param name="accumulate">y_j += n(x)·W_jᵀ + b_j (a residual in the same sum, rounded once).</param>
    public static void Forward(IBackend be, Tensor x, DecodeLinearNorm? norm, ReadOnlySpan<DecodeLinearOutput> outputs, bool gelu = false, bool accumulate = false)
    {
        var (rows, k) = Check(be, x, norm, outputs, gelu, accumulate);
        if (be is CudaBackend cuda && DecodeLinearCuda.TryForward(cuda, rows, k, x, norm, outputs, gelu, accumulate)) return;
        var src = x;
        if (norm is { } n)
        {
            LayerNorm.Forward(be, x, n.Gamma, n.Beta, n.Normed, null, null, n.Eps);
            src = n.Normed;
        }
        foreach (var o in outputs)
        {
            Linear.Forward(be, src, o.Weight, o.Bias, o.Y, accumulate);
            if (gelu) Elementwise.Gelu(be, o.Y, o.Y);
        }
    }
}
