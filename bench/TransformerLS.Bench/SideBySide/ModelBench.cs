using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using TransformerLS.Backends;
using TransformerLS.Data;
using TransformerLS.Cuda;
using TransformerLS.Models;
using TransformerLS.Tensors;
using TransformerLS.Training;

namespace TransformerLS.Bench.SideBySide;

/// <summary>
/// One causal-LM training step measurement (issue 14's format, shared with bench/peers): a whole step is forward,
/// backward and the optimizer over batch x length tokens with memory M remembered states per layer; step_ms is the
/// median over the timed steps, peak_bytes the allocator's high-water mark over the run (model, optimizer state,
/// activations and the held-out evaluation's executor).
/// </summary>
public sealed record ModelRow(
    [property: JsonPropertyName("impl")] string Impl,
    [property: JsonPropertyName("dtype")] string DType,
    [property: JsonPropertyName("layers")] int Layers,
    [property: JsonPropertyName("length")] int Length,
    [property: JsonPropertyName("memory")] int Memory,
    [property: JsonPropertyName("batch")] int Batch,
    [property: JsonPropertyName("step_ms")] double? StepMs,
    [property: JsonPropertyName("tokens_per_s")] double? TokensPerS,
    [property: JsonPropertyName("peak_bytes")] long? PeakBytes,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("host_ms")] double? HostMs = null)
{
    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static string ToJson(IEnumerable<ModelRow> rows) => JsonSerializer.Serialize(rows.ToList(), Json);

    public static List<ModelRow> FromJson(string json) => JsonSerializer.Deserialize<List<ModelRow>>(json, Json) ?? [];
}

/// <summary>
/// The causal model's training step (`tls-bench model`): the library's own trainer on random bytes, the step timed
/// from the end of one optimizer step to the end of the next (the device synchronized at each), after warm-up steps.
/// </summary>
public static class ModelBench
{
    public sealed record Options(IReadOnlyList<(int Length, int Batch)> Shapes, IReadOnlyList<DType> DTypes, CausalLmConfig Model,
        int Runs = 10, int Warmup = 3, bool CudaGraph = false, int? Memory = null);

    /// <summary>enwik8-base: 12 layers, D 512, 8 heads, Dff 2048, w 512, chunk 16, rank 1 (reference section 3).</summary>
    public static CausalLmConfig Enwik8Base => new() { Vocab = 256, Dim = 512, Heads = 8, Hidden = 2048, Layers = 12, Window = 512, ChunkLength = 16, Rank = 1, Dropout = 0.1f };

    public static List<ModelRow> Run(IBackend be, Options o, TextWriter? log = null)
    {
        var rows = new List<ModelRow>();
        foreach (var dtype in o.DTypes)
            foreach (var (length, batch) in o.Shapes)
            {
                var row = Measure(be, o, dtype, length, batch);
                rows.Add(row);
                log?.WriteLine(Format(row));
            }
        return rows;
    }

    /// <summary>
    /// Bytes of random text for <paramref name="steps"/> training steps of [batch, length]: every step's blocks with room to
    /// spare, and a held-out split (a twentieth of the text, <see cref="ByteCorpus.Split"/>) that holds one evaluation
    /// batch (batch streams of length + 1), which long blocks at batch 1 need more than the steps do.
    /// </summary>
    public static long TextBytes(int batch, int length, int steps)
    {
        var need = Math.Max(1L << 20, 4L * batch * (length + 1) * (steps + 2));
        while (ByteCorpus.Split(need).Valid < (long)batch * (length + 1)) need *= 2;
        return need;
    }

