using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Layers;

/// <summary>Small compositions the attention modules share: head split/merge, named parameters, sinusoids.</summary>
public static class AttentionParts
{
    /// <summary>x·Wᵀ (+ b) with the parameters "{name}.weight" and, when <paramref name="bias"/>, "{name}.bias"; a new tensor.</summary>
    public static Tensor Linear(IBackend be, ParameterSet ps, Tensor x, string name, bool bias)
    {
        var w = ps[$"{name}.weight"];
        var dims = x.Shape.Dims.ToArray();
        dims[^1] = w.Shape[0];
        var y = be.Empty(new Shape(dims), x.DType);
        Ops.Linear.Linear.Forward(be, x, w, bias ? ps[$"{name}.bias"] : null, y);
        return y;
    }

    /// <summary>
    /// DualLN of xk and xv with the parameters "{name}.weight/bias" into new head-split tensors of
    /// <paramref name="shape"/> [B, H, T, d]; the statistics live in the caller's scope.
    /// </summary>
    public static (Tensor K, Tensor V) DualLayerNorm(IBackend be, ParameterSet ps, string name, Tensor xk, Tensor xv, Shape shape, float eps)
    {
        var (k, v) = (be.Empty(shape, xk.DType), be.Empty(shape, xk.DType));
        var stats = new Shape(2, shape[0], shape[2]);
        be.DualLayerNorm(xk, xv, ps[$"{name}.weight"], ps[$"{name}.bias"], k, v, be.Empty(stats, DType.Float32), be.Empty(stats, DType.Float32), eps);
        return (k, v);
    }

    /// <summary>[B, T, H·d] → a new [B, H, T, d].</summary>
    public static Tensor SplitHeads(IBackend be, Tensor x, int heads)
    {
        int B = x.Shape[0], T = x.Shape[1], D = x.Shape[2];
        var y = be.Empty(new Shape(B, heads, T, D / heads), x.DType);
        using var view = x.Reshape(B, T, heads, D / heads);
        be.SwapAxes12(view, y);
        return y;
    }

    /// <summary>[B, H, T, d] → a new [B, T, H·d].</summary>
    public static Tensor MergeHeads(IBackend be, Tensor x)
    {
        int B = x.Shape[0], H = x.Shape[1], T = x.Shape[2], d = x.Shape[3];
        var y = be.Empty(new Shape(B, T, H * d), x.DType);
        using var view = y.Reshape(B, T, H, d);
        be.SwapAxes12(x, view);
        return y;
    }

    /// <summary>Rows [from, from + count) of axis 1, as a new tensor.</summary>
    public static Tensor Rows(IBackend be, Tensor x, int from, int count, int axis = 1)
    {
        var dims = x.Shape.Dims.ToArray();
        dims[axis] = count;
        var y = be.Empty(new Shape(dims), x.DType);
        be.CopySlice(x, from, y, 0, axis, count);
        return y;
    }

    /// <summary>a ++ b along <paramref name="axis"/>, as a new tensor.</summary>
    public static Tensor Concat(IBackend be, Tensor a, Tensor b, int axis)
    {
        var dims = a.Shape.Dims.ToArray();
        dims[axis] += b.Shape[axis];
        var y = be.Empty(new Shape(dims), a.DType);
        be.CopySlice(a, 0, y, 0, axis, a.Shape[axis]);
        be.CopySlice(b, 0, y, a.Shape[axis], axis, b.Shape[axis]);
        return y;
    }

    /// <summary>Transformer-XL's sinusoid of position δ: [sin(δ·f_i) for i &lt; D/2, cos(δ·f_i)], f_i = 10000^(−2i/D).</summary>
    public static float[] Sinusoids(int count, int dim)
    {
        var table = new float[count * dim];
        for (var p = 0; p < count; p++)
            for (var i = 0; i < dim / 2; i++)
            {
                var angle = p / Math.Pow(10000, 2.0 * i / dim);
                table[p * dim + i] = (float)Math.Sin(angle);
                table[p * dim + dim / 2 + i] = (float)Math.Cos(angle);
            }
        return table;
    }
}

/// <summary>A module's parameters by their reference state_dict names; owns the tensors.</summary>
public sealed class ParameterSet : IDisposable
{
    readonly Dictionary<string, Tensor> _tensors = [];

    public IReadOnlyDictionary<string, Tensor> Tensors => _tensors;

    public Tensor this[string name] => _tensors.TryGetValue(name, out var t) ? t
        : throw new KeyNotFoundException($"no parameter named '{name}'; known: {string.Join(", ", _tensors.Keys)}");

    /// <summary>Adds a parameter drawn from N(mean, std²), rounded to its dtype.</summary>
    public Tensor Add(IBackend be, string name, Shape shape, DType dtype, Random rng, double std, double mean = 0)
    {
        var values = new float[shape.Count];
        for (var i = 0; i < values.Length; i++) values[i] = (float)(mean + std * Conformance.ConformanceRunner.Normal(rng));
        var t = be.Empty(shape, dtype);
        t.CopyFrom(values);
        _tensors.Add(name, t);
        return t;
    }

    /// <summary>"{name}.weight" [out, in] and, with <paramref name="bias"/>, "{name}.bias" [out], both N(0, std²).</summary>
    public void AddLinear(IBackend be, string name, int outDim, int inDim, bool bias, DType dtype, Random rng, double std)
    {
        Add(be, $"{name}.weight", new Shape(outDim, inDim), dtype, rng, std);
        if (bias) Add(be, $"{name}.bias", new Shape(outDim), dtype, rng, std);
    }

    /// <summary>"{name}.weight" ~ N(1, std²) and "{name}.bias" = 0, float32 like every LayerNorm's weights here.</summary>
    public void AddLayerNorm(IBackend be, string name, int dim, Random rng, double std)
    {
        Add(be, $"{name}.weight", new Shape(dim), DType.Float32, rng, std, 1);
        Add(be, $"{name}.bias", new Shape(dim), DType.Float32, rng, 0);
    }

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
