using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Graphs.Nodes;
using TransformerLS.Layers;
using TransformerLS.Tensors;

namespace TransformerLS.Models;

/// <summary>How the classifier reads one feature vector per sequence (reference section 1.7).</summary>
public enum LraPooling
{
    /// <summary>The scripts' <c>--cls_last_layer</c>: a learned CLS embedding joins the last layer and the head reads its row.</summary>
    Cls,
    /// <summary>Without it: the mean over positions of LN(X)·mask, divided by N (padding counts, as torch's mean does).</summary>
    Mean,
}

/// <summary>The LRA classifier's sizes (reference sections 1.7-1.8; defaults: the ListOps script).</summary>
public sealed record LraConfig
{
    public int Vocab { get; init; } = 512;
    public int MaxLength { get; init; } = 2048;
    public int Dim { get; init; } = 64;
    public int Heads { get; init; } = 2;
    public int Hidden { get; init; } = 128;
    public int Layers { get; init; } = 2;
    public int Window { get; init; } = 8;
    public int Rank { get; init; } = 32;
    public int Classes { get; init; } = 10;
    public float Dropout { get; init; }
    public LraPooling Pooling { get; init; } = LraPooling.Cls;

    public void Validate()
    {
        Positive(Vocab, nameof(Vocab)); Positive(MaxLength, nameof(MaxLength)); Positive(Hidden, nameof(Hidden));
        Positive(Layers, nameof(Layers)); Positive(Classes, nameof(Classes));
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "dropout must be in [0, 1)");
        if (!Enum.IsDefined(Pooling)) throw new ArgumentOutOfRangeException(nameof(Pooling), Pooling, "pooling must be cls or mean");
        Attention(true).Validate();
    }

    internal static void Positive(int v, string name)
    {
        if (v < 1) throw new ArgumentOutOfRangeException(name, v, $"{name} must be >= 1");
    }

    public LsAttentionModuleConfig Attention(bool cls) => new(Dim, Heads, Window, Rank, cls);

    /// <summary>Whether layer <paramref name="i"/> takes the CLS embedding (the last one, with CLS pooling).</summary>
    public bool TakesCls(int i) => Pooling == LraPooling.Cls && i == Layers - 1;
}

/// <summary>
/// The bidirectional LS classifier of the LRA code (sections 1.7-1.8): token + learned absolute position
/// embeddings, pre-LN blocks (LS attention, GELU MLP), the CLS embedding joining in the last layer, final
/// LayerNorm, and a ReLU MLP head on the CLS row (or, with <see cref="LraPooling.Mean"/>, on the masked mean of all
/// rows, with no CLS embedding). Parameter names follow section 1.9.
/// </summary>
public sealed class LraClassifier : ILsModel
{
    public LraConfig Config { get; }
    public IBackend Backend { get; }
    public DType DType { get; }
    public ParameterSet Parameters { get; } = new();

    public LraClassifier(IBackend be, LraConfig cfg, DType dtype, int seed)
    {
        cfg.Validate();
        (Backend, Config, DType) = (be, cfg, dtype);
        var rng = new Random(seed);
        int D = cfg.Dim;
        if (cfg.Pooling == LraPooling.Cls) Parameters.Add(be, "model.cls_embed", new Shape(1, 1, D), dtype, rng, 0); // zeros, as the reference
        Parameters.Add(be, "model.embeddings.word_embeddings.weight", new Shape(cfg.Vocab, D), dtype, rng, 0.02);
        Parameters.Add(be, "model.embeddings.position_embeddings.weight", new Shape(cfg.MaxLength, D), dtype, rng, 0.02);
        for (var i = 0; i < cfg.Layers; i++)
        {
            var b = $"model.transformer_{i}.";
            Parameters.AddLayerNorm(be, b + "norm1", D, rng, 0, dtype);
            LsAttentionBlock.AddParameters(Parameters, be, b + "mha.", cfg.Attention(cfg.TakesCls(i)), dtype, rng);
            Parameters.AddLayerNorm(be, b + "norm2", D, rng, 0, dtype);
            Parameters.AddLinear(be, b + "mlpblock.0", cfg.Hidden, D, true, dtype, rng, 0.02);
            Parameters.AddLinear(be, b + "mlpblock.3", D, cfg.Hidden, true, dtype, rng, 0.02);
        }
        Parameters.AddLayerNorm(be, "model.norm", D, rng, 0, dtype);
        Parameters.AddLinear(be, "seq_classifer.mlpblock.0", cfg.Hidden, D, true, dtype, rng, 0.02);
        Parameters.AddLinear(be, "seq_classifer.mlpblock.2", cfg.Classes, cfg.Hidden, true, dtype, rng, 0.02);
    }

