namespace TransformerLS.Cuda;

public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator Dim3(uint x) => new(x);
    public static implicit operator Dim3(int x) => new((uint)x);
}

/// <summary>Static facts about a compiled kernel, as the driver reports them.</summary>
public readonly record struct KernelAttributes(int Registers, int StaticSharedBytes, int LocalBytes, int MaxThreadsPerBlock, int BinaryVersion);

/// <summary>
/// One kernel function. Every kernel of this library takes a single by-value params struct, so a launch
/// is one pointer to a stack copy: no per-launch allocation, no boxing, no implicit synchronization.
/// </summary>
public sealed unsafe class CudaKernel
{
    readonly CudaContext _context;
    int _dynamicSharedLimit = -1; // dynamic bytes a launch may ask for without raising the limit; -1 until first asked
    int _staticShared = -1;       // the kernel's static shared memory, asked of the driver once
    public nint Handle { get; }
    public string Name { get; }

    internal CudaKernel(CudaContext context, nint handle, string name)
    {
        _context = context; Handle = handle; Name = name;
    }

    public KernelAttributes Attributes
    {
        get
        {
            int Get(int a) { int v; Driver.Check(Driver.cuFuncGetAttribute(&v, a, Handle), Name); return v; }
            return new KernelAttributes(Get(4), Get(1), Get(3), Get(0), Get(6));
        }
    }

    /// <summary>The kernel's static shared memory in bytes (read from the driver once): launches add their dynamic bytes to it.</summary>
    public int StaticSharedBytes
    {
        get
        {
            if (_staticShared < 0) { int v; Driver.Check(Driver.cuFuncGetAttribute(&v, 1 /* SHARED_SIZE_BYTES */, Handle), Name); _staticShared = v; }
            return _staticShared;
        }
    }

    /// <summary>Launches with the params struct <paramref name="p"/> as the kernel's only argument.</summary>
    public void Launch<TParams>(Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, in TParams p)
        where TParams : unmanaged
    {
        if (grid.X == 0 || grid.Y == 0 || grid.Z == 0) return; // empty problem: nothing to launch
        Prepare(sharedBytes);
        TParams copy = p;
        void* arg = &copy;
        Driver.Check(Driver.cuLaunchKernel(Handle, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z,
            sharedBytes, stream.Handle, &arg, null), Name);
        if (_context.SyncAfterLaunch) Driver.Check(Driver.cuStreamSynchronize(stream.Handle), Name);
    }

    /// <summary>
    /// <see cref="Launch{TParams}"/> as a programmatic dependent launch where the context allows it
    /// (<see cref="CudaContext.DependentLaunch"/>): the kernel may start while the stream's previous kernel still runs, so
    /// it must run griddepcontrol.wait before it reads anything that kernel writes (kernels/common/dependent_launch.cuh: grid_dependency_wait).
    /// </summary>
    public void LaunchDependent<TParams>(Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, in TParams p)
        where TParams : unmanaged
    {
        if (!_context.DependentLaunch) { Launch(grid, block, sharedBytes, stream, p); return; }
        if (grid.X == 0 || grid.Y == 0 || grid.Z == 0) return;
        Prepare(sharedBytes);
        TParams copy = p;
        void* arg = &copy;
        var attribute = new Driver.LaunchAttribute { Id = Driver.LaunchAttributeProgrammaticStreamSerialization, Value = 1 };
        var config = new Driver.LaunchConfig
        {
            GridX = grid.X, GridY = grid.Y, GridZ = grid.Z, BlockX = block.X, BlockY = block.Y, BlockZ = block.Z,
            SharedBytes = sharedBytes, Stream = stream.Handle, Attributes = &attribute, AttributeCount = 1,
        };
        Driver.Check(Driver.cuLaunchKernelEx(&config, Handle, &arg, null), Name);
        if (_context.SyncAfterLaunch) Driver.Check(Driver.cuStreamSynchronize(stream.Handle), Name);
    }

    /// <summary>The context current; static plus dynamic shared memory above the default 48 KiB needs the opt-in attribute.</summary>
    void Prepare(uint sharedBytes)
    {
        _context.MakeCurrent();
        if (_dynamicSharedLimit < 0) _dynamicSharedLimit = Math.Max(0, 48 * 1024 - StaticSharedBytes);
        if (sharedBytes > _dynamicSharedLimit) RaiseSharedLimit(sharedBytes);
    }

    void RaiseSharedLimit(uint bytes)
    {
        var total = (long)bytes + StaticSharedBytes;
        if (total > _context.Device.MaxSharedMemoryPerBlockOptin)
            throw new ArgumentOutOfRangeException(nameof(bytes), bytes,
                $"kernel {Name} asks for {total} bytes of shared memory ({bytes} dynamic); {_context.Device.Name} allows {_context.Device.MaxSharedMemoryPerBlockOptin}");
        Driver.Check(Driver.cuFuncSetAttribute(Handle, 8 /* MAX_DYNAMIC_SHARED_SIZE_BYTES */, (int)bytes), Name);
        _dynamicSharedLimit = (int)bytes;
    }
}
