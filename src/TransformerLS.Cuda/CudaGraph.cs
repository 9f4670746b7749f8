namespace TransformerLS.Cuda;

/// <summary>
/// An instantiated CUDA graph recorded from a stream (ManagedCuda's CudaGraph + CudaGraphExec in one): what the
/// recording queued on the stream, allocations and frees included, replayed by one launch. Instantiated with
/// auto-free-on-launch, so memory the graph allocates and does not free (its outputs) lives until the next launch,
/// at the same address every time.
/// </summary>
public sealed unsafe class CudaGraph : IDisposable
{
    const int CaptureModeRelaxed = 2;         // CU_STREAM_CAPTURE_MODE_RELAXED: module loads may happen while recording
    const ulong InstantiateAutoFreeOnLaunch = 1;
    readonly CudaContext _context;
    nint _graph, _exec;

    CudaGraph(CudaContext context, nint graph, nint exec) => (_context, _graph, _exec) = (context, graph, exec);

    /// <summary>Records what <paramref name="record"/> queues on <paramref name="stream"/> (nothing runs) and instantiates it.</summary>
    public static CudaGraph Capture(CudaStream stream, Action record)
    {
        stream.Context.MakeCurrent();
        Driver.Check(Driver.cuStreamBeginCapture_v2(stream.Handle, CaptureModeRelaxed));
        nint graph = 0;
        try
        {
            record();
        }
        catch
        {
            Driver.cuStreamEndCapture(stream.Handle, &graph); // ends the (now invalid) capture; its error is the lesser one
            if (graph != 0) Driver.cuGraphDestroy(graph);
            throw;
        }
        Driver.Check(Driver.cuStreamEndCapture(stream.Handle, &graph));
        nint exec;
        var status = Driver.cuGraphInstantiateWithFlags(&exec, graph, InstantiateAutoFreeOnLaunch);
        if (status != Driver.Success)
        {
            Driver.cuGraphDestroy(graph);
            Driver.Check(status, call: "cuGraphInstantiateWithFlags");
        }
        return new CudaGraph(stream.Context, graph, exec);
    }

    /// <summary>Queues one replay on <paramref name="stream"/>; does not wait.</summary>
    public void Launch(CudaStream stream)
    {
        ObjectDisposedException.ThrowIf(_exec == 0, this);
        Driver.Check(Driver.cuGraphLaunch(_exec, stream.Handle));
    }

    /// <summary>Destroys the graph (call after the stream has finished its launches) and trims the device's graph memory.</summary>
    public void Dispose()
    {
        if (_exec == 0) return;
        _context.MakeCurrent();
        Driver.cuGraphExecDestroy(_exec);
        Driver.cuGraphDestroy(_graph);
        Driver.cuDeviceGraphMemTrim(_context.Device.Ordinal);
        _exec = _graph = 0;
    }
}