    /// <summary>
    /// Loads a state_dict exported from the official code to safetensors (its names, shapes and dtypes; see
    /// <see cref="Checkpoints.StateDict"/>): with <paramref name="strict"/> every missing, unexpected or mis-shaped key is
    /// an error naming them all; without, the report lists what did not match and the rest is loaded.
    /// </summary>
    public Checkpoints.StateDictReport LoadStateDict(string path, bool strict = true) => Checkpoints.StateDict.Load(Parameters, path, strict);

    public void Save(string path) => Checkpoints.SafeTensors.Save(path, Parameters.Tensors);

    /// <summary>
    /// The parameter count the constructor will create, from the config alone (checked: sizes whose count overflows
    /// throw OverflowException), so a caller can refuse or announce a model before allocating it. Mirrors the
    /// constructor line by line; a test holds the two equal.
    /// </summary>
    public static long CountParameters(LraConfig cfg)
    {
        checked
        {
            long D = cfg.Dim, F = cfg.Hidden, hr = (long)cfg.Heads * cfg.Rank;
            long attention = 4 * (D * D + D) + (hr * D + hr) + 2 * 2 * D;  // W_q, W_k, W_v, W_o; dconv_fc; dual_ln_l, dual_ln_s
            long layer = 2 * D + attention + 2 * D + (F * D + F) + (D * F + D);
            return (cfg.Pooling == LraPooling.Cls ? D : 0) + cfg.Vocab * D + cfg.MaxLength * D + cfg.Layers * layer
                   + 2 * D + (F * D + F) + (cfg.Classes * F + cfg.Classes);
        }
    }

    /// <summary>The graph of one batch of <paramref name="batch"/> sequences of <paramref name="length"/> tokens.</summary>
    public LraGraph BuildGraph(int batch, int length)
    {
        LraConfig.Positive(batch, nameof(batch));
        if (length < 1 || length > Config.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"the sequence length must be in [1, {Config.MaxLength}] (the position table's rows)");
        var cfg = Config;
        var g = new Graph(Backend);
        var p = new ParameterValues(g, Parameters);
        var tokens = g.Input("tokens", new Shape(batch, length), DType.Float32);
        var mask = g.Input("mask", new Shape(batch, length), DType.Float32);
        var labels = g.Input("labels", new Shape(batch), DType.Float32);
        var positions = Indices(g, "positions", batch, length, t => t);
        var x = g.Plus(g.Embedding(p["model.embeddings.word_embeddings.weight"], tokens), g.Embedding(p["model.embeddings.position_embeddings.weight"], positions), "embeddings");
        x = g.Dropout(x, cfg.Dropout);
        for (var i = 0; i < cfg.Layers; i++)
        {
            var b = p.Scope($"model.transformer_{i}.");
            var last = cfg.TakesCls(i);
            g.BeginBlock();
            var h = g.LayerNorm(x, b["norm1.weight"], b["norm1.bias"]);
            Value? cls = null;
            if (last)
            {
                // The CLS embedding joins the last layer un-normed, in the attention and in the residual (section 1.6).
                cls = g.Embedding(p["model.cls_embed"], Indices(g, "cls.index", batch, 1, _ => 0), "cls");
                x = g.Concat(cls, x, 1, "cls++x");
            }
            var a = LsAttentionBlock.Build(g, cfg.Attention(last), b.Scope("mha."), h, cls, mask);
            x = g.Plus(x, g.Dropout(a, cfg.Dropout));
            var m = g.LayerNorm(x, b["norm2.weight"], b["norm2.bias"]);
            m = g.Dropout(g.Activation(g.Linear(m, b["mlpblock.0.weight"], b["mlpblock.0.bias"]), Activation.Gelu), cfg.Dropout);
            m = g.Dropout(g.Linear(m, b["mlpblock.3.weight"], b["mlpblock.3.bias"]), cfg.Dropout);
            x = g.Plus(x, m);
            g.EndBlock();
        }
        var normed = g.LayerNorm(x, p["model.norm.weight"], p["model.norm.bias"]);
        var feature = cfg.Pooling == LraPooling.Cls ? g.Slice(normed, 1, 0, 1, "cls.feature") : g.MaskedMean(normed, mask, "mean.feature");
        var hidden = g.Activation(g.Linear(feature, p["seq_classifer.mlpblock.0.weight"], p["seq_classifer.mlpblock.0.bias"]), Activation.Relu);
        var logits = g.Linear(hidden, p["seq_classifer.mlpblock.2.weight"], p["seq_classifer.mlpblock.2.bias"], "logits");
        return new LraGraph(g, tokens, mask, labels, logits, g.CrossEntropyMean(logits, labels));
    }

