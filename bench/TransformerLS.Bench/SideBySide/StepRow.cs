using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TransformerLS.Bench.SideBySide;

/// <summary>
/// One measured attention layer step, the format this program and the PyTorch peers (bench/peers) both write:
/// mode "step" = 64K tokens per step (B = tokens / N), "sweep" = batch 1 at growing N. Times are medians in ms;
/// peak_bytes is the allocator's high-water mark over forward + backward (parameters, gradients and input included).
/// </summary>
public sealed record StepRow(
    [property: JsonPropertyName("impl")] string Impl,
    [property: JsonPropertyName("dtype")] string DType,
    [property: JsonPropertyName("mode")] string Mode,
    [property: JsonPropertyName("n")] int N,
    [property: JsonPropertyName("batch")] int Batch,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("forward_ms")] double? ForwardMs,
    [property: JsonPropertyName("train_ms")] double? TrainMs,
    [property: JsonPropertyName("peak_bytes")] long? PeakBytes)
{
    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static string ToJson(IEnumerable<StepRow> rows) => JsonSerializer.Serialize(rows.ToList(), Json);

    public static List<StepRow> FromJson(string json, string source) =>
        JsonSerializer.Deserialize<List<StepRow>>(json, Json) ?? throw new FormatException($"{source}: not a list of rows");

    /// <summary>Every layer-step *.rows.json of a results folder (this program's and the peers'); the causal model's rows
    /// (model.rows.json, model-peers.rows.json: <see cref="ModelRow"/>) and the decode rows (decode*.rows.json) have their own tables.</summary>
    public static List<StepRow> Load(string dir) =>
        [.. Directory.GetFiles(dir, "*.rows.json").Where(f => !Path.GetFileName(f).StartsWith("model", StringComparison.Ordinal) && !Path.GetFileName(f).StartsWith("decode", StringComparison.Ordinal))
            .Order().SelectMany(f => FromJson(File.ReadAllText(f), f))];
}

/// <summary>The one table of a side-by-side run: every implementation at every shape, then the longest batch-1 length each fits.</summary>
public static class SideBySideTable
{
    static string Ms(double? v) => v is { } x ? x.ToString("F3", CultureInfo.InvariantCulture) : "";
    static string Mib(long? b) => b is { } x ? (x / 1048576.0).ToString("F0", CultureInfo.InvariantCulture) : "";

    public static string Markdown(IReadOnlyList<StepRow> rows, string header)
    {
        var sb = new StringBuilder().AppendLine(header).AppendLine();
        var steps = rows.Where(r => r.Mode == "step").ToList();
        if (steps.Count > 0)
        {
            sb.AppendLine("Layer step at a fixed 64K tokens (B = 65536 / N); forward and forward + backward, median ms; peak MiB over forward + backward.")
              .AppendLine()
              .AppendLine("| dtype | N | B | impl | forward ms | fwd+bwd ms | Mtokens/s (fwd+bwd) | peak MiB | status |")
              .AppendLine("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |");
            foreach (var r in steps.OrderBy(r => r.DType).ThenBy(r => r.N).ThenBy(r => r.Impl, StringComparer.Ordinal))
            {
                var mtps = r.TrainMs is { } t && t > 0 ? (r.N * (double)r.Batch / (t * 1e3)).ToString("F2", CultureInfo.InvariantCulture) : "";
                sb.AppendLine($"| {r.DType} | {r.N} | {r.Batch} | {r.Impl} | {Ms(r.ForwardMs)} | {Ms(r.TrainMs)} | {mtps} | {Mib(r.PeakBytes)} | {r.Status} |");
            }
            sb.AppendLine();
        }
        if (rows.Any(r => r.Mode == "sweep"))
        {
            sb.AppendLine("Batch-1 length sweep: the longest N that ran forward + backward, and what stopped the sweep.")
              .AppendLine()
              .AppendLine("| impl | dtype | longest N | peak MiB there | bytes/token there | fwd+bwd ms there | stopped by |")
              .AppendLine("| --- | --- | ---: | ---: | ---: | ---: | --- |");
            foreach (var (impl, dtype, best, stop) in Longest(rows))
                sb.AppendLine(best is null
                    ? $"| {impl} | {dtype} | none | | | | {stop} |"
                    : $"| {impl} | {dtype} | {best.N} | {Mib(best.PeakBytes)} | {(best.PeakBytes ?? 0) / (double)best.N:F0} | {Ms(best.TrainMs)} | {stop} |");
        }
        return sb.ToString();
    }

    /// <summary>Per swept implementation and dtype: the longest N that ran (null if none) and the status that ended the sweep.</summary>
    public static IEnumerable<(string Impl, string DType, StepRow? Best, string StoppedBy)> Longest(IEnumerable<StepRow> rows) =>
        rows.Where(r => r.Mode == "sweep").GroupBy(r => (r.Impl, r.DType))
            .OrderBy(g => g.Key.DType).ThenBy(g => g.Key.Impl, StringComparer.Ordinal)
            .Select(g => (g.Key.Impl, g.Key.DType, g.Where(r => r.Status == "ok").MaxBy(r => r.N), g.LastOrDefault(r => r.Status != "ok")?.Status ?? "none"));

    /// <summary>Peak memory and step time of every batch-1 sweep, one line per implementation and dtype.</summary>
    public static (string Memory, string Time) Plots(IReadOnlyList<StepRow> rows)
    {
        var groups = rows.Where(r => r.Mode == "sweep" && r.Status == "ok").GroupBy(r => $"{r.Impl} {r.DType}").OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        var memory = groups.Select((g, i) => new Scale.SvgPlot.Series(g.Key,
            [.. g.Where(r => r.PeakBytes is not null).OrderBy(r => r.N).Select(r => ((double)r.N, r.PeakBytes!.Value / 1048576.0))], Group: i)).ToList();
        var time = groups.Select((g, i) => new Scale.SvgPlot.Series(g.Key,
            [.. g.Where(r => r.TrainMs is not null).OrderBy(r => r.N).Select(r => ((double)r.N, r.TrainMs!.Value))], Group: i)).ToList();
        return (Scale.SvgPlot.LogLog("Attention layer, batch 1: peak memory (forward + backward)", "sequence length N", "MiB", memory),
            Scale.SvgPlot.LogLog("Attention layer, batch 1: forward + backward time", "sequence length N", "ms", time));
    }
}
