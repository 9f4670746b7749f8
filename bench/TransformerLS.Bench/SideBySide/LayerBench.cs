using TransformerLS.Backends;
using TransformerLS.Bench.Harness;
using TransformerLS.Bench.Scale;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

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
                (be as CudaBackend)?.Context.TrimPool();
                StepRow row;
                try
                {
                    using var step = new LayerStep(be, spec, b, n, rnd);
                    be.Synchronize();
                    be.ResetPeak();
                    step.Train();
                    be.Synchronize();
                    var peak = be.MemoryStats.PeakBytes;
                    var fwd = TimeStats.Of(timer.Time(step.Forward, 2, runs)).MedianMs;
                    var train = TimeStats.Of(timer.Time(step.Train, 2, runs)).MedianMs;
                    row = new("tls-" + spec.Name.Split('-')[0], Short(spec.DType), "step", n, b, "ok", fwd, train, peak);
                }
                catch (CudaOutOfMemoryException)
                {
                    row = new("tls-" + spec.Name.Split('-')[0], Short(spec.DType), "step", n, b, "oom", null, null, null);
                }
                rows.Add(row);
                log?.WriteLine($"{row.Impl,-10} {row.DType,-5} N={n,6} B={b,3} {row.Status,-4} fwd {row.ForwardMs,9:F3} ms  fwd+bwd {row.TrainMs,9:F3} ms  peak {(row.PeakBytes ?? 0) / 1048576.0,8:F0} MiB");
            }
        return rows;
    }

    public static string Short(DType dt) => dt == DType.BFloat16 ? "bf16" : "fp32";

    /// <summary>A sweep's rows in the shared format.</summary>
    public static IEnumerable<StepRow> FromSweep(LayerSpec spec, IEnumerable<ScaleRow> rows) => rows.Select(r =>
        new StepRow("tls-" + spec.Name.Split('-')[0], Short(spec.DType), "sweep", r.Length, 1, r.Status,
            r.Status == "ok" ? r.ForwardMs : null, r.Status == "ok" ? r.TrainMs : null, r.Status == "ok" ? r.PeakTrainBytes : null));
}
