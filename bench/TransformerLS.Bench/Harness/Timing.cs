using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Bench.Harness;

/// <summary>Order statistics of one case's timed runs, in milliseconds.</summary>
public sealed record TimeStats(int Runs, double MedianMs, double MinMs, double P90Ms)
{
    public static TimeStats Of(double[] ms)
    {
        if (ms.Length == 0) throw new ArgumentException("no timed runs", nameof(ms));
        var s = ms.Order().ToArray();
        var median = s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
        return new(s.Length, median, s[0], s[Math.Min(s.Length - 1, (int)Math.Ceiling(0.9 * s.Length) - 1)]);
    }
}

/// <summary>
/// Times an op: warm-up runs first, then each timed run alone. On a GPU the clock is a pair of CUDA events around
/// the op, and the L2 cache is flushed before every run (a memset of twice its size, outside the events) so no run
/// reads what the previous one left there. On the CPU backend a stopwatch times the op; that path exists for the
/// harness's smoke tests, not for numbers.
/// </summary>
public sealed class BenchTimer : IDisposable
{
    readonly IBackend _be;
    readonly CudaEvent? _start, _end;
    readonly Tensor? _flush;

    public BenchTimer(IBackend be, bool flushL2 = true)
    {
        _be = be;
        if (be is not CudaBackend cuda) return;
        _start = new CudaEvent(cuda.Context);
        _end = new CudaEvent(cuda.Context);
        if (flushL2) _flush = be.Empty(new Shape((int)(Math.Max(2L * cuda.Context.Device.L2CacheBytes, 1 << 20) / 4)), DType.Float32);
    }

    public string Clock => _start is null ? "stopwatch (CPU backend)" : _flush is null ? "CUDA events" : "CUDA events, L2 flushed before each run";

    public double[] Time(Action op, int warmup, int runs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        for (var i = 0; i < warmup; i++) op();
        _be.Synchronize();
        var ms = new double[runs];
        for (var i = 0; i < runs; i++)
        {
            if (_start is null)
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                op();
                ms[i] = sw.Elapsed.TotalMilliseconds;
                continue;
            }
            var cuda = (CudaBackend)_be;
            if (_flush is not null) CudaMemory.Fill8(cuda.Stream, _flush.DevicePointer, (byte)i, _flush.Bytes);
            _start.Record(cuda.Stream);
            op();
            _end!.Record(cuda.Stream);
            ms[i] = CudaEvent.ElapsedMilliseconds(_start, _end);
        }
        return ms;
    }

    public void Dispose()
    {
        _flush?.Dispose();
        _start?.Dispose();
        _end?.Dispose();
    }
}
