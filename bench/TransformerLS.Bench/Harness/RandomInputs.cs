using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Bench.Harness;

/// <summary>
/// Random tensors for timing: N(0, scale²) values (never zeros, which some hardware paths shortcut), tiled from a
/// pool of 2^20 normals at a random offset so a 64K-token input costs a copy, not millions of fresh draws.
/// </summary>
public sealed class RandomInputs(int seed)
{
    const int PoolSize = 1 << 20;
    readonly Random _rng = new(seed);
    float[]? _pool;

    float[] Pool => _pool ??= [.. Enumerable.Range(0, PoolSize).Select(_ => (float)Conformance.ConformanceRunner.Normal(_rng))];

    public Tensor Normal(IBackend be, DType dtype, double scale, params int[] dims)
    {
        var t = be.Empty(new Shape(dims), dtype);
        var values = new float[t.Count];
        var pool = Pool;
        var offset = _rng.Next(PoolSize);
        for (long i = 0; i < values.Length; i++) values[i] = (float)scale * pool[(offset + i) % PoolSize];
        t.CopyFrom(values);
        return t;
    }
}
