namespace TransformerLS.Cuda;

/// <summary>
/// A typed device buffer in ManagedCuda's shape. Host copies are synchronous (the host span must stay
/// valid until the copy is done); everything else is ordered on the context's stream.
/// </summary>
public sealed unsafe class CudaDeviceVariable<T> : IDisposable where T : unmanaged
{
    readonly CudaContext _context;
    public ulong DevicePointer { get; private set; }
    public long Size { get; }
    public long SizeInBytes => Size * sizeof(T);

    public CudaDeviceVariable(CudaContext context, long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        _context = context;
        Size = size;
        DevicePointer = context.Allocator.Allocate(SizeInBytes);
    }

    public void CopyToDevice(ReadOnlySpan<T> source)
    {
        CheckLength(source.Length, nameof(source));
        ObjectDisposedException.ThrowIf(DevicePointer == 0, this);
        _context.MakeCurrent();
        fixed (T* p = source)
        {
            Driver.Check(Driver.cuMemcpyHtoDAsync_v2(DevicePointer, p, (nuint)SizeInBytes, _context.Stream.Handle));
            Driver.Check(Driver.cuStreamSynchronize(_context.Stream.Handle));
        }
    }

    public void CopyToHost(Span<T> destination)
    {
        CheckLength(destination.Length, nameof(destination));
        ObjectDisposedException.ThrowIf(DevicePointer == 0, this);
        _context.MakeCurrent();
        fixed (T* p = destination)
        {
            Driver.Check(Driver.cuMemcpyDtoHAsync_v2(p, DevicePointer, (nuint)SizeInBytes, _context.Stream.Handle));
            Driver.Check(Driver.cuStreamSynchronize(_context.Stream.Handle));
        }
    }

    public T[] ToArray()
    {
        var a = new T[Size];
        CopyToHost(a);
        return a;
    }

    /// <summary>Fills every byte with <paramref name="value"/> (stream-ordered).</summary>
    public void Memset(byte value)
    {
        _context.MakeCurrent();
        Driver.Check(Driver.cuMemsetD8Async(DevicePointer, value, (nuint)SizeInBytes, _context.Stream.Handle));
    }

    void CheckLength(int length, string name)
    {
        if (length != Size)
            throw new ArgumentException($"{name} has {length} elements; the device buffer holds {Size} {typeof(T).Name}", name);
    }

    public void Dispose()
    {
        if (DevicePointer == 0) return;
        _context.Allocator.Free(DevicePointer, SizeInBytes);
        DevicePointer = 0;
    }
}

/// <summary>Raw stream-ordered copies and fills on device pointers.</summary>
public static unsafe class CudaMemory
{
    public static void CopyDeviceToDevice(CudaStream stream, ulong dst, ulong src, long bytes)
    {
        stream.Context.MakeCurrent();
        Driver.Check(Driver.cuMemcpyDtoDAsync_v2(dst, src, (nuint)bytes, stream.Handle));
    }

    public static void CopyHostToDevice(CudaStream stream, ulong dst, ReadOnlySpan<byte> src)
    {
        stream.Context.MakeCurrent();
        fixed (byte* p = src)
        {
            Driver.Check(Driver.cuMemcpyHtoDAsync_v2(dst, p, (nuint)src.Length, stream.Handle));
            Driver.Check(Driver.cuStreamSynchronize(stream.Handle));
        }
    }

    public static void CopyDeviceToHost(CudaStream stream, Span<byte> dst, ulong src)
    {
        stream.Context.MakeCurrent();
        fixed (byte* p = dst)
        {
            Driver.Check(Driver.cuMemcpyDtoHAsync_v2(p, src, (nuint)dst.Length, stream.Handle));
            Driver.Check(Driver.cuStreamSynchronize(stream.Handle));
        }
    }

    /// <summary>Fills <paramref name="count32"/> 32-bit words with <paramref name="pattern"/>.</summary>
    public static void Fill32(CudaStream stream, ulong dst, uint pattern, long count32)
    {
        stream.Context.MakeCurrent();
        Driver.Check(Driver.cuMemsetD32Async(dst, pattern, (nuint)count32, stream.Handle));
    }

    /// <summary>Fills <paramref name="count16"/> 16-bit words with <paramref name="pattern"/> (bf16 fills; no host copy, so capturable).</summary>
    public static void Fill16(CudaStream stream, ulong dst, ushort pattern, long count16)
    {
        stream.Context.MakeCurrent();
        Driver.Check(Driver.cuMemsetD16Async(dst, pattern, (nuint)count16, stream.Handle));
    }

    public static void Fill8(CudaStream stream, ulong dst, byte value, long bytes)
    {
        stream.Context.MakeCurrent();
        Driver.Check(Driver.cuMemsetD8Async(dst, value, (nuint)bytes, stream.Handle));
    }
}
