using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Tensors;

namespace TransformerLS.Layers;

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
        var values = new double[shape.Count];
        for (var i = 0; i < values.Length; i++) values[i] = mean + std * RandomDraw.Normal(rng);
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

    /// <summary>
    /// "{name}.weight" ~ N(1, std²) and "{name}.bias" = 0 in the wide dtype of a <paramref name="model"/> model
    /// (float32 like every LayerNorm's weights here; float64 in a float64 model).
    /// </summary>
    public void AddLayerNorm(IBackend be, string name, int dim, Random rng, double std, DType model)
    {
        Add(be, $"{name}.weight", new Shape(dim), model.Wide(), rng, std, 1);
        Add(be, $"{name}.bias", new Shape(dim), model.Wide(), rng, 0);
    }

    /// <summary>A gradient for every parameter, by name, in its wide dtype (float32, or float64 for float64); the caller owns them.</summary>
    public Dictionary<string, Tensor> CreateGradients(IBackend be)
    {
        var grads = new Dictionary<string, Tensor>();
        foreach (var (name, t) in _tensors)
        {
            var g = be.Empty(t.Shape, t.DType.Wide());
            be.Fill(g, 0f);
            grads[name] = g;
        }
        return grads;
    }

    public long Count => _tensors.Values.Sum(t => t.Count);

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}

/// <summary>The graph values of a parameter set's tensors, made once per name; <see cref="Scope"/> prefixes names.</summary>
public sealed class ParameterValues
{
    readonly Graph _graph;
    readonly ParameterSet _set;
    readonly string _prefix;
    readonly Dictionary<string, Value> _made;

    public ParameterValues(Graph graph, ParameterSet set) : this(graph, set, "", []) { }

    ParameterValues(Graph graph, ParameterSet set, string prefix, Dictionary<string, Value> made)
    {
        _graph = graph; _set = set; _prefix = prefix; _made = made;
    }

    public Value this[string name]
    {
        get
        {
            var full = _prefix + name;
            if (!_made.TryGetValue(full, out var v)) _made[full] = v = _graph.Parameter(full, _set[full]);
            return v;
        }
    }

    public ParameterValues Scope(string prefix) => new(_graph, _set, _prefix + prefix, _made);
}
