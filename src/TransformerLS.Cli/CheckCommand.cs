using TransformerLS.Backends;
using TransformerLS.Conformance;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Cli;

/// <summary>`tls check`: the conformance table on every available backend, with the largest error per op.</summary>
static class CheckCommand
{
    public static int Run(string device, int? seed, string? filter)
    {
        if (filter is not null && !OpCases.All.Any(c => c.Name.Contains(filter, StringComparison.OrdinalIgnoreCase)))
        {
            Console.Error.WriteLine($"tls check: --filter '{filter}' matches no case; op names look like layer_norm, ls_attention_backward (tls check lists them all)");
            return 2;
        }
        InfoCommand.Print();
        var backends = new List<IBackend>();
        try
        {
            var wanted = device == "auto" ? null : (Device?)Device.Parse(device);
            if (wanted is null || wanted.Value.Kind == DeviceKind.Cpu) backends.Add(CpuBackend.Instance);
            if (wanted is { Kind: DeviceKind.Cuda } || (wanted is null && CudaContext.IsAvailable(out _)))
                backends.Add(new CudaBackend(wanted?.Index ?? 0));
        }
        catch (Exception e) when (e is ArgumentException or CudaException or CudaLibraryNotFoundException)
        {
            Console.Error.WriteLine($"tls check: {CliErrors.Message(e)}");
            return 2;
        }

        var s = seed ?? Random.Shared.Next();
        Console.WriteLine($"\nop conformance (seed {s}): error vs float64 must be <= {ToleranceRule.TwiceSamePrecision.Factor}x the same-precision CPU error + {ToleranceRule.TwiceSamePrecision.RelativeFloor:E0}·max|ref|");
        int passed = 0, failed = 0;
        foreach (var be in backends)
        {
            var worst = new SortedDictionary<string, (double Err, double Bound)>();
            foreach (var c in OpCases.All.Where(c => filter is null || c.Name.Contains(filter, StringComparison.OrdinalIgnoreCase)))
            {
                CaseResult r;
                try { r = ConformanceRunner.Run(c, be, s); }
                catch (Exception e) when (e is CudaException or NvrtcCompileException)
                {
                    Console.WriteLine($"  FAIL {c.Name} on {be.Device}: {e.Message}");
                    failed++;
                    continue;
                }
                if (r.Passed) passed++;
                else { failed++; Console.WriteLine($"  FAIL {r.Describe()}"); }
                var key = $"{c.Op} {c.Inputs[0].DType.Name()}";
                var (err, bound) = worst.GetValueOrDefault(key);
                if (r.MaxError >= err) worst[key] = (r.MaxError, r.Outputs.Max(o => o.Bound));
            }
            Console.WriteLine($"\n  backend {be.Device}: largest error per op");
            foreach (var (k, (err, bound)) in worst) Console.WriteLine($"    {k,-30} {err,10:E2}   (bound {bound:E2})");
            if (be is CudaBackend cuda)
            {
                var m = cuda.MemoryStats;
                Console.WriteLine($"    device memory: {m.LiveBytes} bytes live after the run, peak {m.PeakBytes} bytes, {m.TotalAllocations} allocations");
                cuda.Dispose();
            }
        }
        Console.WriteLine($"\ncheck: {passed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }
}
