using TransformerLS.Backends;
using TransformerLS.Bench.Harness;
using TransformerLS.Cuda;
using TransformerLS.Graphs;
using TransformerLS.Layers;
using TransformerLS.Tensors;

namespace TransformerLS.Bench.Scale;

public enum LayerKind { Ls, Full }

/// <summary>
/// One attention layer to measure: the LS module (sections 1.2-1.5, no mask, no CLS) or the full-attention baseline of the
/// same width. <see cref="RecomputeKeys"/>: the LS layer's key path (W_k, W_v, LN_A, dconv_fc, the projection) is
/// recomputed before its backward instead of kept (LsAttentionBlock.Build's recomputeKeys), as the memory sweep runs it.
/// </summary>
public sealed record LayerSpec(LayerKind Kind, DType DType, int Dim = 512, int Heads = 8, int Window = 128, int Rank = 64, bool RecomputeKeys = false)
{
    public string KindName => Kind == LayerKind.Ls ? "ls" : "full";
    public string DTypeName => DType == DType.BFloat16 ? "bf16" : "fp32";
    public string Name => $"{KindName}-{DTypeName}{(RecomputeKeys ? "-rk" : "")}";
    public string Describe => Kind == LayerKind.Ls
        ? $"LS attention, D={Dim} H={Heads} w={Window} r={Rank}, {DType.Name()}{(RecomputeKeys ? ", key path recomputed in the backward" : "")}"
        : $"full attention (materialized scores), D={Dim} H={Heads}, {DType.Name()}";
}

/// <summary>Bytes of one layer step (planned = live before the step + the plan's peak) and its median times in ms.</summary>
public sealed record LayerMeasurement(long PlannedTrainBytes, long PeakForwardBytes, long PeakTrainBytes, long DriverUsedBytes, double ForwardMs, double TrainMs);

/// <summary>
/// A layer on random tokens [B, N, D] with its parameters and gradients, run by the graph executor: forward in
/// inference mode, or forward + backward of the summed output (every parameter gradient computed; the output is not
/// kept through the backward, as inside a network, where the next layer holds it).
/// </summary>
public sealed class LayerStep : IDisposable
{
    readonly ParameterSet _params = new();
    readonly Dictionary<string, Tensor> _grads;
    readonly Graph _graph;
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
            _graph = new Graph(be);
            var x = _graph.Input("x", new Shape(batch, n, spec.Dim), spec.DType);
            var p = new ParameterValues(_graph, _params);
            var y = spec.Kind == LayerKind.Ls ? LsAttentionBlock.Build(_graph, cfg, p, x, null, null, spec.RecomputeKeys) : FullAttentionBlock.Build(_graph, spec.Heads, p, x);
            _run = new Executor(_graph, new ExecutorOptions { Loss = y, SumLoss = true, KeepLoss = false, Recompute = spec.RecomputeKeys }, _grads);
            _x = rnd.Normal(be, spec.DType, 1, batch, n, spec.Dim);
            _feeds = new() { [x] = _x };
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public MemoryPlan TrainPlan => _run.TrainingPlan;

    public void Forward() => _run.Forward(_feeds);
    public void Train() => _run.Backward(_feeds, ++_seed);

    /// <summary>
    /// Builds the layer at [batch, n], measures the allocator's peak over a forward and over a forward + backward
    /// step, then times both (median of <paramref name="runs"/> after <paramref name="warmup"/>); null when it does not fit.
    /// </summary>
    public static LayerMeasurement? Measure(IBackend be, LayerSpec spec, int batch, int n, RandomInputs rnd, BenchTimer timer, int runs, int warmup)
    {
        (be as CudaBackend)?.Context.TrimPool(); // so the driver's free memory shows this shape's pool alone
        try
        {
            using var step = new LayerStep(be, spec, batch, n, rnd);
            be.Synchronize();
            be.ResetPeak();
            step.Forward();
            be.Synchronize();
            var peakForward = be.MemoryStats.PeakBytes;
            be.ResetPeak();
            var live = be.MemoryStats.LiveBytes; // parameters, gradients, input and the backend's own (the cuBLAS workspace)
            step.Train();
            be.Synchronize();
            var peakTrain = be.MemoryStats.PeakBytes;
            long driver = 0;
            if (be is CudaBackend cuda) { var (free, total) = cuda.Context.MemoryInfo(); driver = total - free; }
            var fwd = TimeStats.Of(timer.Time(step.Forward, warmup, runs)).MedianMs;
            var train = TimeStats.Of(timer.Time(step.Train, warmup, runs)).MedianMs;
            return new(live + step.TrainPlan.PeakBytes, peakForward, peakTrain, driver, fwd, train);
        }
        catch (CudaOutOfMemoryException)
        {
            return null;
        }
    }

    public void Dispose()
    {
        _run?.Dispose();
        _x?.Dispose();
        _graph?.Dispose();
        if (_grads is not null) foreach (var g in _grads.Values) g.Dispose();
        _params.Dispose();
    }
}
