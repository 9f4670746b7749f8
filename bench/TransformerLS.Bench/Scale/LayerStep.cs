using TransformerLS.Backends;
using TransformerLS.Bench.Harness;
using TransformerLS.Graph;
using TransformerLS.Layers;
using TransformerLS.Tensors;

namespace TransformerLS.Bench.Scale;

public enum LayerKind { Ls, Full }

/// <summary>One attention layer to measure: the LS module (sections 1.2-1.5, no mask, no CLS) or the full-attention baseline of the same width.</summary>
public sealed record LayerSpec(LayerKind Kind, DType DType, int Dim = 512, int Heads = 8, int Window = 128, int Rank = 64)
{
    public string Name => (Kind == LayerKind.Ls ? "ls" : "full") + "-" + (DType == DType.BFloat16 ? "bf16" : "fp32");
    public string Describe => Kind == LayerKind.Ls
        ? $"LS attention, D={Dim} H={Heads} w={Window} r={Rank}, {DType.Name()}"
        : $"full attention (materialized scores), D={Dim} H={Heads}, {DType.Name()}";
}

/// <summary>
/// A layer on random tokens [B, N, D] with its parameters and gradients, run by the graph executor: forward in
/// inference mode, or forward + backward of the summed output (every parameter gradient computed).
/// </summary>
public sealed class LayerStep : IDisposable
{
    readonly ParameterSet _params = new();
    readonly Dictionary<string, Tensor> _grads;
    readonly Graph.Graph _graph;
    readonly Executor _run;
    readonly Tensor _x;
    readonly Dictionary<Value, Tensor> _feeds;
    ulong _seed;

    public LayerStep(IBackend be, LayerSpec spec, int batch, int n, RandomInputs rnd)
    {
        try
        {
            var rng = new Random(1);
            var cfg = new LsAttentionModuleConfig(spec.Dim, spec.Heads, spec.Window, spec.Rank);
            if (spec.Kind == LayerKind.Ls) LsAttentionBlock.AddParameters(_params, be, "", cfg, spec.DType, rng);
            else FullAttentionBlock.AddParameters(_params, be, "", spec.Dim, spec.Heads, spec.DType, rng);
            _grads = _params.CreateGradients(be);
            _graph = new Graph.Graph(be);
            var x = _graph.Input("x", new Shape(batch, n, spec.Dim), spec.DType);
            var p = new ParameterValues(_graph, _params);
            var y = spec.Kind == LayerKind.Ls ? LsAttentionBlock.Build(_graph, cfg, p, x, null, null) : FullAttentionBlock.Build(_graph, spec.Heads, p, x);
            _run = new Executor(_graph, new ExecutorOptions { Loss = y, SumLoss = true }, _grads);
            _x = rnd.Normal(be, spec.DType, 1, batch, n, spec.Dim);
            _feeds = new() { [x] = _x };
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public MemoryPlan ForwardPlan => _run.InferencePlan;
    public MemoryPlan TrainPlan => _run.TrainingPlan;
    /// <summary>The executor's measured high-water mark of its last run.</summary>
    public long MeasuredPeakBytes => _run.MeasuredPeakBytes;

    public void Forward() => _run.Forward(_feeds);
    public void Train() => _run.Backward(_feeds, ++_seed);

    public void Dispose()
    {
        _run?.Dispose();
        _x?.Dispose();
        _graph?.Dispose();
        if (_grads is not null) foreach (var g in _grads.Values) g.Dispose();
        _params.Dispose();
    }
}
