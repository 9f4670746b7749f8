using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The DualLayerNorm family: this facade; DualLayerNorm.Reference.cs (checks, reference);
// DualLayerNormCuda.cs (launcher, params mirror); DualLayerNormNode.cs (graph node, builder); DualLayerNormCases.cs (test and bench cases). See Ops/README.md.

/// <summary>DualLN of the LS attention (kernels/dual_layer_norm/); checks once, then CUDA or the CPU reference.</summary>
public static partial class DualLayerNorm
{
    /// <summary>
    /// LayerNorm over all H·d channels of each token of xk (and xv, same weights) into head-split yk/yv [B, H, T, d].
    /// x: token-major [B, T, H·d] or head-split [B, H, T, d]; mean, rstd: [S, B, T] float32 (S = 2 with xv, else 1).
    /// </summary>
    public static void Forward(IBackend be, Tensor xk, Tensor? xv, Tensor gamma, Tensor beta, Tensor yk, Tensor? yv, Tensor mean, Tensor rstd, float eps)
    {
        var g = CheckForward(be, xk, xv, gamma, beta, yk, yv, mean, rstd, eps);
        if (be is CudaBackend cuda) { DualLayerNormCuda.Forward(cuda, g, xk, xv, gamma, beta, yk, yv, mean, rstd, eps); return; }
        CpuReference.Run([xk, xv, gamma, beta], [yk, yv, mean, rstd], (xv is null ? 1 : 2, g, eps), static (s, i, o) => {
            var (sets, g, eps) = s;
            for (var at = 0; at < sets; at++)
                Forward(g, i[at], i[2], i[3], o[at], o[2].AsSpan(at * g.Rows, g.Rows), o[3].AsSpan(at * g.Rows, g.Rows), eps);
        });
    }

    /// <summary>Device scratch the backward allocates while it runs: the row groups' partial dγ, dβ (<see cref="ColumnGroups"/>) over <paramref name="sets"/> (1 or 2) of [B, T] rows.</summary>
    public static long BackwardWorkspace(Device device, int sets, int batch, int tokens, int channels) =>
        ColumnGroups.ScratchBytes(device, (long)sets * batch * tokens, channels);

    /// <summary>dxk/dxv in x's layout; dgamma and dbeta (summed over K and V) are overwritten.</summary>
    public static void Backward(IBackend be, Tensor dyk, Tensor? dyv, Tensor xk, Tensor? xv, Tensor gamma, Tensor mean, Tensor rstd,
        Tensor dxk, Tensor? dxv, Tensor dgamma, Tensor dbeta)
    {
        var g = CheckBackward(be, dyk, dyv, xk, xv, gamma, mean, rstd, dxk, dxv, dgamma, dbeta);
        if (be is CudaBackend cuda) { DualLayerNormCuda.Backward(cuda, g, dyk, dyv, xk, xv, gamma, mean, rstd, dxk, dxv, dgamma, dbeta); return; }
        CpuReference.Run([dyk, dyv, xk, xv, gamma, mean, rstd], [dxk, dxv, dgamma, dbeta], (xv is null ? 1 : 2, g), static (s, i, o) => {
            var (sets, g) = s;
            for (var at = 0; at < sets; at++)
                Backward(g, i[at], i[2 + at], i[4], i[5].AsSpan(at * g.Rows, g.Rows), i[6].AsSpan(at * g.Rows, g.Rows), o[at], o[2], o[3]);
        });
    }
}
