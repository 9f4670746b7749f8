using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs;

/// <summary>
/// CUDA-graph replay of executor runs (<see cref="ExecutorOptions.CaptureGraph"/>). A run is keyed by (backward,
/// training, accumulate, loss scale, the work queued after it): the first run of a key runs eagerly (a warm-up: kernels load, cuBLAS settles),
/// the second is recorded and launched, later ones replay it. A replay must be fed the tensors it was recorded with.
/// </summary>
sealed class GraphCapture(GraphRecorder recorder) : IDisposable
{
    readonly Dictionary<RunKey, CapturedRun> _captured = [];
    readonly HashSet<RunKey> _warmedUp = [];

    /// <summary>A distinct run; Then is the work queued after the backward (the optimizer's update), by reference.</summary>
    public readonly record struct RunKey(bool Backward, bool Training, bool Accumulate, float LossScale, Action? Then);

    /// <summary>A recorded run: its graph, the feed tensors it reads, the kept values it leaves, its measured peak.</summary>
    public sealed class CapturedRun(CudaGraph graph, Tensor[] feeds, Tensor?[] kept, long peakBytes) : IDisposable
    {
        public CudaGraph Graph => graph;
        public Tensor[] Feeds => feeds;
        public Tensor?[] Kept => kept;
        public long PeakBytes => peakBytes;

        public void Dispose()
        {
            foreach (var t in kept) t?.Dispose();
            graph.Dispose();
        }
    }

    public int Count => _captured.Count;

    /// <summary>True the first time <paramref name="key"/> is seen: that run goes eagerly.</summary>
    public bool WarmUp(RunKey key) => _warmedUp.Add(key);

    /// <summary>The recording of <paramref name="key"/>, made by <paramref name="record"/> when there is none yet.</summary>
    public CapturedRun Get(RunKey key, Func<GraphRecorder, CapturedRun> record) =>
        _captured.TryGetValue(key, out var run) ? run : _captured[key] = record(recorder);

    /// <summary>Checks the feeds are the recorded tensors, then writes the seed and launches.</summary>
    public void Replay(CapturedRun run, IReadOnlyList<Value> inputs, IReadOnlyDictionary<Value, Tensor> feeds, ulong seed)
    {
        for (var i = 0; i < inputs.Count; i++)
            if (!ReferenceEquals(feeds[inputs[i]], run.Feeds[i]) || run.Feeds[i].IsDisposed)
                throw new ArgumentException($"input '{inputs[i].Name}' was fed another tensor than the one its CUDA graph was recorded with: " +
                    "a captured run reads fixed addresses, so write new values into the tensor it was first fed", nameof(feeds));
        recorder.Replay(run.Graph, seed);
    }

    public void Dispose()
    {
        recorder.Synchronize(); // graphs are destroyed after their last replay has run
        foreach (var run in _captured.Values) run.Dispose();
        _captured.Clear();
        recorder.Dispose();
    }
}
