using TransformerLS.Tensors;

namespace TransformerLS.Backends;

/// <summary>
/// What a backend is, without its ops: a device, its memory (tensors, fills, host copies, allocator statistics) and
/// a way to wait. Two implementations: the CPU backend (the float64 reference) and the CUDA backend (one context,
/// one stream). The ops live in Ops/, one facade per family, each checking its arguments once and dispatching to
/// its CUDA launcher or to the generic CPU reference.
/// </summary>
public interface IBackend : IDisposable
{
    Device Device { get; }

    /// <summary>A tensor whose contents are undefined.</summary>
    Tensor Empty(Shape shape, DType dtype);
    void Fill(Tensor t, float value);
    void CopyFromHost(Tensor t, ReadOnlySpan<byte> bytes);
    void CopyToHost(Tensor t, Span<byte> bytes);
    internal void Free(ulong devicePointer, long bytes);
    /// <summary>Makes now what the backend would create on first use (cuBLAS's workspace), so a run's measured peak is its plan's.</summary>
    void Prepare();
    /// <summary>Waits for all queued work (a no-op on the CPU).</summary>
    void Synchronize();
    /// <summary>Bytes of tensors and op scratch live on this backend, and their high-water mark.</summary>
    Cuda.AllocatorStats MemoryStats { get; }
    /// <summary>Starts a new high-water mark at the current live size.</summary>
    void ResetPeak();
}
