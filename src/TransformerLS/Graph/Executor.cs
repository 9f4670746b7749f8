using TransformerLS.Ops;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs;

/// <summary>How the executor runs a graph.</summary>
public sealed record ExecutorOptions
{
    /// <summary>The scalar (float32 [1], float64 in a float64 model) to differentiate; null for an inference-only executor.</summary>
    public Value? Loss { get; init; }
    /// <summary>Values the caller reads after a run (logits, memories); they live until the next run.</summary>
    public IReadOnlyList<Value> Keep { get; init; } = [];
    /// <summary>Activation checkpointing: keep only block boundaries in the forward and recompute each block before its backward.</summary>
    public bool Recompute { get; init; }
    /// <summary>
    /// Let <see cref="Loss"/> be any activation, differentiated as the sum of its elements (its gradient starts as the
    /// loss scale everywhere): the backward of a layer without a loss head, as the benchmarks run it.
    /// </summary>
    public bool SumLoss { get; init; }
    /// <summary>
    /// Whether the loss outlives a backward run, to be read (the default). False frees it once nothing reads it: with
    /// <see cref="SumLoss"/> the loss is a whole layer output, which need not be live during the layer's backward (the
    /// scale sweep measures a layer so, as inside a network, where the next layer holds it).
    /// </summary>
    public bool KeepLoss { get; init; } = true;
    /// <summary>
    /// On the CUDA backend, record each distinct run (forward; or backward with its training flag, accumulate flag and
    /// loss scale) as a CUDA graph on its second call (the first warms up: kernels load, cuBLAS picks algorithms) and
    /// replay it from then on: one launch instead of one per op. Replays must be fed the same input tensors (write
    /// new values into them); the seed may change. The CPU backend runs as without it.
    /// </summary>
    public bool CaptureGraph { get; init; }
}

/// <summary>
/// Runs a graph forward, or forward and backward, on its backend, following a <see cref="MemoryPlan"/>:
/// activations and their gradients are allocated at first write and freed after last read, so nothing
/// outlives its last use. Parameter gradients (the model's, in each parameter's wide dtype) are zeroed before each backward unless
/// the run accumulates. Nothing in a run synchronizes with the host.
/// </summary>
public sealed class Executor : IDisposable
{
    readonly Graph _graph;
    readonly IBackend _be;
    readonly RunContext _ctx;
    readonly IReadOnlyDictionary<string, Tensor> _grads;
    readonly Tensor?[] _temps;
    readonly Value[] _inputs;
    readonly GraphCapture? _capture;              // set when runs are replayed from CUDA graphs
    GraphCapture.CapturedRun? _borrowed;          // the replay whose kept tensors _ctx shows
    MemoryPlan? _inference, _training;

    /// <param name="grads">Gradients (float32; float64 for float64 parameters) of the trainable parameters by parameter name (the model's; needed for <see cref="Backward"/>).</param>
    public Executor(Graph graph, ExecutorOptions options, IReadOnlyDictionary<string, Tensor>? grads = null)
    {
        _graph = graph;
        _be = graph.Backend;
        Options = options;
        _grads = grads ?? new Dictionary<string, Tensor>();
        _inputs = [.. graph.Values.Where(v => v.Kind == ValueKind.Input)];
        var inputs = graph.Nodes.Count == 0 ? 0 : graph.Nodes.Max(n => n.Inputs.Length);
        _ctx = new RunContext(_be, graph.Values.Count, inputs);
        // cuBLAS's workspace is made on first use and lives with the backend: make it now, so a first run's measured peak is the plan's.
        _be.Prepare();
        if (options.CaptureGraph && GraphRecorder.For(_be) is { } recorder) _capture = new GraphCapture(recorder);
        _temps = new Tensor?[inputs];
        if (options.Loss is { } loss && (loss.Kind != ValueKind.Activation || !options.SumLoss && (loss.Shape.Count != 1 || loss.DType != DType.Float32 && loss.DType != DType.Float64)))
            throw new ArgumentException(options.SumLoss ? $"the loss {loss} must be an activation"
                : $"the loss {loss} must be a float32 (or float64) activation with one element (or set SumLoss to differentiate the sum of its elements)", nameof(options));
        foreach (var v in graph.Values.Where(v => v.Kind == ValueKind.Parameter && v.RequiresGrad))
            if (options.Loss is not null && (!_grads.TryGetValue(v.Name, out var g) || g.DType != v.DType.Wide() || g.Shape != v.Shape))
                throw new ArgumentException($"parameter {v} needs a {v.DType.Wide().Name()} gradient of shape {v.Shape} named '{v.Name}' in grads", nameof(grads));
    }

