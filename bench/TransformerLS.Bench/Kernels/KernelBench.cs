using TransformerLS.Backends;
using TransformerLS.Bench.Harness;
using TransformerLS.Conformance;
using TransformerLS.Tensors;

namespace TransformerLS.Bench.Kernels;

/// <summary>
/// Runs the kernel table: ceilings first, then every perf-mode case of the op registry (Conformance/OpCases: the
/// families' own case definitions at the bench shapes) with fresh random inputs, freed after the case; the case's
/// untimed setup runs once, its launch is timed.
/// </summary>
public static class KernelBench
{
    /// <param name="Shapes">One or more shapes (e.g. the same tokens per call at N = 1K ... 64K); the ceilings are measured once.</param>
    public sealed record Options(IReadOnlyList<KernelShape> Shapes, IReadOnlyList<DType> DTypes, int Runs = 30, int Warmup = 5, string? Filter = null,
        int CeilingGemm = 8192, long CeilingCopyBytes = 1L << 30, int Seed = 1);

    /// <summary>Whether family.kernel <paramref name="name"/> is selected by <paramref name="filter"/>: comma-separated texts, any of
    /// which it contains (case-insensitive); null or blank selects every kernel.</summary>
    public static bool Matches(string name, string? filter) =>
        string.IsNullOrWhiteSpace(filter)
        || filter.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Any(f => name.Contains(f, StringComparison.OrdinalIgnoreCase));

    public static KernelReport Run(IBackend be, Options o, TextWriter? log = null)
    {
        if (o.Runs < 1) throw new ArgumentOutOfRangeException(nameof(o), o.Runs, "runs must be at least 1");
        var rnd = new RandomInputs(o.Seed);
        using var timer = new BenchTimer(be);
        var env = BenchEnvironment.Of(be);
        var ceilings = Ceilings.Measure(be, timer, rnd, o.CeilingGemm, o.CeilingCopyBytes, o.Runs);
        log?.WriteLine($"ceilings: {ceilings.MatrixTflops:F1} TFLOP/s ({ceilings.Matrix}), {ceilings.CopyGBps:F0} GB/s ({ceilings.Copy})");
        var rows = new List<KernelRow>();
        foreach (var c in o.Shapes.SelectMany(s => OpCases.Perf(s, o.DTypes)))
        {
            var name = $"{c.Stem}.{c.Direction}";
            if (!Matches(name, o.Filter)) continue;
            using var scope = new TensorScope();
            var ins = c.Inputs.Select(s => rnd.Input(be, s)).ToArray();
            var outs = c.Outputs.Select(s => be.Empty(s.Shape, s.DType)).ToArray();
            var launch = c.Prepare(be, ins, outs);
            var row = KernelRow.Of(c.Stem, c.Direction, c.Shape, c.DType.Name(), TimeStats.Of(timer.Time(launch, o.Warmup, o.Runs)), c.Flops, c.Bytes, ceilings);
            rows.Add(row);
            log?.WriteLine($"{name,-30} {c.DType.Name(),-9} {row.Time.MedianMs,9:F3} ms {row.Tflops,8:F1} TFLOP/s {row.GBps,7:F0} GB/s  {c.Shape}");
        }
        return new KernelReport(env, timer.Clock, ceilings, rows);
    }
}
