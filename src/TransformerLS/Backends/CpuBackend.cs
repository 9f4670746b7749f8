using TransformerLS.Tensors;

namespace TransformerLS.Backends;

/// <summary>
/// The reference backend: every op reads its inputs exactly, computes in float64 with the generic reference
/// in Ops/ (through Ops/CpuReference), and rounds each output once to its dtype. Used by every GPU test, by CI and where no GPU is.
/// It alone holds float64 tensors (a float64 model is the reference for model-level finite differences).
/// </summary>
public sealed class CpuBackend : IBackend
{
    /// <summary>The shared instance; tests that assert memory statistics make their own.</summary>
    public static readonly CpuBackend Instance = new();
    long _live, _peak, _liveCount, _total;

    public Device Device => Device.Cpu;

    public Cuda.AllocatorStats MemoryStats => new(Interlocked.Read(ref _live), Interlocked.Read(ref _peak),
        Interlocked.Read(ref _liveCount), Interlocked.Read(ref _total));

    public void ResetPeak() => Interlocked.Exchange(ref _peak, Interlocked.Read(ref _live));

    public Tensor Empty(Shape shape, DType dtype)
    {
        var bytes = shape.Count * dtype.Size();
        if (bytes > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(shape), shape.ToString(), $"a CPU tensor holds at most {Array.MaxLength} bytes; {bytes} asked");
        var t = new Tensor(this, shape, dtype, new byte[bytes], 0, owns: true);
        // Counted like the CUDA allocator (an empty tensor counts one byte), so memory plans check on both backends.
        var live = Interlocked.Add(ref _live, Math.Max(bytes, 1));
        Interlocked.Increment(ref _liveCount);
        Interlocked.Increment(ref _total);
        long peak;
        while (live > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, live, peak) != peak) { }
        return t;
    }

    public void Fill(Tensor t, float value)
    {
        Check.On(this, t, nameof(t));
        switch (t.DType)
        {
            case DType.Float32: t.HostFloats.Fill(value); break;
            case DType.BFloat16: t.HostBFloat16.Fill(BFloat16.FromFloat(value)); break;
            default: t.HostDoubles.Fill(value); break;
        }
    }

    public void CopyFromHost(Tensor t, ReadOnlySpan<byte> bytes) => bytes.CopyTo(t.HostBytes);
    public void CopyToHost(Tensor t, Span<byte> bytes) => t.HostBytes.CopyTo(bytes);
    void IBackend.Free(ulong devicePointer, long bytes)
    {
        Interlocked.Add(ref _live, -Math.Max(bytes, 1));
        Interlocked.Decrement(ref _liveCount);
    }
    public void Prepare() { }
    public void Synchronize() { }
    public void Dispose() { }

    /// <summary>The tensor's values, widened exactly to float64.</summary>
    public static double[] Read(Tensor t)
    {
        var r = new double[t.Count];
        t.DType.Decode(t.HostBytes, r);
        return r;
    }

    /// <summary>Stores float64 results, rounded once to the tensor's dtype.</summary>
    public static void Write(Tensor t, ReadOnlySpan<double> v)
    {
        t.DType.Encode(v, t.HostBytes);
    }
}
