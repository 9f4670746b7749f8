using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Backends;

/// <summary>
/// The GPU backend: one context, one stream, cuBLAS bound to it, kernels from <see cref="KernelLibrary"/>
/// loaded per source file on first use. Launch paths allocate nothing on the managed heap and never
/// synchronize; host copies do.
/// </summary>
public sealed class CudaBackend : IBackend
{
    readonly Dictionary<string, CudaModule> _modules = [];
    readonly Dictionary<string, CudaKernel> _kernels = [];
    readonly Dictionary<(string File, string Name, int Index), int> _constants = [];
    readonly Lock _gate = new();
    CudaBlas? _blas;
    CudaBlasLt? _blasLt;

    public CudaContext Context { get; }
    public CudaStream Stream => Context.Stream;
    public Device Device { get; }
    public AllocatorStats MemoryStats => Context.Allocator.Stats;
    public void ResetPeak() => Context.Allocator.ResetPeak();

    /// <summary>Let float32 matmuls use TF32 tensor cores (off by default: full fp32).</summary>
    public bool AllowTf32 { get; set; }

    public CudaBackend(int ordinal = 0)
    {
        Context = new CudaContext(ordinal);
        Device = Device.Cuda(ordinal);
        if (CudaRuntimeCompiler.CheckAgainstDriver(CudaContext.DriverVersion()) is { } warning
            && Environment.GetEnvironmentVariable(KernelLibrary.FatbinDirVariable) is null)
            throw new InvalidOperationException(warning);
    }

    public CudaBlas Blas
    {
        get { lock (_gate) return _blas ??= new CudaBlas(Context, Stream); }
    }

    /// <summary>cuBLASLt on the same stream: GEMMs with a fused epilogue (the Linear's bias).</summary>
    public CudaBlasLt BlasLt
    {
        get { lock (_gate) return _blasLt ??= new CudaBlasLt(Context, Stream); }
    }

    /// <summary>The kernel <paramref name="name"/> of kernels/<paramref name="file"/>, compiled or loaded on first use.</summary>
    public CudaKernel Kernel(string file, string name)
    {
        lock (_gate)
        {
            if (_kernels.TryGetValue(name, out var k)) return k;
            return _kernels[name] = Module(file).GetKernel(name);
        }
    }

    /// <summary>
    /// The 32-bit constant <paramref name="name"/> (element <paramref name="index"/> of an exported table) that
    /// kernels/<paramref name="file"/> exports with TLS_EXPORT / TLS_EXPORT_TABLE: a tile size, a block shape or the
    /// shared memory of a carve-up. Read from the loaded module once and cached: the launcher's one source.
    /// </summary>
    public int Constant(string file, string name, int index = 0)
    {
        lock (_gate)
        {
            if (_constants.TryGetValue((file, name, index), out var v)) return v;
            return _constants[(file, name, index)] = Module(file).GetInt32(name, index);
        }
    }

    CudaModule Module(string file)
    {
        if (_modules.TryGetValue(file, out var module)) return module;
        var (image, _) = KernelLibrary.GetImage(file, Context.Device.ArchNumber);
        return _modules[file] = Context.LoadModule(image, file);
    }

    public Tensor Empty(Shape shape, DType dtype) => dtype == DType.Float64
        ? throw new ArgumentException($"float64 tensors exist only on the CPU backend (the finite-difference reference); asked for {shape} float64 on {Device}", nameof(dtype))
        : new(this, shape, dtype, null, Context.Allocator.Allocate(shape.Count * dtype.Size()), owns: true);

    public void Fill(Tensor t, float value)
    {
        Check.On(this, t, nameof(t));
        if (t.DType == DType.Float32)
            CudaMemory.Fill32(Stream, t.DevicePointer, BitConverter.SingleToUInt32Bits(value), t.Count);
        else CudaMemory.Fill16(Stream, t.DevicePointer, BFloat16.FromFloat(value), t.Count);
    }

    public void CopyFromHost(Tensor t, ReadOnlySpan<byte> bytes) => CudaMemory.CopyHostToDevice(Stream, t.DevicePointer, bytes);
    public void CopyToHost(Tensor t, Span<byte> bytes) => CudaMemory.CopyDeviceToHost(Stream, bytes, t.DevicePointer);
    void IBackend.Free(ulong devicePointer, long bytes) => Context.Allocator.Free(devicePointer, bytes);
    public void Prepare() { _ = Blas; _ = BlasLt; }
    public void Synchronize() => Stream.Synchronize();

    public void Dispose()
    {
        lock (_gate)
        {
            _blas?.Dispose();
            _blas = null;
            _blasLt?.Dispose();
            _blasLt = null;
            foreach (var m in _modules.Values) m.Dispose();
            _modules.Clear();
            _kernels.Clear();
            _constants.Clear();
        }
        Context.Dispose();
    }
}
