using System.Globalization;
using System.Text;
using System.Text.Json;

namespace TransformerLS.Bench.Harness;

/// <summary>One timed kernel: its time and what it achieved against the ceilings (NaN where a rate does not apply).</summary>
public sealed record KernelRow(string Family, string Kernel, string Shape, string DType, TimeStats Time, double Flops, double Bytes,
    double Tflops, double GBps, double PctMatrix, double PctCopy)
{
    public static KernelRow Of(string family, string kernel, string shape, string dtype, TimeStats t, double flops, double bytes, Ceilings c)
    {
        var tf = flops > 0 ? flops / (t.MedianMs * 1e9) : double.NaN;
        var gb = bytes > 0 ? bytes / (t.MedianMs * 1e6) : double.NaN;
        return new(family, kernel, shape, dtype, t, flops, bytes, tf, gb, 100 * tf / c.MatrixTflops, 100 * gb / c.CopyGBps);
    }
}

/// <summary>A benchmark run: where it ran, the ceilings, the rows. Exported as JSON, CSV and a markdown table.</summary>
public sealed record KernelReport(BenchEnvironment Environment, string Clock, Ceilings Ceilings, IReadOnlyList<KernelRow> Rows)
{
    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);
    public static KernelReport FromJson(string json) => JsonSerializer.Deserialize<KernelReport>(json, Json) ?? throw new FormatException("empty report");

    static string F(double v, string format) => double.IsNaN(v) ? "" : v.ToString(format, CultureInfo.InvariantCulture);

    public string ToCsv()
    {
        var sb = new StringBuilder();
        foreach (var (k, v) in Environment.Fields) sb.Append("# ").Append(k).Append(": ").AppendLine(v);
        sb.AppendLine($"# ceilings: {F(Ceilings.MatrixTflops, "F1")} TFLOP/s ({Ceilings.Matrix}); {F(Ceilings.CopyGBps, "F0")} GB/s ({Ceilings.Copy}); clock: {Clock}");
        sb.AppendLine("family,kernel,shape,dtype,runs,median_ms,min_ms,p90_ms,flops,bytes,tflops,gbps,pct_matrix,pct_copy");
        foreach (var r in Rows)
            sb.AppendLine(string.Join(',', r.Family, r.Kernel, $"\"{r.Shape}\"", r.DType, r.Time.Runs, F(r.Time.MedianMs, "G6"), F(r.Time.MinMs, "G6"),
                F(r.Time.P90Ms, "G6"), F(r.Flops, "G6"), F(r.Bytes, "G6"), F(r.Tflops, "F2"), F(r.GBps, "F1"), F(r.PctMatrix, "F1"), F(r.PctCopy, "F1")));
        return sb.ToString();
    }

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(Environment.Header);
        sb.AppendLine();
        sb.AppendLine($"Ceilings (measured): **{F(Ceilings.MatrixTflops, "F1")} TFLOP/s** ({Ceilings.Matrix}), **{F(Ceilings.CopyGBps, "F0")} GB/s** ({Ceilings.Copy}). " +
                      $"Clock: {Clock}; median of {Rows.FirstOrDefault()?.Time.Runs ?? 0} runs.");
        sb.AppendLine();
        sb.AppendLine("| family | kernel | shape | dtype | median ms | TFLOP/s | % matrix | GB/s | % copy |");
        sb.AppendLine("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in Rows)
            sb.AppendLine($"| {r.Family} | {r.Kernel} | {r.Shape} | {r.DType} | {F(r.Time.MedianMs, "F3")} | {F(r.Tflops, "F1")} | {F(r.PctMatrix, "F1")} | {F(r.GBps, "F0")} | {F(r.PctCopy, "F1")} |");
        return sb.ToString();
    }

    /// <summary>Writes name.json, name.csv and name.md into <paramref name="dir"/>.</summary>
    public void Save(string dir, string name)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, name + ".json"), ToJson());
        File.WriteAllText(Path.Combine(dir, name + ".csv"), ToCsv());
        File.WriteAllText(Path.Combine(dir, name + ".md"), ToMarkdown());
    }
}
