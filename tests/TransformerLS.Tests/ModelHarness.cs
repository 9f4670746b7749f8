using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Models;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>Tiny models with random batches, shared by the graph, model and GPU tests.</summary>
sealed class ModelHarness : IDisposable
{
    public const int Batch = 2;

    readonly List<IDisposable> _owned = [];
    readonly DType _round;
    public IBackend Backend { get; }
    public Layers.ParameterSet Parameters { get; }
    public Graph Graph { get; }
    public Value Loss { get; }
    public Value Logits { get; }
    public Dictionary<Value, Tensor> Feeds { get; } = [];
    public Dictionary<string, Tensor> Grads { get; }

    /// <summary>The tiny models by name: "lra" (CLS pooling), "lra-mean" (mean pooling) and "lm".</summary>
    public static ModelHarness Create(IBackend be, string model, DType dt, int seed, float dropout = 0, int dim = 16, DType? valuesOf = null) => model switch
    {
        "lra" => new ModelHarness(be, Lra(dropout, dim), dt, seed, valuesOf: valuesOf),
        "lra-mean" => new ModelHarness(be, Lra(dropout, dim) with { Pooling = LraPooling.Mean }, dt, seed, valuesOf: valuesOf),
        "lm" => new ModelHarness(be, Lm(dropout, dim), dt, seed, valuesOf),
        _ => throw new ArgumentOutOfRangeException(nameof(model), model, "lra, lra-mean or lm"),
    };

    /// <summary>The LRA classifier: 2 layers, n = 11 with padding in the second row, w = 4, r = 3.</summary>
    public static LraConfig Lra(float dropout = 0, int dim = 16) => new()
    {
        Vocab = 20, MaxLength = 16, Dim = dim, Heads = 2, Hidden = 24, Layers = 2, Window = 4, Rank = 3, Classes = 5, Dropout = dropout,
    };

    /// <summary>The causal LM: 2 layers, L = 12, M = 8, w = 5, l = 4, r = 2.</summary>
    public static CausalLmConfig Lm(float dropout = 0, int dim = 16) => new()
    {
        Vocab = 23, Dim = dim, Heads = 2, Hidden = 24, Layers = 2, Window = 5, ChunkLength = 4, Rank = 2, Dropout = dropout, Length = 12, Memory = 8,
    };

    /// <summary>Values (parameters, memories) are rounded to <paramref name="valuesOf"/> (default: the model's dtype), so a float32 model can hold a bf16 model's values.</summary>
    public ModelHarness(IBackend be, LraConfig cfg, DType dtype, int seed, int length = 11, DType? valuesOf = null)
    {
        _round = valuesOf ?? dtype;
        Backend = be;
        var model = new LraClassifier(be, cfg, dtype, 5);
        _owned.Add(model);
        Parameters = model.Parameters;
        Randomize(seed);
        var g = model.BuildGraph(Batch, length);
        _owned.Add(g);
        (Graph, Loss, Logits) = (g.Graph, g.Loss, g.Logits);
        var rng = new Random(seed);
        Feed(g.Tokens, [.. Enumerable.Range(0, Batch * length).Select(_ => (double)rng.Next(cfg.Vocab))]);
        Feed(g.Mask, [.. Enumerable.Range(0, Batch * length).Select(i => i >= length && i % length >= length - 3 ? 0.0 : 1.0)]);
        Feed(g.Labels, [.. Enumerable.Range(0, Batch).Select(_ => (double)rng.Next(cfg.Classes))]);
        Grads = Parameters.CreateGradients(be);
    }

    public ModelHarness(IBackend be, CausalLmConfig cfg, DType dtype, int seed, DType? valuesOf = null)
    {
        _round = valuesOf ?? dtype;
        Backend = be;
        var model = new CausalLm(be, cfg, dtype, 5);
        _owned.Add(model);
        Parameters = model.Parameters;
        Randomize(seed);
        var g = model.BuildGraph(Batch);
        _owned.Add(g);
        (Graph, Loss, Logits) = (g.Graph, g.Loss, g.Logits);
        var rng = new Random(seed);
        var n = Batch * cfg.Length;
        Feed(g.Tokens, [.. Enumerable.Range(0, n).Select(_ => (double)rng.Next(cfg.Vocab))]);
        Feed(g.Targets, [.. Enumerable.Range(0, n).Select(i => i == 3 ? -1.0 : rng.Next(cfg.Vocab))]); // one ignored target
        foreach (var m in g.Memories) Feed(m, [.. Enumerable.Range(0, (int)m.Shape.Count).Select(_ => _round.Round(RandomDraw.Normal(rng)))]);
        Grads = Parameters.CreateGradients(be);
    }

    /// <summary>Parameters big enough that every path matters (N(0, 0.02) would hide wiring slips).</summary>
    void Randomize(int seed)
    {
        var rng = new Random(seed);
        foreach (var (name, t) in Parameters.Tensors.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var norm = name.Contains("norm") || name.Contains("ln_");
            var std = name.EndsWith(".weight") && !norm ? 1 / Math.Sqrt(t.Shape[-1]) : 0.3;
            t.CopyFrom([.. Enumerable.Range(0, (int)t.Count).Select(_ => _round.Round((norm && name.EndsWith(".weight") ? 1 : 0) + std * RandomDraw.Normal(rng)))]);
        }
    }

    void Feed(Value v, double[] values)
    {
        var t = Backend.Empty(v.Shape, v.DType);
        t.CopyFrom(values);
        _owned.Add(t);
        Feeds[v] = t;
    }

    public Executor Executor(bool recompute = false, params Value[] keep) =>
        new(Graph, new ExecutorOptions { Loss = Loss, Keep = keep, Recompute = recompute }, Grads);

    public void Dispose()
    {
        foreach (var t in Grads.Values) t.Dispose();
        for (var i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
    }
}