    /// <summary>A float32 [batch, length] constant of index(t) in every row.</summary>
    internal static Value Indices(Graph g, string name, int batch, int length, Func<int, int> index)
    {
        var t = g.Backend.Empty(new Shape(batch, length), DType.Float32);
        t.CopyFrom([.. Enumerable.Range(0, batch * length).Select(i => (float)index(i % length))]);
        return g.Constant(name, t);
    }

    readonly Dictionary<(int Batch, int Length), InferenceSession> _sessions = [];

    /// <summary>
    /// An inference session for <paramref name="batch"/> sequences of <paramref name="length"/> tokens: inputs "tokens"
    /// (ids as float32) and "mask" (1 token, 0 padding), both [batch, length]; output "logits" [batch, classes]. Its graph,
    /// plan and executor are built here once; the caller owns (disposes) it.
    /// </summary>
    public InferenceSession CreateSession(int batch, int length)
    {
        LraConfig.Positive(batch, nameof(batch));
        var g = BuildGraph(batch, length);
        return new InferenceSession(g.Graph, [g.Logits]);
    }

    /// <summary>
    /// Class probabilities of each sequence (token ids), padded to the longest with <paramref name="pad"/> and masked:
    /// one inference run for the batch, through a session (<see cref="CreateSession"/>) kept per (batch, length).
    /// </summary>
    public float[][] Classify(IReadOnlyList<int[]> sequences, int pad = 0)
    {
        if (sequences.Count == 0) return [];
        var length = sequences.Max(s => s.Length);
        if (sequences.Any(s => s.Length == 0)) throw new ArgumentException("every sequence needs at least one token", nameof(sequences));
        foreach (var s in sequences)
            foreach (var t in s)
                if (t < 0 || t >= Config.Vocab) throw new ArgumentOutOfRangeException(nameof(sequences), t, $"token ids must be in [0, {Config.Vocab})");
        var key = (sequences.Count, length);
        if (!_sessions.TryGetValue(key, out var session)) _sessions[key] = session = CreateSession(sequences.Count, length);
        session.SetInput("tokens", [.. sequences.SelectMany(s => s.Concat(Enumerable.Repeat(pad, length - s.Length)).Select(t => (float)t))]);
        session.SetInput("mask", [.. sequences.SelectMany(s => Enumerable.Range(0, length).Select(i => i < s.Length ? 1f : 0f))]);
        session.Run();
        var logits = session.Output("logits");
        var classes = Config.Classes;
        return [.. Enumerable.Range(0, sequences.Count).Select(b =>
        {
            var row = logits.AsSpan(b * classes, classes);
            var max = double.NegativeInfinity;
            foreach (var v in row) max = Math.Max(max, v);
            var e = new double[classes];
            double sum = 0;
            for (var c = 0; c < classes; c++) sum += e[c] = Math.Exp(row[c] - max);
            return e.Select(v => (float)(v / sum)).ToArray();
        })];
    }

    public void Dispose()
    {
        foreach (var session in _sessions.Values) session.Dispose();
        _sessions.Clear();
        Parameters.Dispose();
    }
}

/// <summary>One batch shape's graph: feed tokens, mask (1 token, 0 pad) and labels (class indices), all float32.</summary>
public sealed record LraGraph(Graph Graph, Value Tokens, Value Mask, Value Labels, Value Logits, Value Loss) : IDisposable
{
    public void Dispose() => Graph.Dispose();
}