    static ModelRow Measure(IBackend be, Options o, DType dtype, int length, int batch)
    {
        var memory = o.Memory ?? length;
        var name = dtype == DType.BFloat16 ? "bf16" : "fp32";
        var data = Path.Combine(Path.GetTempPath(), $"tls-bench-model-{Guid.NewGuid():N}.bin");
        try
        {
            var bytes = new byte[TextBytes(batch, length, o.Warmup + o.Runs)];
            new Random(1).NextBytes(bytes);
            File.WriteAllBytes(data, bytes);
            var cfg = new TrainConfig
            {
                Task = "lm", Data = data, Steps = o.Warmup + o.Runs, Batch = batch, LogEvery = o.Warmup + o.Runs, EvalBatches = 1,
                DType = dtype == DType.BFloat16 ? "bfloat16" : "float32", CudaGraph = o.CudaGraph,
                Lm = o.Model with { Length = length, Memory = memory },
            };
            (be as CudaBackend)?.Context.TrimPool();
            using var trainer = new Trainer(be, cfg);
            be.Synchronize();
            be.ResetPeak();
            // ends[i]: step i done on the device; queued[i]: the host has queued step i (before the wait). The host's share of
            // step i is queued[i] − ends[i − 1]: the time the host spends on a step the device has not yet begun.
            var (ends, queued) = (new List<double>(), new List<double>());
            var clock = Stopwatch.StartNew();
            trainer.Run(afterStep: _ => { queued.Add(clock.Elapsed.TotalMilliseconds); be.Synchronize(); ends.Add(clock.Elapsed.TotalMilliseconds); });
            var steps = ends.Skip(o.Warmup).Zip(ends.Skip(o.Warmup + 1), (a, b) => b - a).ToArray();
            if (steps.Length == 0) throw new ArgumentException("--runs must leave at least one timed step after the warm-up", "runs");
            var host = ends.Skip(o.Warmup).Zip(queued.Skip(o.Warmup + 1), (a, b) => b - a).ToArray();
            var ms = Median(steps);
            var impl = o.CudaGraph ? "tls-graph" : "tls";
            return new ModelRow(impl, name, o.Model.Layers, length, memory, batch, ms, batch * (double)length / (ms / 1000), be.MemoryStats.PeakBytes, "ok", Median(host));
        }
        catch (Exception e) when (e is CudaOutOfMemoryException or OutOfMemoryException)
        {
            return new ModelRow("tls", name, o.Model.Layers, length, memory, batch, null, null, null, "oom");
        }
        finally
        {
            File.Delete(data);
        }
    }

    static double Median(double[] v)
    {
        var s = v.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    public static string Format(ModelRow r) => r.Status != "ok"
        ? $"{r.Impl,-6} {r.DType}  L={r.Length,7} M={r.Memory,7} B={r.Batch,3} {r.Status}"
        : $"{r.Impl,-6} {r.DType}  L={r.Length,7} M={r.Memory,7} B={r.Batch,3} ok   step {r.StepMs,9:F3} ms  {r.TokensPerS,12:N0} tokens/s  peak {r.PeakBytes / 1048576.0,9:F0} MiB  host {r.HostMs,7:F3} ms";

    public static string Markdown(IReadOnlyList<ModelRow> rows, string header)
    {
        static string F(double? v, string f) => v is { } x ? x.ToString(f, CultureInfo.InvariantCulture) : "";
        var sb = new StringBuilder().AppendLine(header).AppendLine()
            .AppendLine("Causal LM training step (forward, backward, optimizer); median of the timed steps. host ms: from the end of one step on the device\nto the host having queued the next (its batch load included), as a share of the step in host %; tls-graph replays each step as one CUDA graph.").AppendLine()
            .AppendLine("| impl | dtype | layers | L | M | B | step ms | tokens/s | peak MiB | bytes/token | host ms | host % | status |")
            .AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (var r in rows)
            sb.AppendLine($"| {r.Impl} | {r.DType} | {r.Layers} | {r.Length} | {r.Memory} | {r.Batch} | {F(r.StepMs, "F3")} | {F(r.TokensPerS, "N0")} | " +
                          $"{F(r.PeakBytes / 1048576.0, "F0")} | {F(r.PeakBytes / (double)((long)r.Length * r.Batch), "F0")} | {F(r.HostMs, "F3")} | " +
                          $"{F(r.HostMs / r.StepMs * 100, "F1")} | {r.Status} |");
        return sb.ToString();
    }
}
