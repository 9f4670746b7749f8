using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs;

public enum ValueKind
{
    /// <summary>Fed by the caller at each run (tokens, masks, memories); never differentiated.</summary>
    Input,
    /// <summary>A tensor the graph's builder owns for the graph's life (sinusoid tables, position indices).</summary>
    Constant,
    /// <summary>A trained weight: its tensor and its float32 gradient belong to the model's <see cref="Layers.ParameterSet"/>.</summary>
    Parameter,
    /// <summary>Produced by a node; its memory is the executor's, placed by the memory plan.</summary>
    Activation,
}

/// <summary>A symbolic tensor of a graph: shape and dtype fixed when the graph is built.</summary>
public sealed class Value
{
    internal Value(int id, string name, Shape shape, DType dtype, ValueKind kind, bool requiresGrad, Tensor? bound)
    {
        Id = id; Name = name; Shape = shape; DType = dtype; Kind = kind; RequiresGrad = requiresGrad; Bound = bound;
    }

    public int Id { get; }
    public string Name { get; }
    public Shape Shape { get; }
    public DType DType { get; }
    public ValueKind Kind { get; }
    /// <summary>A gradient flows into this value in training (parameters, and activations computed from them).</summary>
    public bool RequiresGrad { get; }
    /// <summary>The tensor of a parameter or constant.</summary>
    internal Tensor? Bound { get; }
    /// <summary>The recomputation block of the node that produces it (−1 outside every block).</summary>
    internal int Block { get; set; } = -1;
    internal Node? Producer { get; set; }

    public long Bytes => Math.Max(Shape.Count * DType.Size(), 1); // the allocators count an empty tensor as one byte
    public override string ToString() => $"{Name} {Shape} {DType.Name()}";
}

/// <summary>
/// A model as a list of nodes in execution order. Builders (see <see cref="Nodes"/>) add nodes through
/// <see cref="Add"/>; <see cref="BeginBlock"/> groups the nodes of one layer for activation recomputation.
/// The graph holds no device memory of its own except constants, which it disposes.
/// </summary>
public sealed class Graph : IDisposable
{
    readonly List<Value> _values = [];
    readonly List<Node> _nodes = [];
    readonly HashSet<string> _names = [];
    int _block = -1, _blocks;

    public Graph(IBackend backend) => Backend = backend;

    public IBackend Backend { get; }
    public IReadOnlyList<Value> Values => _values;
    public IReadOnlyList<Node> Nodes => _nodes;
    public int BlockCount => _blocks;

    Value NewValue(string name, Shape shape, DType dtype, ValueKind kind, bool grad, Tensor? bound)
    {
        var v = new Value(_values.Count, Unique(name), shape, dtype, kind, grad, bound) { Block = kind == ValueKind.Activation ? _block : -1 };
        _values.Add(v);
        return v;
    }

    string Unique(string name)
    {
        if (_names.Add(name)) return name;
        for (var i = 1; ; i++)
            if (_names.Add($"{name}#{i}")) return $"{name}#{i}";
    }

    public Value Input(string name, Shape shape, DType dtype) => NewValue(name, shape, dtype, ValueKind.Input, false, null);

    /// <summary>A constant the graph owns from now on (disposed with it).</summary>
    public Value Constant(string name, Tensor t) => NewValue(name, t.Shape, t.DType, ValueKind.Constant, false, t);

    /// <summary>A parameter of tensor <paramref name="t"/>; it gets a gradient unless <paramref name="trainable"/> is false (frozen).</summary>
    public Value Parameter(string name, Tensor t, bool trainable = true) => NewValue(name, t.Shape, t.DType, ValueKind.Parameter, trainable, t);

    /// <summary>A new activation; a node must produce it.</summary>
    public Value Activation(string name, Shape shape, DType dtype, bool requiresGrad) => NewValue(name, shape, dtype, ValueKind.Activation, requiresGrad, null);

    /// <summary>Appends <paramref name="node"/>; its outputs must be fresh activations.</summary>
    public T Add<T>(T node) where T : Node
    {
        foreach (var v in node.Inputs)
            if (v.Kind == ValueKind.Activation && v.Producer is null)
                throw new ArgumentException($"node {node.Name}: input {v} has no producer yet", nameof(node));
        foreach (var v in node.Outputs.Concat(node.Aux))
        {
            if (v.Kind != ValueKind.Activation || v.Producer is not null)
                throw new ArgumentException($"node {node.Name}: output {v} must be a fresh activation", nameof(node));
            v.Producer = node;
        }
        node.Block = _block;
        _nodes.Add(node);
        return node;
    }

    /// <summary>Nodes added until <see cref="EndBlock"/> form one recomputation block (a layer).</summary>
    public void BeginBlock()
    {
        if (_block >= 0) throw new InvalidOperationException("blocks do not nest: call EndBlock first");
        _block = _blocks++;
    }

    public void EndBlock() => _block = -1;

    /// <summary>Whether nodes added now join a recomputation block (between <see cref="BeginBlock"/> and <see cref="EndBlock"/>).</summary>
    public bool InBlock => _block >= 0;

    public void Dispose()
    {
        foreach (var v in _values)
            if (v.Kind == ValueKind.Constant) v.Bound!.Dispose();
    }
}
