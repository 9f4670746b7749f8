using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The Layout family: this facade; Layout.Reference.cs (checks, reference); LayoutCuda.cs (launcher, params mirror);
// LayoutNode.cs (graph node, builder); LayoutCases.cs (test and bench cases). See Ops/README.md.

/// <summary>The layout family (kernels/layout/): axis swaps and slice copies; checks once, then CUDA or the CPU reference.</summary>
public static partial class Layout
{
    /// <summary>x [A, B, C, D] → y [A, C, B, D]: split heads ([B, T, H, d] → [B, H, T, d]) and merge them back.</summary>
    public static void SwapAxes12(IBackend be, Tensor x, Tensor y)
    {
        var (a, b, c, d) = CheckSwap(be, x, y);
        if (be is CudaBackend cuda) LayoutCuda.SwapAxes12(cuda, a, b, c, d, x, y);
        else CpuReference.Run([x], [y], (a, b, c, d), static (s, i, o) => { var (a, b, c, d) = s; SwapAxes12(a, b, c, d, i[0], o[0]); });
    }

    /// <summary>
    /// dst[.., dstOffset + j, ..] = src[.., srcOffset + j, ..] for j &lt; length along <paramref name="axis"/> (added to
    /// dst with <paramref name="accumulate"/>); the shapes agree on every other axis. Concatenation and slicing.
    /// </summary>
    public static void CopySlice(IBackend be, Tensor src, int srcOffset, Tensor dst, int dstOffset, int axis, int length, bool accumulate = false)
    {
        var g = CheckSlice(be, src, srcOffset, dst, dstOffset, axis, length);
        if (be is CudaBackend cuda) LayoutCuda.CopySlice(cuda, g, src, srcOffset, dst, dstOffset, axis, length, accumulate);
        else CpuReference.Run([src], [dst], (g, accumulate), static (s, i, o) => { var (g, accumulate) = s; CopySlice(g, i[0], o[0], accumulate); }, read: 1);
    }

    /// <summary>
    /// dst[b, h, rows[b] + j, :] = src[b, h, j, :] for j &lt; n, per sequence b; rows: float32 [B], a negative row leaves
    /// that sequence's dst alone. src [B, H, n, d], dst [B, H, cap, d]. The decoder's per-sequence ring writes.
    /// </summary>
    public static void WriteRows(IBackend be, Tensor src, Tensor rows, Tensor dst)
    {
        CheckWriteRows(be, src, rows, dst);
        if (be is CudaBackend cuda) LayoutCuda.WriteRows(cuda, src, rows, dst);
        else CpuReference.Run([src, rows], [dst], (H: src.Shape[1], N: src.Shape[2], Cap: dst.Shape[2], D: src.Shape[3]),
            static (s, i, o) => WriteRows(s.H, s.N, s.Cap, s.D, i[0], i[1], o[0]), read: 1);
    }

    /// <summary>
    /// Several <see cref="WriteRows(IBackend, Tensor, Tensor, Tensor)"/> at once (one launch on the GPU), in order; at most six, of
    /// one dtype, into distinct destinations.
    /// </summary>
    public static void WriteRows(IBackend be, ReadOnlySpan<RowWrite> writes)
    {
        if (writes.IsEmpty) return;
        if (writes.Length > WriteRowsBatchParams.Capacity)
            throw new ArgumentOutOfRangeException(nameof(writes), writes.Length, $"at most {WriteRowsBatchParams.Capacity} writes at once");
        for (var i = 0; i < writes.Length; i++)
        {
            CheckWriteRows(be, writes[i].Src, writes[i].Rows, writes[i].Dst);
            if (writes[i].Src.DType != writes[0].Src.DType)
                throw new ArgumentException($"write {i} is {writes[i].Src.DType.Name()}; write 0 is {writes[0].Src.DType.Name()} (one dtype a batch)", nameof(writes));
            for (var j = 0; j < i; j++)
                if (ReferenceEquals(writes[j].Dst, writes[i].Dst))
                    throw new ArgumentException($"writes {j} and {i} share a destination", nameof(writes));
        }
        if (be is CudaBackend cuda) { LayoutCuda.WriteRows(cuda, writes); return; }
        foreach (var w in writes) WriteRows(be, w.Src, w.Rows, w.Dst);
    }
}

/// <summary>One write of <see cref="Layout.WriteRows(IBackend, ReadOnlySpan{RowWrite})"/>: src [B, H, n, d] at rows [B] into dst [B, H, cap, d].</summary>
public readonly record struct RowWrite(Tensor Src, Tensor Rows, Tensor Dst);
