using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>
/// When a row kernel may hold its rows in registers as 16-byte vectors (kernels/common/row_vectors.cuh): 8 bf16 or 4 fp32
/// columns a vector, at most 4 vectors a lane (cols ≤ 1024 bf16, ≤ 512 fp32), cols (and every other extent the kernel
/// splits a row by, e.g. DualLN's head dim) a multiple of the vector, every tensor 16-byte aligned. Otherwise the
/// launcher runs the scalar kernels, which take any shape.
/// </summary>
static class RowVectors
{
    public const int MaxVectorsPerLane = 4;

    /// <summary>
    /// Blocks of the forward row kernels (grid-stride over rows): each of a block's warps normalizes tls_rows_per_warp rows
    /// (read from the module), but a few rows (a decode step's batch) are spread over up to <see cref="BlocksPerSm"/>
    /// blocks an SM, a row a warp, rather than left to a handful of warps taking eight each in turn.
    /// </summary>
    public static uint Blocks(Backends.CudaBackend be, string file, long rows, int warpsPerBlock)
    {
        long perBlock = (long)warpsPerBlock * be.Constant(file, "tls_rows_per_warp");
        long full = (rows + perBlock - 1) / perBlock, oneEach = (rows + warpsPerBlock - 1) / warpsPerBlock;
        return (uint)Math.Max(full, Math.Min(oneEach, (long)BlocksPerSm * be.Context.Device.MultiprocessorCount));
    }

    const int BlocksPerSm = 4;

    public static int Width(DType dtype) => dtype == DType.Float32 ? 4 : 8;

    /// <summary>The kernel of <paramref name="names"/> (fp32 v1-v4, then bf16 v1-v4) for these rows, or null for the scalar path.</summary>
    public static string? Kernel(string[] names, DType dtype, int cols, params ReadOnlySpan<Tensor?> tensors) => Kernel(names, dtype, cols, 0, tensors);

    /// <summary>As above, where each row is also cut into pieces of <paramref name="piece"/> columns (0: none).</summary>
    public static string? Kernel(string[] names, DType dtype, int cols, int piece, params ReadOnlySpan<Tensor?> tensors)
    {
        int n = Width(dtype);
        if (cols <= 0 || cols % n != 0 || (piece != 0 && piece % n != 0)) return null;
        int vpl = (cols + 32 * n - 1) / (32 * n);
        if (vpl > MaxVectorsPerLane) return null;
        foreach (var t in tensors)
            if (t is not null && t.DevicePointer % 16 != 0) return null;
        return names[(dtype == DType.Float32 ? 0 : MaxVectorsPerLane) + vpl - 1];
    }
}
