using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The LsProjection family: this facade; LsProjection.Reference.cs (checks, reference);
// LsProjectionCuda.cs (launcher, params mirror); LsProjectionNode.cs (graph node, builder); LsProjectionCases.cs (test and bench cases). See Ops/README.md.

/// <summary>The dynamic projection of the bidirectional attention (kernels/ls_projection/); checks once, then CUDA or the CPU reference.</summary>
public static partial class LsProjection
{
    /// <summary>
    /// K̄ = P·K, V̄ = P·V with P = softmax over the sequence of scores [B, n, H·r] (padding excluded), per head;
    /// k, v: [B, H, n, d]; kbar, vbar: [B, H, r, d]; colmax, colsum: [B, H·r] float32, saved for the backward; landmarks32,
    /// if given: K̄ then V̄ unrounded, [2, B, H, r, d] float32, also for the backward (which then runs in one pass).
    /// </summary>
    public static void Forward(IBackend be, Tensor scores, Tensor k, Tensor v, Tensor? mask, Tensor kbar, Tensor vbar, Tensor colmax, Tensor colsum,
        Tensor? landmarks32 = null)
    {
        var g = CheckForward(be, scores, k, v, mask, kbar, vbar, colmax, colsum);
        CheckLandmarks32(be, landmarks32, g);
        if (be is CudaBackend cuda) { LsProjectionCuda.Forward(cuda, g, scores, k, v, mask, kbar, vbar, colmax, colsum, landmarks32); return; }
        CpuReference.Run([scores, k, v, mask], [kbar, vbar, colmax, colsum, landmarks32], g, static (g, i, r) => {
            Forward(g, i[0], i[1], i[2], i[3], r[0], r[1]);
            if (r[4].Length > 0) { r[0].CopyTo(r[4], 0); r[1].CopyTo(r[4], r[0].Length); }
            // The saved statistics, in the kernel's layout, so either backend's backward can follow either forward.
            int hr = g.H * g.R;
            for (var b = 0; b < g.B; b++)
                for (var c = 0; c < hr; c++)
                    (r[2][b * hr + c], r[3][b * hr + c]) = ColumnStats(g, i[0], i[3], b, c);
        });
    }

    /// <summary>Device scratch the forward allocates while it runs: per token group, the column statistics (a float and a
    /// double per column) and fp32 partial K̄, V̄; none on the CPU.</summary>
    public static long ForwardWorkspace(Device device, Shape k, Shape kbar) =>
        device.Kind != DeviceKind.Cuda ? 0 : LsProjectionScratch.Forward(k, kbar).Bytes;

    /// <summary>Device scratch the backward allocates while it runs: per token group and column a double Σ_t P·dP,
    /// then their sum per column; none on the CPU.</summary>
    public static long BackwardWorkspace(Device device, Shape k, Shape kbar) =>
        device.Kind != DeviceKind.Cuda ? 0 : LsProjectionScratch.Backward(k, kbar).Bytes;

    /// <summary>
    /// dscores (overwritten); dk, dv overwritten or, with <paramref name="accumulate"/>, added to. With the forward's
    /// <paramref name="landmarks32"/>, the softmax backward's Σ_t P·dP per column is K̄·dK̄ + V̄·dV̄ (the same sum, by
    /// K̄ = Σ_t P_t·K_t), so the bf16 tensor-core backward reads the sequence once; without, it sums P·dP in a first pass.
    /// </summary>
    public static void Backward(IBackend be, Tensor scores, Tensor k, Tensor v, Tensor? mask, Tensor colmax, Tensor colsum,
        Tensor dkbar, Tensor dvbar, Tensor dscores, Tensor dk, Tensor dv, bool accumulate = false, Tensor? landmarks32 = null)
    {
        var g = CheckBackward(be, scores, k, v, mask, colmax, colsum, dkbar, dvbar, dscores, dk, dv);
        CheckLandmarks32(be, landmarks32, g);
        if (be is CudaBackend cuda) { LsProjectionCuda.Backward(cuda, g, scores, k, v, mask, colmax, colsum, dkbar, dvbar, dscores, dk, dv, accumulate, landmarks32); return; }
        CpuReference.Run([scores, k, v, mask, dkbar, dvbar], [dscores, dk, dv], g, static (g, i, r) => {
            double[] gk = new double[r[1].Length], gv = new double[r[2].Length];
            Backward(g, i[0], i[1], i[2], i[3], i[4], i[5], r[0], gk, gv);
            for (var t = 0; t < gk.Length; t++) { r[1][t] += gk[t]; r[2][t] += gv[t]; }
        }, read: accumulate ? 6u : 0u);
    }
}
