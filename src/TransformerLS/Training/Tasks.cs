using TransformerLS.Ops;
using TransformerLS.Backends;
using TransformerLS.Data;
using TransformerLS.Graphs;
using TransformerLS.Layers;
using TransformerLS.Models;
using TransformerLS.Tensors;

namespace TransformerLS.Training;

/// <summary>What the trainer needs of a model and its data.</summary>
public interface ITrainingTask : IDisposable
{
    ParameterSet Parameters { get; }
    /// <summary>Float32 gradients of every parameter, by name.</summary>
    IReadOnlyDictionary<string, Tensor> Gradients { get; }
    Executor Executor { get; }
    IReadOnlyDictionary<Value, Tensor> Feeds { get; }
    Value Loss { get; }
    long TokensPerBatch { get; }
    /// <summary>Writes micro-batch <paramref name="index"/> into the feeds.</summary>
    void Load(long index);
    /// <summary>After a training run (the LM carries its memories to the next block).</summary>
    void AfterRun();
    /// <summary>What a checkpoint must hold besides parameters and optimizer state for a resumed run to continue exactly (the LM's memories).</summary>
    IReadOnlyDictionary<string, Tensor> State { get; }
    /// <summary>The held-out metric: ("accuracy", fraction) or ("bits/byte", value), and the mean loss; progress(done, total) after each batch.</summary>
    (string Metric, double Value, double Loss) Evaluate(int batches, Action<int, int>? progress = null);
    /// <summary>The metric of a guess that ignores the input: the held-out majority class, or a uniform byte (log2 V bits).</summary>
    double Chance { get; }
}

/// <summary>Shared feed handling: float32 inputs written from int arrays.</summary>
abstract class TaskBase(IBackend be) : ITrainingTask
{
    protected readonly IBackend Be = be;
    protected readonly Dictionary<Value, Tensor> FeedTensors = [];
    protected Dictionary<string, Tensor> Grads = [];
    public abstract ParameterSet Parameters { get; }
    public IReadOnlyDictionary<string, Tensor> Gradients => Grads;
    public abstract Executor Executor { get; }
    public IReadOnlyDictionary<Value, Tensor> Feeds => FeedTensors;
    public abstract Value Loss { get; }
    public abstract long TokensPerBatch { get; }
    public abstract void Load(long index);
    public virtual void AfterRun() { }
    public virtual IReadOnlyDictionary<string, Tensor> State { get; } = new Dictionary<string, Tensor>();
    public abstract (string Metric, double Value, double Loss) Evaluate(int batches, Action<int, int>? progress = null);
    public abstract double Chance { get; }

    protected Tensor Feed(Dictionary<Value, Tensor> feeds, Value v)
    {
        var t = Be.Empty(v.Shape, v.DType);
        Be.Fill(t, 0f);
        feeds[v] = t;
        return t;
    }

    protected static void Write(Tensor t, IEnumerable<int> values) => t.CopyFrom([.. values.Select(v => (float)v)]);

    public virtual void Dispose()
    {
        foreach (var t in FeedTensors.Values) t.Dispose();
        foreach (var t in Grads.Values) t.Dispose();
    }
}

/// <summary>The LRA classifier on generated ListOps: sequences padded to the generator's maximum length.</summary>
sealed class ListOpsTask : TaskBase
{
    readonly LraClassifier _model;
    readonly LraGraph _train, _eval;
    readonly Executor _run, _evalRun;
    IEnumerator<ListOpsExample> _stream;
    long _consumed;
    readonly ListOpsConfig _listOps;
    readonly int _seed;
    readonly ListOpsExample[] _held;
    readonly Dictionary<Value, Tensor> _evalFeeds = [];
    readonly int _batch, _length;

    /// <summary>The classifier a listops run builds from its config (ten classes, the ListOps vocabulary at least).</summary>
    public static LraConfig ModelConfig(TrainConfig cfg) => cfg.Lra with { Classes = 10, Vocab = Math.Max(cfg.Lra.Vocab, ListOps.VocabSize) };

