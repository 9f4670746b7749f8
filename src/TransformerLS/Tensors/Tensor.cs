using System.Runtime.InteropServices;
using TransformerLS.Backends;

namespace TransformerLS.Tensors;

/// <summary>
/// A dense row-major tensor on one backend. Owns its storage unless it is a view (<see cref="Reshape"/>);
/// disposal frees device memory at once (stream-ordered). There is no finalizer: dispose it, or create it
/// inside a <see cref="TensorScope"/>.
/// </summary>
public sealed class Tensor : IDisposable
{
    readonly bool _ownsStorage;
    byte[]? _host;
    ulong _device;

    public Shape Shape { get; }
    public DType DType { get; }
    public IBackend Backend { get; }
    public Device Device => Backend.Device;
    public long Count => Shape.Count;
    public long Bytes => Count * DType.Size();
    public bool IsDisposed { get; private set; }

    internal Tensor(IBackend backend, Shape shape, DType dtype, byte[]? host, ulong device, bool owns)
    {
        Backend = backend; Shape = shape; DType = dtype; _host = host; _device = device; _ownsStorage = owns;
        if (owns) TensorScope.Register(this);
    }

    /// <summary>Host bytes of a CPU tensor.</summary>
    public Span<byte> HostBytes => (_host ?? throw NotOn(DeviceKind.Cpu)).AsSpan(0, (int)Bytes);

    /// <summary>Device pointer of a CUDA tensor.</summary>
    public ulong DevicePointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _device != 0 ? _device : throw NotOn(DeviceKind.Cuda);
        }
    }

    public Span<float> HostFloats => DType == DType.Float32 ? MemoryMarshal.Cast<byte, float>(HostBytes) : throw DTypeIs(DType.Float32);
    public Span<double> HostDoubles => DType == DType.Float64 ? MemoryMarshal.Cast<byte, double>(HostBytes) : throw DTypeIs(DType.Float64);
    public Span<ushort> HostBFloat16 => DType == DType.BFloat16 ? MemoryMarshal.Cast<byte, ushort>(HostBytes) : throw DTypeIs(DType.BFloat16);

    /// <summary>A view with another shape of the same element count; disposing the view frees nothing.</summary>
    public Tensor Reshape(params int[] dims)
    {
        var shape = new Shape(dims);
        if (shape.Count != Count)
            throw new ArgumentException($"cannot reshape {Shape} ({Count} elements) to {shape} ({shape.Count} elements)", nameof(dims));
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return new Tensor(Backend, shape, DType, _host, _device, owns: false);
    }

    /// <summary>All elements as float32 (bf16 widened exactly, float64 rounded); copies from the device if needed.</summary>
    public float[] ToArray() => [.. ToDoubles().Select(v => (float)v)];

    /// <summary>All elements, widened exactly to float64; copies from the device if needed.</summary>
    public double[] ToDoubles()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var bytes = new byte[Bytes];
        Backend.CopyToHost(this, bytes);
        var values = new double[Count];
        DType.Decode(bytes, values);
        return values;
    }

    /// <summary>Writes <paramref name="values"/> (rounded to this tensor's dtype).</summary>
    public void CopyFrom(ReadOnlySpan<float> values)
    {
        var wide = new double[values.Length];
        for (var i = 0; i < wide.Length; i++) wide[i] = values[i];
        CopyFrom(wide);
    }

    /// <summary>Writes <paramref name="values"/>, each rounded once to this tensor's dtype.</summary>
    public void CopyFrom(ReadOnlySpan<double> values)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (values.Length != Count)
            throw new ArgumentException($"got {values.Length} values for a tensor of shape {Shape} ({Count} elements)", nameof(values));
        var bytes = new byte[Bytes];
        DType.Encode(values, bytes);
        Backend.CopyFromHost(this, bytes);
    }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        if (_ownsStorage) Backend.Free(_device, Bytes);
        _host = null;
        _device = 0;
    }

    public override string ToString() => $"Tensor({Shape}, {DType.Name()}, {Device})";

    InvalidOperationException NotOn(DeviceKind kind) => IsDisposed
        ? new ObjectDisposedException(ToString())
        : new InvalidOperationException($"{this} is not on the {kind.ToString().ToLowerInvariant()} backend");

    InvalidOperationException DTypeIs(DType t) => new($"{this} is not {t.Name()}");
}

/// <summary>
/// Disposes, in reverse order, every owning tensor created on this thread while it is the innermost scope,
/// except those handed on with <see cref="Keep"/>.
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] static TensorScope? t_current;
    readonly TensorScope? _parent;
    readonly List<Tensor> _owned = [];
    bool _disposed;

    public TensorScope()
    {
        _parent = t_current;
        t_current = this;
    }

    internal static void Register(Tensor t) => t_current?._owned.Add(t);

    /// <summary>Until disposed, new tensors join no scope (the graph executor owns its buffers itself).</summary>
    internal static Detached Detach()
    {
        var saved = t_current;
        t_current = null;
        return new(saved);
    }

    internal readonly struct Detached(TensorScope? saved) : IDisposable
    {
        public void Dispose() => t_current = saved;
    }

    /// <summary>Moves <paramref name="t"/> to the enclosing scope (or to the caller, at the outermost scope).</summary>
    public Tensor Keep(Tensor t)
    {
        if (_owned.Remove(t)) _parent?._owned.Add(t);
        return t;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (t_current != this)
            throw new InvalidOperationException("TensorScope disposed out of order: dispose inner scopes first (use 'using')");
        t_current = _parent;
        for (var i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
    }
}
