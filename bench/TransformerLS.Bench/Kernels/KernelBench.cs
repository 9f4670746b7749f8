using TransformerLS.Backends;
using TransformerLS.Bench.Harness;
using TransformerLS.Tensors;

namespace TransformerLS.Bench.Kernels;

/// <summary>Runs the kernel table: ceilings first, then every case (fresh random inputs, freed after the case).</summary>
public static class KernelBench
{
    public sealed record Options(KernelShape Shape, IReadOnlyList<DType> DTypes, int Runs = 30, int Warmup = 5, string? Filter = null,
        int CeilingGemm = 8192, long CeilingCopyBytes = 1L << 30, int Seed = 1);

    public static KernelReport Run(IBackend be, Options o, TextWriter? log = null)
    {
        if (o.Runs < 1) throw new ArgumentOutOfRangeException(nameof(o), o.Runs, "runs must be at least 1");
        var rnd = new RandomInputs(o.Seed);
        using var timer = new BenchTimer(be);
        var env = BenchEnvironment.Of(be);
        var ceilings = Ceilings.Measure(be, timer, rnd, o.CeilingGemm, o.CeilingCopyBytes, o.Runs);
        log?.WriteLine($"ceilings: {ceilings.MatrixTflops:F1} TFLOP/s ({ceilings.Matrix}), {ceilings.CopyGBps:F0} GB/s ({ceilings.Copy})");
        var rows = new List<KernelRow>();
        foreach (var c in KernelCases.All(o.Shape, o.DTypes))
        {
            var name = $"{c.Family}.{c.Kernel}";
            if (o.Filter is { } f && !name.Contains(f, StringComparison.OrdinalIgnoreCase)) continue;
            using var scope = new TensorScope();
            var launch = c.Prepare(be, rnd);
            var row = KernelRow.Of(c.Family, c.Kernel, c.Shape, c.DType.Name(), TimeStats.Of(timer.Time(launch, o.Warmup, o.Runs)), c.Flops, c.Bytes, ceilings);
            rows.Add(row);
            log?.WriteLine($"{name,-30} {c.DType.Name(),-9} {row.Time.MedianMs,9:F3} ms {row.Tflops,8:F1} TFLOP/s {row.GBps,7:F0} GB/s  {c.Shape}");
        }
        return new KernelReport(env, timer.Clock, ceilings, rows);
    }
}
