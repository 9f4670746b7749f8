using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Models;
using TransformerLS.Tensors;

namespace TransformerLS.Bench.SideBySide;

/// <summary>
/// One generation measurement (issue 15's format): prefill of a context of random bytes, then decode steps of one token
/// per sequence; ms_per_token is the median wall time of a decode step (log-probabilities back on the host, as
/// generation needs them), decode_tokens_per_s = batch / that; peak_bytes the allocator's high-water mark.
/// </summary>
public sealed record DecodeRow(
    [property: JsonPropertyName("impl")] string Impl,
    [property: JsonPropertyName("dtype")] string DType,
    [property: JsonPropertyName("batch")] int Batch,
    [property: JsonPropertyName("context")] int Context,
    [property: JsonPropertyName("prefill_tokens_per_s")] double? PrefillTokensPerS,
    [property: JsonPropertyName("decode_tokens_per_s")] double? DecodeTokensPerS,
    [property: JsonPropertyName("ms_per_token")] double? MsPerToken,
    [property: JsonPropertyName("peak_bytes")] long? PeakBytes,
    [property: JsonPropertyName("status")] string Status)
{
    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    public static string ToJson(IEnumerable<DecodeRow> rows) => JsonSerializer.Serialize(rows.ToList(), Json);
}

/// <summary>
/// `tls-bench decode`: the incremental decoder (CausalLmDecoder, "tls-decode": a CUDA graph per step on the GPU; and
/// "tls-decode-eager", kernels launched one by one, at the shortest context) at each batch and context, and the
/// block-recompute sampler it replaces (LmSampler, "tls-block-recompute", batch 1): the same model, weights and bytes.
/// The memory M is raised to the longest context so every context is remembered whole.
/// </summary>
public static class DecodeBench
{
    public sealed record Options(IReadOnlyList<int> Batches, IReadOnlyList<int> Contexts, IReadOnlyList<DType> DTypes, CausalLmConfig Model, int Steps = 32, bool Peer = true, bool Profile = false, bool ProfilePrefill = false);

    public static List<DecodeRow> Run(IBackend be, Options o, TextWriter? log = null)
    {
        var rows = new List<DecodeRow>();
        var memory = o.Contexts.Max();
        memory += (o.Model.ChunkLength - memory % o.Model.ChunkLength) % o.Model.ChunkLength;
        foreach (var dtype in o.DTypes)
        {
            using var model = new CausalLm(be, o.Model with { Memory = memory }, dtype, 1);
            WarmUp(model);
            foreach (var batch in o.Batches)
                foreach (var context in o.Contexts)
                    // the eager decoder (each kernel launched from the host) beside the graphed one, at the shortest context
                    foreach (var graphs in context == o.Contexts.Min() && be is CudaBackend ? new[] { true, false } : [true])
                    {
                        var row = Measure(be, model, batch, context, o.Steps, graphs, o.Profile, o.ProfilePrefill, log);
                        rows.Add(row);
                        log?.WriteLine(Format(row));
                    }
            if (o.Peer)
                foreach (var context in o.Contexts)
                {
                    var row = MeasurePeer(be, model, context, o.Steps);
                    rows.Add(row);
                    log?.WriteLine(Format(row));
                }
        }
        return rows;
    }

    static string Name(DType dt) => dt == DType.BFloat16 ? "bf16" : "fp32";

    /// <summary>Untimed: one block of prefill and a few steps at batch 1 (kernel modules, GEMM plans, a first graph), so that the
    /// first timed row does not carry the run's one-time work.</summary>
    static void WarmUp(CausalLm model)
    {
        using var d = new CausalLmDecoder(model, 1);
        var prompt = new int[Math.Max(1, model.Config.Length)];
        if (d.PrefillsInBlocks) d.Prefill(0, prompt);
        for (var s = 0; s < 3; s++) d.Step([0]);
        d.StepSample([0], default, Sampled, [0.5]);
    }

    /// <summary>Warm block prefills a row times (after the cold one): their median is its prefill rate.</summary>
    const int WarmPrefills = 3;

