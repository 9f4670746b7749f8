using System.Diagnostics;

namespace TransformerLS.Models;

/// <summary>
/// How the next byte is drawn: temperature 0 is greedy; otherwise the distribution is sharpened by the temperature, cut
/// to the <see cref="TopK"/> most likely bytes (0: no cut) and to the smallest set whose mass reaches <see cref="TopP"/>
/// (1: no cut), renormalized and sampled. Generation stops after <see cref="MaxBytes"/> bytes or once the output ends
/// with <see cref="Stop"/> (kept in the output).
/// </summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; } = 1f;
    public int TopK { get; init; }
    public float TopP { get; init; } = 1f;
    public int MaxBytes { get; init; } = 200;
    public byte[]? Stop { get; init; }

    public void Validate()
    {
        Ops.Sampling.CheckOptions(Temperature, TopK, TopP, nameof(Temperature), nameof(TopK), nameof(TopP));
        if (MaxBytes < 0) throw new ArgumentOutOfRangeException(nameof(MaxBytes), MaxBytes, "the maximum length must be >= 0");
        if (Stop is { Length: 0 }) throw new ArgumentException("the stop sequence is empty", nameof(Stop));
    }

    /// <summary>A token drawn from a row of log-probabilities with <paramref name="rng"/> (one uniform draw per token, so a seed reproduces a run).</summary>
    public int Draw(ReadOnlySpan<float> logProbs, Random rng) => Draw(logProbs, rng.NextDouble());

    /// <summary>
    /// A token drawn from a row of log-probabilities with the draw <paramref name="u"/> in [0, 1): the rule of
    /// <see cref="Ops.Sampling.SampleRows"/> (the GPU sampler's), run in double.
    /// </summary>
    public int Draw(ReadOnlySpan<float> logProbs, double u)
    {
        if (logProbs.IsEmpty) throw new ArgumentException("the row of log-probabilities is empty", nameof(logProbs));
        var row = new double[logProbs.Length];
        for (var c = 0; c < row.Length; c++) row[c] = logProbs[c];
        return Ops.Sampling.DrawRow<double>(row, u, Temperature, TopK, TopP, new int[row.Length], new double[row.Length]);
    }
}

/// <summary>Throughput of the last <see cref="LmGenerator.Generate"/>: prompt tokens fed and bytes drawn, with their wall times.</summary>
public sealed record GenerationStats(long PrefillTokens, double PrefillSeconds, long DecodeTokens, double DecodeSeconds)
{
    public double PrefillTokensPerSecond => PrefillSeconds > 0 ? PrefillTokens / PrefillSeconds : 0;
    public double DecodeTokensPerSecond => DecodeSeconds > 0 ? DecodeTokens / DecodeSeconds : 0;
}

/// <summary>
/// Generation from the causal LM with the incremental decoder: each prompt goes through the block forward
/// (<see cref="CausalLmDecoder.Prefill"/>; where the memory is shorter than a block, prompts of different lengths are fed in
/// lockstep instead, each sequence active while it has prompt left), then every unfinished sequence draws and feeds one
/// byte per step.
/// Sequence b draws with its own Random(seed + b), so a batch reproduces each sequence's batch-1 bytes on the CPU. The first
/// byte after the prompt is drawn on the host from the prefill's last row; each later one by the step that computed its
/// logits (<see cref="CausalLmDecoder.StepSample"/>: on the GPU on the device, the logits staying there).
/// </summary>
public sealed class LmGenerator : IDisposable
{
    readonly CausalLmDecoder _decoder;
    public GenerationStats? LastStats { get; private set; }

    public LmGenerator(CausalLm model, int batch) => _decoder = new CausalLmDecoder(model, batch);

    public int Batch => _decoder.Batch;

    /// <summary>
    /// Continues each prompt (one per sequence; an empty one starts from a newline) and returns the drawn bytes;
    /// <paramref name="onByte"/> sees (sequence, byte) as each is drawn.
    /// </summary>
    public byte[][] Generate(IReadOnlyList<byte[]> prompts, SamplingOptions options, int seed, Action<int, byte>? onByte = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var B = _decoder.Batch;
        if (prompts.Count != B) throw new ArgumentException($"{prompts.Count} prompts given; this generator runs batches of {B}", nameof(prompts));
        var vocab = _decoder.Model.Config.Vocab;
        var feed = prompts.Select(p => p.Length == 0 ? new[] { (byte)'\n' } : p).ToArray();
        for (var b = 0; b < B; b++)
            foreach (var x in feed[b])
                if (x >= vocab) throw new ArgumentException($"prompt {b}: byte {x} is outside the model's vocabulary of {vocab}", nameof(prompts));
        for (var b = 0; b < B; b++) _decoder.Reset(b);

        var rngs = Enumerable.Range(0, B).Select(b => new Random(unchecked(seed + b))).ToArray();
        var next = new float[B][];
        var tokens = new int[B];
        var active = new bool[B];
        var clock = Stopwatch.StartNew();
        long prefill = 0;
        if (_decoder.PrefillsInBlocks)
        {
            // The prompts through the block forward (blocks of L; all at once where they have one length), which fills the caches.
            var all = _decoder.PrefillAll([.. feed.Select(f => f.Select(x => (int)x).ToArray())]);
            for (var b = 0; b < B; b++)
            {
                next[b] = all.AsSpan(b * vocab, vocab).ToArray();
                prefill += feed[b].Length;
            }
        }
        else
            for (var t = 0; t < feed.Max(p => p.Length); t++)
            {
                for (var b = 0; b < B; b++) (active[b], tokens[b]) = t < feed[b].Length ? (true, feed[b][t]) : (false, 0);
                var lp = _decoder.Step(tokens, active);
                for (var b = 0; b < B; b++)
                    if (t == feed[b].Length - 1) next[b] = lp.AsSpan(b * vocab, vocab).ToArray();
                prefill += active.Count(a => a);
            }
        var prefillSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();

        // The first byte of each sequence is drawn here from the prefill's last row; every later one by the decode step that
        // computed its logits (on the GPU on the device: the logits stay there). Each draw takes the sequence's next uniform.
        var output = Enumerable.Range(0, B).Select(_ => new List<byte>()).ToArray();
        var uniforms = new double[B];
        long decoded = 0;
        void Emit(int b, int token)
        {
            var x = (byte)token;
            output[b].Add(x);
            onByte?.Invoke(b, x);
            var stop = options.Stop is { } s && EndsWith(output[b], s) || output[b].Count >= options.MaxBytes;
            (active[b], tokens[b]) = (!stop, x);
        }
        for (var b = 0; b < B; b++)
        {
            active[b] = false;
            if (options.MaxBytes > 0) Emit(b, options.Draw(next[b], rngs[b]));
        }
        while (active.Any(a => a))
        {
            for (var b = 0; b < B; b++) uniforms[b] = active[b] ? rngs[b].NextDouble() : 0;
            var drawn = _decoder.StepSample(tokens, active, options, uniforms);
            decoded += active.Count(a => a);
            for (var b = 0; b < B; b++)
                if (active[b]) Emit(b, drawn[b]);
        }
        LastStats = new GenerationStats(prefill, prefillSeconds, decoded, clock.Elapsed.TotalSeconds);
        return [.. output.Select(o => o.ToArray())];
    }

    static bool EndsWith(List<byte> bytes, byte[] stop)
    {
        if (bytes.Count < stop.Length) return false;
        for (var i = 0; i < stop.Length; i++)
            if (bytes[bytes.Count - stop.Length + i] != stop[i]) return false;
        return true;
    }

    public void Dispose() => _decoder.Dispose();
}