    public ListOpsTask(IBackend be, TrainConfig cfg) : base(be)
    {
        _model = new LraClassifier(be, ModelConfig(cfg), cfg.ParsedDType, cfg.Seed);
        Grads = _model.Parameters.CreateGradients(be);
        (_batch, _length) = (cfg.Batch, cfg.ListOps.MaxLength);
        _train = _model.BuildGraph(_batch, _length);
        _eval = _model.BuildGraph(_batch, _length);
        foreach (var v in new[] { _train.Tokens, _train.Mask, _train.Labels }) Feed(FeedTensors, v);
        foreach (var v in new[] { _eval.Tokens, _eval.Mask, _eval.Labels }) Feed(_evalFeeds, v);
        _run = new Executor(_train.Graph, new ExecutorOptions { Loss = _train.Loss, Recompute = cfg.Recompute, CaptureGraph = cfg.CudaGraph }, Grads);
        _evalRun = new Executor(_eval.Graph, new ExecutorOptions { Keep = [_eval.Logits, _eval.Loss], CaptureGraph = cfg.CudaGraph });
        (_listOps, _seed) = (cfg.ListOps, cfg.Seed);
        _stream = ListOps.Generate(cfg.ListOps, cfg.Seed).GetEnumerator();
        // Held-out examples from another seed, none of them in the first training examples' text.
        _held = [.. ListOps.Generate(cfg.ListOps, cfg.Seed + 1_000_003).Take(cfg.EvalBatches * _batch)];
    }

    public override ParameterSet Parameters => _model.Parameters;
    public override Executor Executor => _run;
    public override Value Loss => _train.Loss;
    public override long TokensPerBatch => (long)_batch * _length;
    public override double Chance => _held.GroupBy(e => e.Label).Max(g => g.Count()) / (double)_held.Length;
    public LraClassifier Model => _model;

    /// <summary>Micro-batch <paramref name="index"/> is examples [index·B, (index + 1)·B) of the seeded stream, wherever a run starts (a resumed run continues the data, it does not restart it).</summary>
    public override void Load(long index)
    {
        var first = index * _batch;
        if (first < _consumed) (_stream, _consumed) = (ListOps.Generate(_listOps, _seed).GetEnumerator(), 0);
        for (; _consumed < first; _consumed++) _stream.MoveNext();
        var batch = new ListOpsExample[_batch];
        for (var i = 0; i < _batch; i++) { _stream.MoveNext(); batch[i] = _stream.Current; }
        _consumed += _batch;
        Fill(FeedTensors, _train, batch);
    }

    void Fill(Dictionary<Value, Tensor> feeds, LraGraph g, ListOpsExample[] batch)
    {
        Write(feeds[g.Tokens], batch.SelectMany(e => e.Tokens.Concat(Enumerable.Repeat(ListOps.Pad, _length - e.Tokens.Length))));
        Write(feeds[g.Mask], batch.SelectMany(e => Enumerable.Range(0, _length).Select(t => t < e.Tokens.Length ? 1 : 0)));
        Write(feeds[g.Labels], batch.Select(e => e.Label));
    }

    public override (string, double, double) Evaluate(int batches, Action<int, int>? progress = null)
    {
        int right = 0, count = 0;
        double loss = 0;
        var total = Math.Min(batches, _held.Length / _batch);
        for (var b = 0; b < total; b++)
        {
            var batch = _held[(b * _batch)..((b + 1) * _batch)];
            Fill(_evalFeeds, _eval, batch);
            _evalRun.Forward(_evalFeeds);
            var logits = _evalRun[_eval.Logits].ToArray();
            loss += _evalRun[_eval.Loss].ToArray()[0];
            for (var i = 0; i < _batch; i++, count++)
            {
                var row = logits.AsSpan(i * 10, 10);
                var best = 0;
                for (var c = 1; c < 10; c++) if (row[c] > row[best]) best = c;
                if (best == batch[i].Label) right++;
            }
            progress?.Invoke(b + 1, total);
        }
        return ("accuracy", (double)right / Math.Max(count, 1), loss / Math.Max(count / _batch, 1));
    }

    public override void Dispose()
    {
        base.Dispose();
        foreach (var t in _evalFeeds.Values) t.Dispose();
        _run.Dispose(); _evalRun.Dispose(); _train.Dispose(); _eval.Dispose(); _stream.Dispose(); _model.Dispose();
    }
}

/// <summary>The causal LM on a byte corpus, memories carried from block to block (truncated BPTT).</summary>
sealed class ByteLmTask : TaskBase
{
    readonly CausalLm _model;
    readonly LmGraph _train, _eval;
    readonly Executor _run, _evalRun;
    readonly BpttBatches _trainBatches, _validBatches;
    readonly Dictionary<Value, Tensor> _evalFeeds = [];
    readonly int[] _inputs, _targets, _evalInputs, _evalTargets;

