using System.Text;

namespace TransformerLS.Cuda;

/// <summary>What the library needs to know about one device.</summary>
public sealed record CudaDeviceProperties(
    int Ordinal, string Name, int Major, int Minor, int MultiprocessorCount, long TotalMemory,
    int MaxSharedMemoryPerBlockOptin, int L2CacheBytes, int ClockKHz, int MemoryClockKHz, int MemoryBusWidth)
{
    /// <summary>The arch NVRTC compiles for, e.g. "sm_90".</summary>
    public string Arch => $"sm_{Major}{Minor}";
    public int ArchNumber => Major * 10 + Minor;
}

/// <summary>
/// The primary context of one device, its default stream and a stream-ordered allocator
/// (cuMemAllocAsync on the device's default pool, which keeps freed blocks cached). Owns nothing that a
/// finalizer frees: dispose it.
/// </summary>
public sealed unsafe class CudaContext : IDisposable
{
    [ThreadStatic] static nint t_current;
    readonly nint _pool;
    bool _disposed;

    public nint Handle { get; }
    public CudaDeviceProperties Device { get; }
    public CudaStream Stream { get; }
    public CudaAllocator Allocator { get; }

    /// <summary>Set TLS_CUDA_SYNC=1 to synchronize after every launch, so an asynchronous fault names its kernel.</summary>
    public bool SyncAfterLaunch { get; set; } = Environment.GetEnvironmentVariable("TLS_CUDA_SYNC") == "1";

    /// <summary>
    /// Whether <see cref="CudaKernel.LaunchDependent{TParams}"/> launches programmatically dependent kernels (their prologue
    /// overlaps the previous kernel's tail): on sm_90 and later with a CUDA 12.3 or later driver, unless TLS_CUDA_DEPENDENT_LAUNCH=0.
    /// </summary>
    public bool DependentLaunch { get; set; }

    public CudaContext(int ordinal = 0)
    {
        var count = DeviceCount();
        if (ordinal < 0 || ordinal >= count)
            throw new ArgumentOutOfRangeException(nameof(ordinal), ordinal, $"device ordinal must be in [0, {count}); this machine has {count} CUDA device(s)");
        Device = GetProperties(ordinal);
        // cuLaunchKernelEx and the capture of such launches into graphs need a 12.3 driver (an H100 runs on 11.8 drivers too).
        DependentLaunch = Device.Major >= 9 && DriverVersion() >= 12030 && Environment.GetEnvironmentVariable("TLS_CUDA_DEPENDENT_LAUNCH") != "0";
        nint ctx;
        Driver.Check(Driver.cuDevicePrimaryCtxRetain(&ctx, ordinal));
        Handle = ctx;
        MakeCurrent();
        nint pool;
        Driver.Check(Driver.cuDeviceGetDefaultMemPool(&pool, ordinal));
        _pool = pool;
        ulong keep = ulong.MaxValue; // keep freed memory in the pool: allocation stays cheap after warm-up
        Driver.Check(Driver.cuMemPoolSetAttribute(_pool, 4 /* CU_MEMPOOL_ATTR_RELEASE_THRESHOLD */, &keep));
        Stream = new CudaStream(this);
        Allocator = new CudaAllocator(this);
    }

