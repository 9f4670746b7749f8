namespace TransformerLS.Cuda;

/// <summary>A non-blocking stream of one context.</summary>
public sealed unsafe class CudaStream : IDisposable
{
    public CudaContext Context { get; }
    public nint Handle { get; private set; }

    public CudaStream(CudaContext context)
    {
        Context = context;
        context.MakeCurrent();
        nint s;
        Driver.Check(Driver.cuStreamCreate(&s, 1 /* CU_STREAM_NON_BLOCKING */));
        Handle = s;
    }

    public void Synchronize()
    {
        Context.MakeCurrent();
        Driver.Check(Driver.cuStreamSynchronize(Handle));
    }

    public void Dispose()
    {
        if (Handle == 0) return;
        Context.MakeCurrent();
        Driver.cuStreamDestroy_v2(Handle);
        Handle = 0;
    }
}

/// <summary>An event for timing stream work.</summary>
public sealed unsafe class CudaEvent : IDisposable
{
    readonly CudaContext _context;
    public nint Handle { get; private set; }

    public CudaEvent(CudaContext context)
    {
        _context = context;
        context.MakeCurrent();
        nint e;
        Driver.Check(Driver.cuEventCreate(&e, 0));
        Handle = e;
    }

    public void Record(CudaStream stream) => Driver.Check(Driver.cuEventRecord(Handle, stream.Handle));

    public void Synchronize() => Driver.Check(Driver.cuEventSynchronize(Handle));

    /// <summary>Milliseconds between two recorded events (waits for <paramref name="end"/>).</summary>
    public static float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        end.Synchronize();
        float ms;
        Driver.Check(Driver.cuEventElapsedTime(&ms, start.Handle, end.Handle));
        return ms;
    }

    public void Dispose()
    {
        if (Handle == 0) return;
        _context.MakeCurrent();
        Driver.cuEventDestroy_v2(Handle);
        Handle = 0;
    }
}
