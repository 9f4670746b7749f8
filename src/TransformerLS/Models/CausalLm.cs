using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Graphs.Nodes;
using TransformerLS.Layers;
using TransformerLS.Tensors;

namespace TransformerLS.Models;

/// <summary>The byte-level LM's sizes (reference sections 3.5-3.6; defaults: enwik8 base, phase 1).</summary>
public sealed record CausalLmConfig
{
    public int Vocab { get; init; } = 256;
    public int Dim { get; init; } = 512;
    public int Heads { get; init; } = 8;
    public int Hidden { get; init; } = 2048;
    public int Layers { get; init; } = 12;
    public int Window { get; init; } = 512;
    public int ChunkLength { get; init; } = 16;
    public int Rank { get; init; } = 1;
    public float Dropout { get; init; } = 0.2f;
    /// <summary>Tokens per block, L.</summary>
    public int Length { get; init; } = 2048;
    /// <summary>Memory length M (a multiple of the chunk length; 0 for none).</summary>
    public int Memory { get; init; } = 2048;

    public LsCausalModuleConfig Attention => new(Dim, Heads, Window, ChunkLength, Rank);

    public void Validate()
    {
        LraConfig.Positive(Vocab, nameof(Vocab)); LraConfig.Positive(Hidden, nameof(Hidden)); LraConfig.Positive(Layers, nameof(Layers));
        LraConfig.Positive(Length, nameof(Length));
        Attention.Validate(); // first: it checks the chunk length the memory check divides by
        if (Memory < 0 || Memory % ChunkLength != 0)
            throw new ArgumentOutOfRangeException(nameof(Memory), Memory, $"the memory length must be >= 0 and a multiple of the chunk length {ChunkLength}");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "dropout must be in [0, 1)");
    }
}

/// <summary>
/// The causal LS language model of the enwik8 code (sections 3.5-3.7): embedding × √D, pre-LN layers with the
/// reference's residual on the normed stream (h2 = h1 + Attn(h1, LN1(cache)), out = h3 + FFN(h3), h3 = LN2(h2)),
/// no final LayerNorm, the output layer tied to the embedding plus its own bias. Each layer's memory is the
/// last M of its inputs, carried to the next block without gradient (truncated BPTT).
/// </summary>
public sealed class CausalLm : ILsModel
{
    public CausalLmConfig Config { get; }
    public IBackend Backend { get; }
    public DType DType { get; }
    public ParameterSet Parameters { get; } = new();