    /// <summary>Makes this context current on the calling thread (cheap when it already is).</summary>
    public void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (t_current == Handle) return;
        Driver.Check(Driver.cuCtxSetCurrent(Handle));
        t_current = Handle;
    }

    public void Synchronize()
    {
        MakeCurrent();
        Driver.Check(Driver.cuCtxSynchronize());
    }

    public (long Free, long Total) MemoryInfo()
    {
        MakeCurrent();
        nuint free, total;
        Driver.Check(Driver.cuMemGetInfo_v2(&free, &total));
        return ((long)free, (long)total);
    }

    /// <summary>Returns cached pool memory to the driver (only what no live allocation uses).</summary>
    public void TrimPool()
    {
        MakeCurrent();
        Driver.Check(Driver.cuStreamSynchronize(Stream.Handle));
        Driver.Check(Driver.cuMemPoolTrimTo(_pool, 0));
    }

    /// <summary>Starts (or stops) the profiler's collection: brackets what `ncu --profile-from-start off` measures.</summary>
    public void ProfilerStart() { MakeCurrent(); Driver.Check(Driver.cuProfilerStart(), call: "cuProfilerStart"); }

    /// <inheritdoc cref="ProfilerStart"/>
    public void ProfilerStop() { MakeCurrent(); Driver.Check(Driver.cuProfilerStop(), call: "cuProfilerStop"); }

    /// <summary>Loads a CUBIN, PTX or fatbin image.</summary>
    public CudaModule LoadModule(ReadOnlySpan<byte> image, string name)
    {
        MakeCurrent();
        nint module;
        // cuModuleLoadData reads PTX as a NUL-terminated string; a CUBIN or fatbin carries its own size.
        var copy = new byte[image.Length + 1];
        image.CopyTo(copy);
        fixed (byte* p = copy) Driver.Check(Driver.cuModuleLoadData(&module, p), name);
        return new CudaModule(this, module, name);
    }

    public void Dispose()
    {
        if (_disposed) return;
        Stream.Synchronize();
        Stream.Dispose();
        _disposed = true;
        Driver.cuDevicePrimaryCtxRelease_v2(Device.Ordinal);
        if (t_current == Handle) t_current = 0;
    }

    // ---- process-wide queries ----

    static readonly Lock InitGate = new();
    static bool s_initialized;

    /// <summary>Loads libcuda and calls cuInit once. Throws with a clear message when there is no usable driver.</summary>
    public static void Initialize()
    {
        lock (InitGate)
        {
            if (s_initialized) return;
            NativeLibraries.Load(NativeLib.Driver);
            Driver.Check(Driver.cuInit(0));
            s_initialized = true;
        }
    }

    /// <summary>Number of devices; 0 when the driver loads but finds none.</summary>
    public static int DeviceCount()
    {
        try { Initialize(); }
        catch (CudaException e) when (e.Code == Driver.NoDevice) { return 0; }
        int n;
        Driver.Check(Driver.cuDeviceGetCount(&n));
        return n;
    }

    /// <summary>True when a driver loads and reports at least one device; <paramref name="reason"/> says why not.</summary>
    public static bool IsAvailable(out string reason)
    {
        try
        {
            var n = DeviceCount();
            reason = n > 0 ? $"{n} CUDA device(s)" : "the CUDA driver reports no device";
            return n > 0;
        }
        catch (Exception e) when (e is CudaLibraryNotFoundException or CudaException)
        {
            reason = e.Message;
            return false;
        }
    }

    public static int DriverVersion()
    {
        Initialize();
        int v;
        Driver.Check(Driver.cuDriverGetVersion(&v));
        return v;
    }

    public static CudaDeviceProperties GetProperties(int ordinal)
    {
        Initialize();
        int dev;
        Driver.Check(Driver.cuDeviceGet(&dev, ordinal));
        var name = stackalloc byte[256];
        Driver.Check(Driver.cuDeviceGetName(name, 256, dev));
        nuint total;
        Driver.Check(Driver.cuDeviceTotalMem_v2(&total, dev));
        return new CudaDeviceProperties(ordinal, Encoding.UTF8.GetString(new ReadOnlySpan<byte>(name, 256)).TrimEnd('\0'),
            Attr(75, dev), Attr(76, dev), Attr(16, dev), (long)total, Attr(97, dev), Attr(38, dev), Attr(13, dev), Attr(36, dev), Attr(37, dev));
    }

    static int Attr(int attribute, int dev)
    {
        int v;
        Driver.Check(Driver.cuDeviceGetAttribute(&v, attribute, dev));
        return v;
    }
}

/// <summary>A loaded module; functions are looked up by (lowered) name.</summary>
public sealed unsafe class CudaModule(CudaContext context, nint handle, string name) : IDisposable
{
    public nint Handle { get; private set; } = handle;
    public string Name { get; } = name;
    public CudaContext Context { get; } = context;

    public CudaKernel GetKernel(string kernelName)
    {
        Context.MakeCurrent();
        nint fn;
        var bytes = Encoding.UTF8.GetBytes(kernelName + "\0");
        fixed (byte* p = bytes) Driver.Check(Driver.cuModuleGetFunction(&fn, Handle, p), $"{Name}:{kernelName}");
        return new CudaKernel(Context, fn, kernelName);
    }

    /// <summary>
    /// Element <paramref name="index"/> of the module's 32-bit global (array) <paramref name="globalName"/>, a kernel's
    /// exported tile size or shared-memory size: read synchronously, so not while a stream is being captured.
    /// </summary>
    public int GetInt32(string globalName, int index = 0)
    {
        Context.MakeCurrent();
        ulong ptr;
        nuint size;
        var bytes = Encoding.UTF8.GetBytes(globalName + "\0");
        fixed (byte* p = bytes) Driver.Check(Driver.cuModuleGetGlobal_v2(&ptr, &size, Handle, p), $"{Name}:{globalName}");
        if (index < 0 || (ulong)size < 4UL * ((ulong)index + 1))
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Name}:{globalName} is {size} bytes; element {index} of 32-bit integers does not exist");
        int value;
        Driver.Check(Driver.cuMemcpyDtoHAsync_v2(&value, ptr + 4UL * (ulong)index, 4, Context.Stream.Handle), $"{Name}:{globalName}");
        Driver.Check(Driver.cuStreamSynchronize(Context.Stream.Handle), $"{Name}:{globalName}");
        return value;
    }

    public void Dispose()
    {
        if (Handle == 0) return;
        Context.MakeCurrent();
        Driver.cuModuleUnload(Handle);
        Handle = 0;
    }
}