    public ByteLmTask(IBackend be, TrainConfig cfg) : base(be)
    {
        var corpus = ByteCorpus.Load(cfg.Data ?? throw new ArgumentException("the lm task needs a byte file: set data (--data)", nameof(cfg)));
        _model = new CausalLm(be, cfg.Lm, cfg.ParsedDType, cfg.Seed);
        Grads = _model.Parameters.CreateGradients(be);
        int L = cfg.Lm.Length;
        _trainBatches = new BpttBatches(corpus.Train, cfg.Batch, L);
        _validBatches = new BpttBatches(corpus.Valid, 1, L);
        _train = _model.BuildGraph(cfg.Batch);
        _eval = _model.BuildGraph(1);
        foreach (var v in _train.Memories.Append(_train.Tokens).Append(_train.Targets)) Feed(FeedTensors, v);
        foreach (var v in _eval.Memories.Append(_eval.Tokens).Append(_eval.Targets)) Feed(_evalFeeds, v);
        _run = new Executor(_train.Graph, new ExecutorOptions { Loss = _train.Loss, Keep = _train.NextMemories, Recompute = cfg.Recompute, CaptureGraph = cfg.CudaGraph }, Grads);
        _evalRun = new Executor(_eval.Graph, new ExecutorOptions { Keep = [.. _eval.NextMemories, _eval.Loss], CaptureGraph = cfg.CudaGraph });
        (_inputs, _targets) = (new int[cfg.Batch * L], new int[cfg.Batch * L]);
        (_evalInputs, _evalTargets) = (new int[L], new int[L]);
    }

    public override ParameterSet Parameters => _model.Parameters;
    public override Executor Executor => _run;
    public override Value Loss => _train.Loss;
    public override long TokensPerBatch => (long)_trainBatches.Batch * _trainBatches.Length;
    public override double Chance => Math.Log2(_model.Config.Vocab);
    public CausalLm Model => _model;

    public override void Load(long index)
    {
        var step = index % _trainBatches.Steps;
        if (step == 0) foreach (var m in _train.Memories) Be.Fill(FeedTensors[m], 0f); // a new pass starts from empty memories
        _trainBatches.Fill(step, _inputs, _targets);
        Write(FeedTensors[_train.Tokens], _inputs);
        Write(FeedTensors[_train.Targets], _targets);
    }

    public override void AfterRun() => Carry(_run, _train, FeedTensors);

    /// <summary>The memories the next block reads (one per layer), saved so a resumed run continues the pass instead of resetting them.</summary>
    public override IReadOnlyDictionary<string, Tensor> State => _state ??= _train.Memories.Select((m, i) => (m, i)).ToDictionary(p => $"memory.{p.i}", p => FeedTensors[p.m]);
    Dictionary<string, Tensor>? _state;

    void Carry(Executor run, LmGraph g, Dictionary<Value, Tensor> feeds)
    {
        for (var i = 0; i < g.Memories.Length; i++) Elementwise.Cast(Be, run[g.NextMemories[i]], feeds[g.Memories[i]]);
    }

    /// <summary>Mean bits per byte over the first <paramref name="batches"/> blocks of the validation split, memories carried.</summary>
    public override (string, double, double) Evaluate(int batches, Action<int, int>? progress = null)
    {
        foreach (var m in _eval.Memories) Be.Fill(_evalFeeds[m], 0f);
        double loss = 0;
        var n = (int)Math.Min(batches, _validBatches.Steps);
        for (var s = 0; s < n; s++)
        {
            _validBatches.Fill(s, _evalInputs, _evalTargets);
            Write(_evalFeeds[_eval.Tokens], _evalInputs);
            Write(_evalFeeds[_eval.Targets], _evalTargets);
            _evalRun.Forward(_evalFeeds);
            loss += _evalRun[_eval.Loss].ToArray()[0];
            Carry(_evalRun, _eval, _evalFeeds);
            progress?.Invoke(s + 1, n);
        }
        loss /= Math.Max(n, 1);
        return ("bits/byte", loss / Math.Log(2), loss);
    }

    public override void Dispose()
    {
        base.Dispose();
        foreach (var t in _evalFeeds.Values) t.Dispose();
        _run.Dispose(); _evalRun.Dispose(); _train.Dispose(); _eval.Dispose(); _model.Dispose();
    }
}
