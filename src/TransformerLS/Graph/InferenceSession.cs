using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs;

/// <summary>
/// One graph run again and again for one input shape, with inputs and outputs by name: the session owns the graph, its
/// memory plan and executor and one device tensor per graph input, so a call copies the inputs in, runs forward and
/// leaves the named outputs readable until the next run. Built once per batch shape (e.g.
/// <see cref="Models.LraClassifier.CreateSession"/>); nothing is rebuilt per call.
/// <code>
/// using var s = classifier.CreateSession(batch: 8, length: 512);
/// s.SetInput("tokens", ids); s.SetInput("mask", mask);
/// s.Run();
/// float[] logits = s.Output("logits");
/// </code>
/// </summary>
public sealed class InferenceSession : IDisposable
{
    readonly Graph _graph;
    readonly Executor _run;
    readonly Dictionary<string, Value> _inputs = [], _outputs = [];
    readonly Dictionary<Value, Tensor> _feeds = [];
    readonly bool _ownsGraph;
    bool _ran;

    /// <summary>A session over <paramref name="graph"/> keeping <paramref name="outputs"/>; every input of the graph starts at 0.</summary>
    public InferenceSession(Graph graph, IEnumerable<Value> outputs, bool ownsGraph = true)
    {
        _graph = graph;
        _ownsGraph = ownsGraph;
        foreach (var v in outputs)
            if (!_outputs.TryAdd(v.Name, v)) throw new ArgumentException($"two outputs are named '{v.Name}'", nameof(outputs));
        if (_outputs.Count == 0) throw new ArgumentException("a session needs at least one output", nameof(outputs));
        foreach (var v in graph.Values.Where(v => v.Kind == ValueKind.Input))
        {
            if (!_inputs.TryAdd(v.Name, v)) throw new ArgumentException($"the graph has two inputs named '{v.Name}'", nameof(graph));
            var t = graph.Backend.Empty(v.Shape, v.DType);
            graph.Backend.Fill(t, 0);
            _feeds[v] = t;
        }
        _run = new Executor(graph, new ExecutorOptions { Keep = [.. _outputs.Values] });
    }

    public IBackend Backend => _graph.Backend;
    public IReadOnlyCollection<string> InputNames => _inputs.Keys;
    public IReadOnlyCollection<string> OutputNames => _outputs.Keys;

    /// <summary>The shape an input takes.</summary>
    public Shape InputShape(string name) => Input(name).Shape;

    /// <summary>Copies <paramref name="values"/> (row-major, exactly the input's element count) into the named input.</summary>
    public void SetInput(string name, ReadOnlySpan<float> values)
    {
        var v = Input(name);
        if (values.Length != v.Shape.Count)
            throw new ArgumentException($"input '{name}' is {v.Shape} ({v.Shape.Count} values); got {values.Length}", nameof(values));
        _feeds[v].CopyFrom(values);
    }

    /// <summary>Runs the graph forward on the inputs as last set.</summary>
    public void Run()
    {
        if (_ran) _run.ReleaseOutputs();
        _run.Forward(_feeds);
        _ran = true;
    }

    /// <summary>The named output of the last run, on the host.</summary>
    public float[] Output(string name) => OutputTensor(name).ToArray();

    /// <summary>The named output of the last run on the device (valid until the next run or the session's end).</summary>
    public Tensor OutputTensor(string name)
    {
        if (!_outputs.TryGetValue(name, out var v))
            throw new ArgumentException($"no output named '{name}'; the session keeps {string.Join(", ", _outputs.Keys.Select(k => $"'{k}'"))}", nameof(name));
        if (!_ran) throw new InvalidOperationException($"output '{name}' is read before the session has run (call Run first)");
        return _run[v];
    }

    Value Input(string name) => _inputs.TryGetValue(name, out var v) ? v
        : throw new ArgumentException($"no input named '{name}'; the graph takes {string.Join(", ", _inputs.Keys.Select(k => $"'{k}'"))}", nameof(name));

    public void Dispose()
    {
        if (_ran) _run.ReleaseOutputs();
        _run.Dispose();
        foreach (var t in _feeds.Values) t.Dispose();
        if (_ownsGraph) _graph.Dispose();
    }
}
