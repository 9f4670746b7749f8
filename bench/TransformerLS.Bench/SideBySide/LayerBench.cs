using TransformerLS.Backends;
using TransformerLS.Bench.Harness;
using TransformerLS.Bench.Scale;

namespace TransformerLS.Bench.SideBySide;

/// <summary>
/// The library's side of the peer comparison: the LS layer and the full-attention layer at a fixed number of tokens
/// per step (B = tokens / N), forward and forward + backward, timed with CUDA events (median; inputs stay in L2 as
/// they would in a model), with the allocator's peak over the step. The batch-1 sweep rows come from <see cref="ScaleSweep"/>.
/// </summary>
public static class LayerBench
{
    public static List<StepRow> Run(IBackend be, IEnumerable<LayerSpec> specs, int tokens, IEnumerable<int> lengths, int runs, TextWriter? log = null)
    {
        var rnd = new RandomInputs(11);
        using var timer = new BenchTimer(be, flushL2: false);
        var rows = new List<StepRow>();
        foreach (var spec in specs)
            foreach (var n in lengths)
            {
                var b = Math.Max(1, tokens / n);
                var m = LayerStep.Measure(be, spec, b, n, rnd, timer, runs, warmup: 2);
                var row = new StepRow("tls-" + spec.KindName, spec.DTypeName, "step", n, b, m is null ? "oom" : "ok", m?.ForwardMs, m?.TrainMs, m?.PeakTrainBytes);
                rows.Add(row);
                log?.WriteLine($"{row.Impl,-10} {row.DType,-5} N={n,6} B={b,3} {row.Status,-4} fwd {row.ForwardMs,9:F3} ms  fwd+bwd {row.TrainMs,9:F3} ms  peak {(row.PeakBytes ?? 0) / 1048576.0,8:F0} MiB");
            }
        return rows;
    }

    /// <summary>A sweep's rows in the shared format.</summary>
    public static IEnumerable<StepRow> FromSweep(LayerSpec spec, IEnumerable<ScaleRow> rows) => rows.Select(r =>
        new StepRow("tls-" + spec.KindName, spec.DTypeName, "sweep", r.Length, 1, r.Status,
            r.Status == "ok" ? r.ForwardMs : null, r.Status == "ok" ? r.TrainMs : null, r.Status == "ok" ? r.PeakTrainBytes : null));
}