    public ExecutorOptions Options { get; }

    /// <summary>The plan of a forward-only run (activations freed as soon as nothing reads them).</summary>
    public MemoryPlan InferencePlan => _inference ??= MemoryPlan.Build(_graph, Options.Keep, null, false, _be.Device);

    /// <summary>The plan of a forward + backward run.</summary>
    public MemoryPlan TrainingPlan => _training ??= Options.Loss is null
        ? throw new InvalidOperationException("this executor has no loss: construct it with ExecutorOptions.Loss to train")
        : MemoryPlan.Build(_graph, Options.KeepLoss ? [.. Options.Keep, Options.Loss] : Options.Keep, Options.Loss, Options.Recompute, _be.Device);

    /// <summary>Executor-owned bytes at the high-water mark of the last run, measured by the backend's allocator (a replay reports its recording's).</summary>
    public long MeasuredPeakBytes { get; private set; }

    /// <summary>Runs replayed from a CUDA graph so far (see <see cref="ExecutorOptions.CaptureGraph"/>).</summary>
    public int GraphReplays { get; private set; }

    /// <summary>Runs recorded as CUDA graphs so far.</summary>
    public int GraphsCaptured => _capture?.Count ?? 0;

    /// <summary>A kept value (or the loss) after a run; valid until the next run.</summary>
    public Tensor this[Value v] => _ctx.Tensors[v.Id] ?? throw new InvalidOperationException($"{v} is not kept: list it in ExecutorOptions.Keep");

    /// <summary>Forward only, in inference mode (dropout off).</summary>
    public void Forward(IReadOnlyDictionary<Value, Tensor> feeds) => Run(InferencePlan, feeds, false, 0, 1, false);

    /// <summary>
    /// Forward and backward in training mode: parameter gradients receive d(<paramref name="lossScale"/>·loss)/dθ,
    /// added to what they hold when <paramref name="accumulate"/> (gradient accumulation), else overwriting it.
    /// <paramref name="then"/>, when given, queues more work after the backward as part of the run (the optimizer's update):
    /// with <see cref="ExecutorOptions.CaptureGraph"/> it is recorded into the run's CUDA graph, so a whole training step is
    /// one launch. It must queue the same launches on the same tensors every time and allocate nothing.
    /// </summary>
    public void Backward(IReadOnlyDictionary<Value, Tensor> feeds, ulong seed, float lossScale = 1f, bool accumulate = false, bool training = true, Action? then = null) =>
        Run(TrainingPlan, feeds, training, seed, lossScale, accumulate, then);

    void Run(MemoryPlan plan, IReadOnlyDictionary<Value, Tensor> feeds, bool training, ulong seed, float lossScale, bool accumulate, Action? then = null)
    {
        ReleaseOutputs();
        using var detached = TensorScope.Detach();
        foreach (var v in _inputs)
        {
            if (!feeds.TryGetValue(v, out var t))
                throw new ArgumentException($"input '{v.Name}' ({v.Shape}, {v.DType.Name()}) was not fed", nameof(feeds));
            if (t.Shape != v.Shape || t.DType != v.DType || t.Backend != _be)
                throw new ArgumentException($"input '{v.Name}' was fed {t}; expected ({v.Shape}, {v.DType.Name()}) on {_be.Device}", nameof(feeds));
        }
        _ctx.Training = training;
        _ctx.Seed = seed;
        var key = new GraphCapture.RunKey(plan.Loss is not null, training, accumulate, lossScale, then);
        if (_capture is null || _capture.WarmUp(key)) { RunSteps(plan, feeds, lossScale, accumulate, then); return; }
        var run = _capture.Get(key, recorder => Record(recorder, plan, feeds, lossScale, accumulate, then));
        _capture.Replay(run, _inputs, feeds, seed);
        Array.Copy(run.Kept, _ctx.Tensors, run.Kept.Length);
        _borrowed = run;
        MeasuredPeakBytes = run.PeakBytes;
        GraphReplays++;
    }

