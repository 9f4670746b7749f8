using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>
/// The row groups of a deterministic two-stage column reduction (LayerNorm's and DualLN's dγ, dβ; column sums): stage 1 sums each
/// group's rows into an fp32 partial row, stage 2 adds the partials in group order, so the bits do not depend on
/// scheduling. The number of groups depends on the row count alone; the launchers and the nodes' workspace both ask here.
/// </summary>
static class ColumnGroups
{
    // Up to 65536 rows: 64 rows a group (8 a warp in the fused LayerNorm backward's 8-warp block), at most 256 groups:
    // 8192 rows make 128 blocks, about one an SM of an H200 (256 rows a group left 100 of its 132 SMs idle there, LayerNorm
    // backward 51 us). Beyond, 256 rows a group up to 1024 groups, as before: 64 rows a group at 65536 rows (1024 groups)
    // measured LayerNorm's backward at 0.136 ms on the H200 where 256 groups had measured 0.083 ms.
    const int MaxGroups = 1024;

    // Below 8192 rows, 16 rows a group up to 128 groups: the landmarks' DualLN backward (2048 rows at B16 H8 r64) ran
    // 32 blocks for 30 us on the H200.
    public static int Of(long rows) => (int)Math.Clamp(Math.Max(Math.Max(Math.Min((rows + 15) / 16, 128), Math.Min((rows + 63) / 64, 256)), (rows + 255) / 256), 1, MaxGroups);

    /// <summary>Scratch of the two partial tables (dγ and dβ) on the GPU, [2, groups, cols] fp32; none on the CPU.</summary>
    public static long ScratchBytes(Device device, long rows, long cols) => device.Kind != DeviceKind.Cuda ? 0 : 2 * SumScratchBytes(device, rows, cols);

    /// <summary>Scratch of one partial table (a column sum, e.g. a bias gradient), [groups, cols] fp32; none on the CPU.</summary>
    public static long SumScratchBytes(Device device, long rows, long cols) => device.Kind != DeviceKind.Cuda ? 0 : 4L * Of(rows) * cols;
}
