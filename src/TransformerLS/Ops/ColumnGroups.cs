using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>
/// The row groups of a deterministic two-stage column reduction (LayerNorm's and DualLN's dγ, dβ; column sums): stage 1 sums each
/// group's rows into an fp32 partial row, stage 2 adds the partials in group order, so the bits do not depend on
/// scheduling. The number of groups depends on the row count alone; the launchers and the nodes' workspace both ask here.
/// </summary>
static class ColumnGroups
{
    // 64 rows a group (8 a warp in the fused LayerNorm backward's 8-warp block): 8192 rows make 128 blocks, about one an SM
    // of an H200, where 256 rows a group left 100 of its 132 SMs idle.
    const int RowsPerGroup = 64, MaxGroups = 1024;

    public static int Of(long rows) => (int)Math.Clamp((rows + RowsPerGroup - 1) / RowsPerGroup, 1, MaxGroups);

    /// <summary>Scratch of the two partial tables (dγ and dβ) on the GPU, [2, groups, cols] fp32; none on the CPU.</summary>
    public static long ScratchBytes(Device device, long rows, long cols) => device.Kind != DeviceKind.Cuda ? 0 : 2 * SumScratchBytes(device, rows, cols);

    /// <summary>Scratch of one partial table (a column sum, e.g. a bias gradient), [groups, cols] fp32; none on the CPU.</summary>
    public static long SumScratchBytes(Device device, long rows, long cols) => device.Kind != DeviceKind.Cuda ? 0 : 4L * Of(rows) * cols;
}