    public CausalLm(IBackend be, CausalLmConfig cfg, DType dtype, int seed)
    {
        cfg.Validate();
        (Backend, Config, DType) = (be, cfg, dtype);
        var rng = new Random(seed);
        int D = cfg.Dim;
        Parameters.Add(be, "in_emb.weight", new Shape(cfg.Vocab, D), dtype, rng, 0.02); // out_emb.weight is this tensor (tied)
        Parameters.Add(be, "out_emb.bias", new Shape(cfg.Vocab), dtype, rng, 0);
        for (var i = 0; i < cfg.Layers; i++)
        {
            var b = $"layers.{i}.";
            LsCausalAttentionBlock.AddParameters(Parameters, be, b + "attn.", cfg.Attention, dtype, rng);
            Parameters.AddLayerNorm(be, b + "norm1", D, rng, 0.02, dtype);
            Parameters.AddLinear(be, b + "ff.fc1", cfg.Hidden, D, true, dtype, rng, 0.02);
            Parameters.AddLinear(be, b + "ff.fc2", D, cfg.Hidden, true, dtype, rng, 0.02);
            Parameters.AddLayerNorm(be, b + "norm2", D, rng, 0.02, dtype);
        }
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
    /// throw OverflowException). Mirrors the constructor and LsCausalAttentionBlock.AddParameters; a test holds them equal.
    /// </summary>
    public static long CountParameters(CausalLmConfig cfg)
    {
        checked
        {
            long D = cfg.Dim, F = cfg.Hidden, hr = (long)cfg.Heads * cfg.Rank;
            // proj_query/key/val/out, r_net (no bias), r_net_chunk (bias); dconv_1; r_w_bias, r_r_bias [H, d]; two dual LNs
            long attention = 6 * D * D + D + (hr * D + hr) + 2 * D + 2 * 2 * D;
            long layer = attention + 2 * D + (F * D + F) + (D * F + D) + 2 * D;
            return cfg.Vocab * D + cfg.Vocab + cfg.Layers * layer;
        }
    }

    /// <summary>The graph of one block of <paramref name="batch"/> streams of L tokens with M remembered states per layer.</summary>
    public LmGraph BuildGraph(int batch)
    {
        LraConfig.Positive(batch, nameof(batch));
        var cfg = Config;
        int L = cfg.Length, M = cfg.Memory, D = cfg.Dim;
        var g = new Graph(Backend);
        var p = new ParameterValues(g, Parameters);
        var tokens = g.Input("tokens", new Shape(batch, L), DType.Float32);
        var targets = g.Input("targets", new Shape(batch, L), DType.Float32);
        var mems = Enumerable.Range(0, M > 0 ? cfg.Layers : 0).Select(i => g.Input($"memory.{i}", new Shape(batch, M, D), DType)).ToArray();
        var sinWindow = g.Dropout(LsCausalAttentionBlock.Sinusoids(g, "sin.window", cfg.Window, D, DType), cfg.Dropout);
        var sinChunks = LsCausalAttentionBlock.Sinusoids(g, "sin.chunks", LsCausalAttentionBlock.CompressedKeys(cfg.Attention, L, M), D, DType);
        var embedding = p["in_emb.weight"];
        var x = g.Dropout(g.Scale(g.Embedding(embedding, tokens), MathF.Sqrt(D), "embeddings"), cfg.Dropout);
        var newMems = new Value[mems.Length];
        for (var i = 0; i < cfg.Layers; i++)
        {
            // The next block's memory: the last M of (memory ++ this layer's input), outside the block so recomputation leaves it alone.
            if (M > 0) newMems[i] = M <= L ? g.Slice(x, 1, L - M, M, $"memory.{i}.next") : g.Concat(g.Slice(mems[i], 1, L, M - L), x, 1, $"memory.{i}.next");
            var b = p.Scope($"layers.{i}.");
            g.BeginBlock();
            var h1 = g.LayerNorm(x, b["norm1.weight"], b["norm1.bias"]);
            var c = M > 0 ? g.LayerNorm(mems[i], b["norm1.weight"], b["norm1.bias"]) : null;
            var h2 = g.Plus(h1, g.Dropout(LsCausalAttentionBlock.Build(g, cfg.Attention, b.Scope("attn."), h1, c, sinWindow, sinChunks), cfg.Dropout));
            var h3 = g.LayerNorm(h2, b["norm2.weight"], b["norm2.bias"]);
            var f = g.Dropout(g.Activation(g.Linear(h3, b["ff.fc1.weight"], b["ff.fc1.bias"]), Activation.Gelu), cfg.Dropout);
            x = g.Plus(h3, g.Dropout(g.Linear(f, b["ff.fc2.weight"], b["ff.fc2.bias"]), cfg.Dropout));
            g.EndBlock();
        }
        var logits = g.Linear(g.Dropout(x, cfg.Dropout), embedding, p["out_emb.bias"], "logits");
        return new LmGraph(g, tokens, targets, mems, newMems, logits, g.CrossEntropyMean(logits, targets));
    }

    public void Dispose() => Parameters.Dispose();
}

/// <summary>
/// One block's graph: feed tokens and targets [B, L] (float32 byte values; a negative target is ignored) and each
/// layer's memory [B, M, D]; after a run, <see cref="NextMemories"/> hold the memories of the next block.
/// </summary>
public sealed record LmGraph(Graph Graph, Value Tokens, Value Targets, Value[] Memories, Value[] NextMemories, Value Logits, Value Loss) : IDisposable
{
    public void Dispose() => Graph.Dispose();
}
