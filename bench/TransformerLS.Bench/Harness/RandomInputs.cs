using TransformerLS.Backends;
using TransformerLS.Conformance;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Bench.Harness;

/// <summary>
/// Random tensors for timing: N(0, scale²) values (never zeros, which some hardware paths shortcut), taken from a
/// pool of 2^20 normals at a random offset. Tensors larger than the pool tile it on the backend (device-to-device
/// copies), so a sweep's multi-GiB inputs never pass through a host array.
/// </summary>
public sealed class RandomInputs(int seed)
{
    const int PoolSize = 1 << 20;
    readonly Random _rng = new(seed);
    float[]? _pool;

    float[] Pool => _pool ??= [.. Enumerable.Range(0, PoolSize).Select(_ => (float)RandomDraw.Normal(_rng))];

    /// <summary>A case's input: N(0, scale²) from the pool, or (masks, class indices, probabilities) the conformance draw.</summary>
    internal Tensor Input(IBackend be, InputSpec s)
    {
        if (s.Kind == InputKind.Normal) return Normal(be, s.DType, s.Scale, [.. s.Shape.Dims]);
        var t = be.Empty(s.Shape, s.DType);
        t.CopyFrom(ConformanceRunner.MakeInput(s, _rng));
        return t;
    }

    public Tensor Normal(IBackend be, DType dtype, double scale, params int[] dims)
    {
        var t = be.Empty(new Shape(dims), dtype);
        var first = (int)Math.Min(t.Count, PoolSize);
        var values = new float[first];
        var pool = Pool;
        var offset = _rng.Next(PoolSize);
        for (var i = 0; i < first; i++) values[i] = (float)scale * pool[(offset + i) % PoolSize];
        if (first == t.Count) { t.CopyFrom(values); return t; }
        using var tile = be.Empty(new Shape(first), dtype);
        tile.CopyFrom(values);
        var size = dtype.Size();
        for (long at = 0; at < t.Count; at += first)
        {
            var bytes = Math.Min(first, t.Count - at) * size;
            if (be is CudaBackend cuda) CudaMemory.CopyDeviceToDevice(cuda.Stream, t.DevicePointer + (ulong)(at * size), tile.DevicePointer, bytes);
            else tile.HostBytes[..(int)bytes].CopyTo(t.HostBytes.Slice((int)(at * size)));
        }
        return t;
    }
}
