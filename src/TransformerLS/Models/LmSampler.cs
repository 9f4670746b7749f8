using TransformerLS.Ops;
using TransformerLS.Graphs;
using TransformerLS.Tensors;

namespace TransformerLS.Models;

/// <summary>
/// Sampling from the causal LM, batch 1. Text is committed to the memories in whole blocks of L, as in training;
/// the partial block is run right-padded (causal attention, per-token norms and strictly-earlier chunks make the
/// padding invisible to the positions before it), and the next byte is drawn from its last real position.
/// </summary>
public sealed class LmSampler : IDisposable
{
    readonly CausalLm _model;
    readonly LmGraph _g;
    readonly Executor _run;
    readonly Dictionary<Value, Tensor> _feeds = [];
    readonly List<int> _pending = [];
    readonly float[] _tokens;

    public LmSampler(CausalLm model)
    {
        _model = model;
        _g = model.BuildGraph(1);
        _run = new Executor(_g.Graph, new ExecutorOptions { Keep = [.. _g.NextMemories, _g.Logits] });
        foreach (var v in _g.Memories.Append(_g.Tokens).Append(_g.Targets))
        {
            var t = model.Backend.Empty(v.Shape, v.DType);
            model.Backend.Fill(t, v == _g.Targets ? -1f : 0f);
            _feeds[v] = t;
        }
        _tokens = new float[model.Config.Length];
    }

    /// <summary>Continues <paramref name="prompt"/> by <paramref name="count"/> bytes; temperature 0 is greedy. <paramref name="onByte"/> sees each byte as it is drawn (streaming).</summary>
    public byte[] Generate(ReadOnlySpan<byte> prompt, int count, float temperature, int seed, Action<byte>? onByte = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (!(temperature >= 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "the temperature must be >= 0");
        var vocab = _model.Config.Vocab;
        foreach (var b in prompt)
        {
            if (b >= vocab) throw new ArgumentException($"prompt byte {b} is outside the model's vocabulary of {vocab}", nameof(prompt));
            Append(b);
        }
        if (_pending.Count == 0) Append('\n');
        var rng = new Random(seed);
        var output = new byte[count];
        for (var i = 0; i < count; i++)
        {
            var logits = Run(commit: false);
            var row = logits.AsSpan((_pending.Count - 1) * vocab, vocab);
            output[i] = (byte)Sample(row, temperature, rng);
            onByte?.Invoke(output[i]);
            Append(output[i]);
        }
        return output;
    }

    void Append(int token)
    {
        _pending.Add(token);
        if (_pending.Count <= _model.Config.Length) return;
        // A full block (and one byte more, whose prediction needs the next block): commit it to the memories.
        Run(commit: true);
        _pending.RemoveRange(0, _model.Config.Length);
    }

    float[] Run(bool commit)
    {
        var L = _model.Config.Length;
        Array.Clear(_tokens);
        for (var t = 0; t < Math.Min(L, _pending.Count); t++) _tokens[t] = _pending[t];
        _feeds[_g.Tokens].CopyFrom(_tokens);
        _run.Forward(_feeds);
        if (commit)
            for (var i = 0; i < _g.Memories.Length; i++) Elementwise.Cast(_model.Backend, _run[_g.NextMemories[i]], _feeds[_g.Memories[i]]);
        return commit ? [] : _run[_g.Logits].ToArray();
    }

    static int Sample(ReadOnlySpan<float> logits, float temperature, Random rng)
    {
        var best = 0;
        for (var c = 1; c < logits.Length; c++) if (logits[c] > logits[best]) best = c;
        if (temperature == 0) return best;
        var p = new double[logits.Length];
        double sum = 0;
        for (var c = 0; c < p.Length; c++) sum += p[c] = Math.Exp((logits[c] - logits[best]) / temperature);
        var u = rng.NextDouble() * sum;
        for (var c = 0; c < p.Length; c++)
            if ((u -= p[c]) <= 0) return c;
        return best;
    }

    public void Dispose()
    {
        _run.Dispose();
        foreach (var t in _feeds.Values) t.Dispose();
        _g.Dispose();
    }
}
