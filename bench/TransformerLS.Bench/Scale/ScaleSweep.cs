using System.Globalization;
using System.Text;
using TransformerLS.Backends;
using TransformerLS.Bench.Harness;

namespace TransformerLS.Bench.Scale;

/// <summary>
/// One length of a sweep. Bytes are the allocator's unless named driver; planned = what was live before the step
/// (parameters, gradients, input, the backend's cuBLAS workspace) + the memory plan's peak. Times are medians in ms (NaN when not run).
/// </summary>
public sealed record ScaleRow(string Config, int Length, string Status, long PlannedTrainBytes, long PeakForwardBytes, long PeakTrainBytes,
    long DriverUsedBytes, double BytesPerToken, double ForwardMs, double TrainMs);

/// <summary>
/// The memory-scaling study of one layer config at batch 1: lengths double from <see cref="Options.Start"/> until one
/// does not fit (out of memory), a time cap or the length cap, then bisection between the longest length that fit and
/// the shortest that did not. Per length: the allocator's high-water mark over the whole step (parameters,
/// gradients, input and every activation), the plan's prediction, the driver's view (total − free after the step,
/// the pool's cached blocks included), bytes per token and the forward and forward + backward times.
/// </summary>
public static class ScaleSweep
{
    /// <param name="PastIndexLimit">Try lengths whose token tensors pass 2^31 elements. The LS layer's kernels compute element
    /// offsets in 64 bits as far as they have been read, but no GPU run has yet shown them at that size, so by default the
    /// sweep stops there ("index-limit"). A fault there ends the command: the rows so far are in its log.</param>
    public sealed record Options(int Start = 1024, int MaxLength = 1 << 24, double TimeCapMs = 10_000, int Runs = 5, int Granularity = 256, bool PastIndexLimit = false);

    public static List<ScaleRow> Run(IBackend be, LayerSpec spec, Options o, TextWriter? log = null)
    {
        if (o.Start < 1 || o.Granularity < 1) throw new ArgumentOutOfRangeException(nameof(o), o, "start and granularity must be positive");
        var rnd = new RandomInputs(7);
        using var timer = new BenchTimer(be, flushL2: false);
        var rows = new List<ScaleRow>();
        // Token-sized tensors ([N, D] and [N, H·r]) stay under 2^31 elements unless asked (PastIndexLimit).
        var indexLimit = o.PastIndexLimit ? o.MaxLength : (int)Math.Min(o.MaxLength, int.MaxValue / spec.Dim);
        int lastOk = 0, firstFail = 0;
        for (var n = o.Start; ; n *= 2)
        {
            if (n > indexLimit) { rows.Add(Stop(spec, n, n > o.MaxLength ? "length-cap" : "index-limit")); break; }
            var row = Measure(be, spec, n, o, timer, rnd);
            rows.Add(row);
            log?.WriteLine(Format(row));
            if (row.Status != "ok") { firstFail = n; break; }
            lastOk = n;
            if (row.TrainMs > o.TimeCapMs) { rows.Add(Stop(spec, 2 * n, "time-cap")); break; }
            if (n > int.MaxValue / 2) break;
        }
        // Bisection between the longest length that fit and the first that did not, to 1/16 of the length (at least the granularity).
        var lo = lastOk;
        var hi = firstFail;
        while (hi > 0 && lo > 0 && hi - lo > Math.Max(o.Granularity, lo / 16))
        {
            var mid = (lo + hi) / 2 / o.Granularity * o.Granularity;
            if (mid <= lo || mid >= hi) break;
            var row = Measure(be, spec, mid, o, timer, rnd);
            rows.Add(row);
            log?.WriteLine(Format(row));
            if (row.Status == "ok") lo = mid; else hi = mid;
        }
        return rows;
    }

    static ScaleRow Stop(LayerSpec spec, int n, string why) => new(spec.Name, n, why, 0, 0, 0, 0, double.NaN, double.NaN, double.NaN);

    static ScaleRow Measure(IBackend be, LayerSpec spec, int n, Options o, BenchTimer timer, RandomInputs rnd) =>
        LayerStep.Measure(be, spec, 1, n, rnd, timer, o.Runs, warmup: 1) is { } m
            ? new(spec.Name, n, "ok", m.PlannedTrainBytes, m.PeakForwardBytes, m.PeakTrainBytes, m.DriverUsedBytes, (double)m.PeakTrainBytes / n, m.ForwardMs, m.TrainMs)
            : Stop(spec, n, "oom");

    public static string Format(ScaleRow r) => r.Status != "ok"
        ? $"{r.Config,-10} N={r.Length,9}  {r.Status}"
        : $"{r.Config,-10} N={r.Length,9}  peak {r.PeakTrainBytes / 1048576.0,10:F1} MiB (plan {r.PlannedTrainBytes / 1048576.0:F1}, fwd {r.PeakForwardBytes / 1048576.0:F1}, driver {r.DriverUsedBytes / 1048576.0:F0})  " +
          $"{r.BytesPerToken,8:F0} B/token  fwd {r.ForwardMs,9:F3} ms  fwd+bwd {r.TrainMs,9:F3} ms";

    public static string ToCsv(IEnumerable<ScaleRow> rows, BenchEnvironment env)
    {
        static string F(double v) => double.IsNaN(v) ? "" : v.ToString("G6", CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        foreach (var (k, v) in env.Fields) sb.Append("# ").Append(k).Append(": ").AppendLine(v);
        sb.AppendLine("config,length,status,planned_train_bytes,peak_forward_bytes,peak_train_bytes,driver_used_bytes,bytes_per_token,forward_ms,train_ms");
        foreach (var r in rows)
            sb.AppendLine(string.Join(',', r.Config, r.Length, r.Status, r.PlannedTrainBytes, r.PeakForwardBytes, r.PeakTrainBytes, r.DriverUsedBytes,
                F(r.BytesPerToken), F(r.ForwardMs), F(r.TrainMs)));
        return sb.ToString();
    }

    /// <summary>Memory vs length and time vs length, log-log, one line per config.</summary>
    public static (string Memory, string Time) Plots(IReadOnlyList<ScaleRow> rows, string title)
    {
        var ok = rows.Where(r => r.Status == "ok").GroupBy(r => r.Config).ToList();
        var memory = ok.Select(g => new SvgPlot.Series(g.Key, [.. g.OrderBy(r => r.Length).Select(r => ((double)r.Length, r.PeakTrainBytes / 1048576.0))])).ToList();
        var time = ok.SelectMany((g, i) => new[]
        {
            new SvgPlot.Series(g.Key + " fwd+bwd", [.. g.OrderBy(r => r.Length).Select(r => ((double)r.Length, r.TrainMs))], Group: i),
            new SvgPlot.Series(g.Key + " fwd", [.. g.OrderBy(r => r.Length).Select(r => ((double)r.Length, r.ForwardMs))], Dashed: true, Group: i),
        }).ToList();
        return (SvgPlot.LogLog($"{title}: peak memory (forward + backward)", "sequence length N (batch 1)", "MiB", memory),
            SvgPlot.LogLog($"{title}: time per step", "sequence length N (batch 1)", "ms", time));
    }
}
