namespace TransformerLS.Cuda;

/// <summary>Allocation counters of one context; tests assert that <see cref="LiveBytes"/> returns to its start.</summary>
public readonly record struct AllocatorStats(long LiveBytes, long PeakBytes, long LiveAllocations, long TotalAllocations);

/// <summary>
/// Stream-ordered allocation from the device's default memory pool. Frees are ordered on the same stream,
/// so a buffer may be released while kernels that use it are still queued.
/// </summary>
public sealed unsafe class CudaAllocator
{
    readonly CudaContext _context;
    long _live, _peak, _liveCount, _total;

    internal CudaAllocator(CudaContext context) => _context = context;

    public AllocatorStats Stats => new(Interlocked.Read(ref _live), Interlocked.Read(ref _peak),
        Interlocked.Read(ref _liveCount), Interlocked.Read(ref _total));

    /// <summary>Starts a new high-water mark at the current live size.</summary>
    public void ResetPeak() => Interlocked.Exchange(ref _peak, Interlocked.Read(ref _live));

    public ulong Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes == 0) bytes = 1; // a distinct, valid pointer for empty tensors
        _context.MakeCurrent();
        ulong ptr;
        var status = Driver.cuMemAllocAsync(&ptr, (nuint)bytes, _context.Stream.Handle);
        if (status == Driver.OutOfMemory)
        {
            var (free, total) = _context.MemoryInfo();
            throw new CudaOutOfMemoryException(bytes, free, total, Interlocked.Read(ref _live));
        }
        Driver.Check(status);
        var live = Interlocked.Add(ref _live, bytes);
        Interlocked.Increment(ref _liveCount);
        Interlocked.Increment(ref _total);
        long peak;
        while (live > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, live, peak) != peak) { }
        return ptr;
    }

    public void Free(ulong ptr, long bytes)
    {
        if (bytes == 0) bytes = 1;
        _context.MakeCurrent();
        Driver.Check(Driver.cuMemFreeAsync(ptr, _context.Stream.Handle));
        Interlocked.Add(ref _live, -bytes);
        Interlocked.Decrement(ref _liveCount);
    }
}
