using TransformerLS.Cuda;
using TransformerLS.Tensors;

using TransformerLS.Backends;

namespace TransformerLS.Ops;

/// <summary>
/// fp32 destinations for results a kernel accumulates with atomics, all zeroed. Float32 outputs are their own
/// accumulators; for bf16 outputs one scratch block holds them and <see cref="Complete"/> rounds each into its
/// output. The outputs share one dtype. A struct with fixed slots: nothing is allocated on the managed heap.
/// </summary>
struct Float32Accumulators : IDisposable
{
    readonly CudaBackend _backend;
    readonly Tensor _t0, _t1;
    readonly Tensor? _t2, _t3;
    readonly ulong _scratch;
    readonly long _scratchBytes;

    public readonly ulong P0, P1, P2, P3;

    /// <summary>The scratch bytes for outputs of <paramref name="dtype"/> holding <paramref name="counts"/> elements: 0 for float32 (its own accumulator).</summary>
    public static long ScratchBytes(DType dtype, params ReadOnlySpan<long> counts)
    {
        if (dtype == DType.Float32) return 0;
        long n = 0;
        foreach (var c in counts) n += c;
        return 4 * n;
    }

    public Float32Accumulators(CudaBackend backend, Tensor t0, Tensor t1, Tensor? t2 = null, Tensor? t3 = null)
    {
        _backend = backend; _t0 = t0; _t1 = t1; _t2 = t2; _t3 = t3;
        long c0 = t0.Count, c1 = t1.Count, c2 = t2?.Count ?? 0, c3 = t3?.Count ?? 0;
        var direct = t0.DType == DType.Float32;
        _scratchBytes = ScratchBytes(t0.DType, [c0, c1, c2, c3]);
        _scratch = direct ? 0 : backend.Context.Allocator.Allocate(_scratchBytes);
        P0 = direct ? t0.DevicePointer : _scratch;
        P1 = direct ? t1.DevicePointer : _scratch + (ulong)(4 * c0);
        P2 = t2 is null ? 0 : direct ? t2.DevicePointer : _scratch + (ulong)(4 * (c0 + c1));
        P3 = t3 is null ? 0 : direct ? t3.DevicePointer : _scratch + (ulong)(4 * (c0 + c1 + c2));
        CudaMemory.Fill32(backend.Stream, P0, 0, c0);
        CudaMemory.Fill32(backend.Stream, P1, 0, c1);
        if (t2 is not null) CudaMemory.Fill32(backend.Stream, P2, 0, c2);
        if (t3 is not null) CudaMemory.Fill32(backend.Stream, P3, 0, c3);
    }

    /// <summary>After the accumulating kernels: rounds the fp32 sums into bf16 outputs (nothing to do for float32).</summary>
    public readonly void Complete()
    {
        if (_scratch == 0) return;
        ElementwiseCuda.ConvertFromFloat32(_backend, P0, _t0, _t0.Count);
        ElementwiseCuda.ConvertFromFloat32(_backend, P1, _t1, _t1.Count);
        if (_t2 is not null) ElementwiseCuda.ConvertFromFloat32(_backend, P2, _t2, _t2.Count);
        if (_t3 is not null) ElementwiseCuda.ConvertFromFloat32(_backend, P3, _t3, _t3.Count);
    }

    /// <summary>Frees the scratch block, stream-ordered: after the kernels queued before it.</summary>
    public readonly void Dispose()
    {
        if (_scratch != 0) _backend.Context.Allocator.Free(_scratch, _scratchBytes);
    }
}