    /// <summary>Records one run; what the recording left alive are the kept values (at fixed addresses), which the recording now owns.</summary>
    GraphCapture.CapturedRun Record(GraphRecorder recorder, MemoryPlan plan, IReadOnlyDictionary<Value, Tensor> feeds, float lossScale, bool accumulate, Action? then)
    {
        _ctx.RunSeed = recorder.RunSeed;
        try
        {
            var graph = recorder.Record(() => RunSteps(plan, feeds, lossScale, accumulate, then));
            var kept = new Tensor?[_ctx.Tensors.Length];
            for (var i = 0; i < kept.Length; i++)
                if (_graph.Values[i].Kind == ValueKind.Activation) (kept[i], _ctx.Tensors[i]) = (_ctx.Tensors[i], null);
            return new GraphCapture.CapturedRun(graph, [.. _inputs.Select(v => feeds[v])], kept, MeasuredPeakBytes);
        }
        finally { _ctx.RunSeed = null; }
    }

    void RunSteps(MemoryPlan plan, IReadOnlyDictionary<Value, Tensor> feeds, float lossScale, bool accumulate, Action? then = null)
    {
        foreach (var v in _inputs) _ctx.Tensors[v.Id] = feeds[v];
        var nv = _graph.Values.Count;
        var startLive = _be.MemoryStats.LiveBytes;
        _be.ResetPeak();
        if (plan.Loss is not null && !accumulate)
            foreach (var g in _grads.Values) _be.Fill(g, 0f);
        foreach (var s in plan.Steps)
        {
            foreach (var slot in s.Births)
            {
                var v = _graph.Values[slot % nv];
                var t = _be.Empty(v.Shape, v.DType);
                if (slot < nv) { _ctx.Tensors[slot] = t; continue; }
                _ctx.Grads[v.Id] = t;
                if (v == plan.Loss) _be.Fill(t, lossScale);
            }
            foreach (var slot in s.Zeroed) _be.Fill(_ctx.Grads[slot - nv]!, 0f);
            if (s.Kind == StepKind.Backward) RunBackward(s);
            else s.Node.Forward(_ctx);
            foreach (var slot in s.Deaths)
            {
                ref var t = ref slot < nv ? ref _ctx.Tensors[slot] : ref _ctx.Grads[slot - nv];
                t!.Dispose();
                t = null;
            }
        }
        then?.Invoke();
        MeasuredPeakBytes = _be.MemoryStats.PeakBytes - startLive;
        foreach (var v in _inputs) _ctx.Tensors[v.Id] = null;
    }

    void RunBackward(PlannedStep s)
    {
        var n = s.Node;
        for (var k = 0; k < n.Inputs.Length; k++)
        {
            var v = n.Inputs[k];
            var grad = v.Kind == ValueKind.Parameter ? _grads[v.Name] : _ctx.Grads[v.Id];
            _ctx.Targets[k] = s.Targets[k] switch
            {
                TargetMode.Overwrite => new GradTarget(grad, false),
                TargetMode.Accumulate => new GradTarget(grad, true),
                TargetMode.Temporary => new GradTarget(_temps[k] = _be.Empty(v.Shape, v.DType), false),
                _ => default,
            };
        }
        n.Backward(_ctx);
        for (var k = 0; k < n.Inputs.Length; k++)
        {
            if (_temps[k] is not { } t) continue;
            var v = n.Inputs[k];
            Elementwise.AddTo(_be, t, v.Kind == ValueKind.Parameter ? _grads[v.Name] : _ctx.Grads[v.Id]!);
            t.Dispose();
            _temps[k] = null;
        }
        Array.Clear(_ctx.Targets);
    }

    /// <summary>Runs <paramref name="graph"/> forward once and returns a copy of <paramref name="output"/> that the caller owns.</summary>
    public static Tensor ForwardOnce(Graph graph, Value output, IReadOnlyDictionary<Value, Tensor> feeds)
    {
        using var run = new Executor(graph, new ExecutorOptions { Keep = [output] });
        run.Forward(feeds);
        var result = graph.Backend.Empty(output.Shape, output.DType);
        Elementwise.Cast(graph.Backend, run[output], result);
        return result;
    }

    /// <summary>Frees the kept values of the last run (a replayed graph keeps its outputs for the next replay).</summary>
    public void ReleaseOutputs()
    {
        if (_borrowed is not null)
        {
            Array.Clear(_ctx.Tensors);
            _borrowed = null;
        }
        for (var k = 0; k < _temps.Length; k++) { _temps[k]?.Dispose(); _temps[k] = null; }
        for (var i = 0; i < _ctx.Tensors.Length; i++)
        {
            if (_graph.Values[i].Kind == ValueKind.Activation) _ctx.Tensors[i]?.Dispose();
            _ctx.Tensors[i] = null;
            _ctx.Grads[i]?.Dispose();
            _ctx.Grads[i] = null;
        }
    }

    public void Dispose()
    {
        ReleaseOutputs();
        _capture?.Dispose();
    }
}