    /// <summary>What the timed steps draw with: plain sampling at temperature 1 (on the GPU on the device).</summary>
    static readonly SamplingOptions Sampled = new() { Temperature = 1f };

    static DecodeRow Measure(IBackend be, CausalLm model, int batch, int context, int steps, bool graphs, bool profile, bool profilePrefill, TextWriter? log)
    {
        var impl = graphs ? "tls-decode" : "tls-decode-eager";
        try
        {
            (be as CudaBackend)?.Context.TrimPool();
            be.ResetPeak();
            using var d = new CausalLmDecoder(model, batch, graphs);
            var rng = new Random(2);
            var vocab = model.Config.Vocab;
            var tokens = new int[batch];
            var clock = new Stopwatch();
            double prefill = 0, coldPrefill = 0;
            var warm = new List<double>();
            // Block prefill runs 1 + WarmPrefills times: the first (cold: the batch's block graph, memory plan and GEMM plans
            // are built inside it) is logged, the median of the others, each after a reset, is the row's prefill rate (a
            // session serves many prompts; one timed prefill at batch 1 swung 2x between calls).
            for (var pass = 0; pass < (d.PrefillsInBlocks ? 1 + WarmPrefills : 1); pass++)
            {
                for (var b = 0; b < batch && pass > 0; b++) d.Reset(b);
                var prompts = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, context).Select(_ => rng.Next(vocab)).ToArray()).ToArray();
                var bracket = profilePrefill && pass > 0 ? (be as CudaBackend)?.Context : null; // the warm prefills only
                bracket?.ProfilerStart();
                clock.Restart();
                if (d.PrefillsInBlocks) // all contexts through the block forward at once (returns once the log-probabilities are on the host)
                    d.PrefillAll(prompts);
                else
                    for (var t = 0; t < context; t++)
                    {
                        for (var b = 0; b < batch; b++) tokens[b] = prompts[b][t];
                        d.Step(tokens);
                    }
                prefill = (double)batch * context / clock.Elapsed.TotalSeconds;
                bracket?.ProfilerStop();
                if (pass == 0) coldPrefill = prefill;
                else warm.Add(prefill);
            }
            if (warm.Count > 0) prefill = Median([.. warm]);
            // Each warm prefill too: with graphs the first records the block forward's CUDA graph, the others replay it.
            if (d.PrefillsInBlocks)
                log?.WriteLine($"{impl} B={batch} context={context}: cold prefill (first at this batch) {coldPrefill:N0} tokens/s; warm {string.Join(", ", warm.Select(w => w.ToString("N0")))}" +
                               (graphs ? $" (block-forward replays so far: {d.PrefillReplays})" : ""));
            var times = new double[steps];
            var cuda = profile ? (be as CudaBackend)?.Context : null;
            cuda?.ProfilerStart();
            var uniforms = new double[batch];
            for (var b = 0; b < batch; b++) tokens[b] = rng.Next(vocab);
            for (var s = 0; s < steps; s++)
            {
                for (var b = 0; b < batch; b++) uniforms[b] = rng.NextDouble();
                clock.Restart();
                var drawn = d.StepSample(tokens, default, Sampled, uniforms); // returns once the drawn tokens are on the host
                times[s] = clock.Elapsed.TotalMilliseconds;
                drawn.CopyTo(tokens, 0); // the next step feeds what this one drew, as generation does
            }
            cuda?.ProfilerStop();
            var ms = Median(times);
            return new DecodeRow(impl, Name(model.DType), batch, context, prefill, batch / (ms / 1000), ms, be.MemoryStats.PeakBytes, "ok");
        }
        catch (Exception e) when (e is CudaOutOfMemoryException or OutOfMemoryException)
        {
            return new DecodeRow(impl, Name(model.DType), batch, context, null, null, null, null, "oom");
        }
    }

    /// <summary>The block-recompute sampler: a context prompt, then bytes drawn one by one, each re-running the current block.</summary>
    static DecodeRow MeasurePeer(IBackend be, CausalLm model, int context, int steps)
    {
        try
        {
            (be as CudaBackend)?.Context.TrimPool();
            be.ResetPeak();
            using var sampler = new LmSampler(model);
            var prompt = new byte[context];
            new Random(2).NextBytes(prompt);
            for (var i = 0; i < prompt.Length; i++) prompt[i] = (byte)(prompt[i] % model.Config.Vocab);
            var clock = Stopwatch.StartNew();
            var times = new List<double>();
            var last = 0.0;
            sampler.Generate(prompt, steps, 0.8f, 3, _ => { var now = clock.Elapsed.TotalMilliseconds; times.Add(now - last); last = now; });
            // The first byte's time includes committing the prompt's blocks: the prefill.
            var prefill = context / (times[0] / 1000);
            var ms = Median([.. times.Skip(1)]);
            return new DecodeRow("tls-block-recompute", Name(model.DType), 1, context, prefill, 1 / (ms / 1000), ms, be.MemoryStats.PeakBytes, "ok");
        }
        catch (Exception e) when (e is CudaOutOfMemoryException or OutOfMemoryException)
        {
            return new DecodeRow("tls-block-recompute", Name(model.DType), 1, context, null, null, null, null, "oom");
        }
    }

    static double Median(double[] v)
    {
        if (v.Length == 0) throw new ArgumentException("--steps must be at least 2 (the peer's first byte is its prefill)", "steps");
        var s = v.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    public static string Format(DecodeRow r) => r.Status != "ok"
        ? $"{r.Impl,-20} {r.DType} B={r.Batch,4} context={r.Context,7} {r.Status}"
        : $"{r.Impl,-20} {r.DType} B={r.Batch,4} context={r.Context,7} prefill {r.PrefillTokensPerS,10:N0} tokens/s  decode {r.DecodeTokensPerS,10:N0} tokens/s  {r.MsPerToken,8:F3} ms/token  peak {r.PeakBytes / 1048576.0,7:F0} MiB";

    /// <summary>ms/token vs context, one line per (impl, dtype, batch); the graphed decoder solid, the others dashed; a batch's lines share a colour.</summary>
    public static string Plot(IReadOnlyList<DecodeRow> rows)
    {
        var batches = rows.Select(r => r.Batch).Distinct().Order().ToList();
        var series = rows.Where(r => r.Status == "ok" && r.MsPerToken is > 0)
            .GroupBy(r => (r.Impl, r.DType, r.Batch))
            .OrderBy(g => g.Key.Batch).ThenBy(g => g.Key.Impl, StringComparer.Ordinal).ThenBy(g => g.Key.DType, StringComparer.Ordinal)
            .Select(g => new Scale.SvgPlot.Series($"{g.Key.Impl} {g.Key.DType} B{g.Key.Batch}",
                [.. g.OrderBy(r => r.Context).Select(r => ((double)r.Context, r.MsPerToken!.Value))], g.Key.Impl != "tls-decode", batches.IndexOf(g.Key.Batch)))
            .ToList();
        return Scale.SvgPlot.LogLog("decode: ms per step vs context", "context (tokens)", "ms per decode step", series);
    }

    public static string Markdown(IReadOnlyList<DecodeRow> rows, string header)
    {
        static string F(double? v, string f) => v is { } x ? x.ToString(f, CultureInfo.InvariantCulture) : "";
        var sb = new StringBuilder().AppendLine(header).AppendLine()
            .AppendLine("Generation: prefill of a random context, then decode steps (median wall time per step; each feeds the token the one before drew and returns once its own draws, at temperature 1, are on the host).").AppendLine()
            .AppendLine("| impl | dtype | B | context | prefill tokens/s | decode tokens/s | ms/token | peak MiB | status |")
            .AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (var r in rows)
            sb.AppendLine($"| {r.Impl} | {r.DType} | {r.Batch} | {r.Context} | {F(r.PrefillTokensPerS, "N0")} | {F(r.DecodeTokensPerS, "N0")} | {F(r.MsPerToken, "F3")} | {F(r.PeakBytes / 1048576.0, "F0")} | {r.Status} |");
        return sb.ToString();
    }
}
