using BenchmarkDotNet.Attributes;
using TransformerLS.Backends;
using TransformerLS.Bench.Harness;
using TransformerLS.Bench.Scale;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Bench.Host;

static class Shared
{
    public static IBackend Open() => BackendFactory.Open(Environment.GetEnvironmentVariable("TLS_BENCH_DEVICE") ?? "auto");
    /// <summary>Tokens per call: the peers' 64K on a GPU, 1K on the CPU backend (the float64 reference is slow).</summary>
    public static int Tokens(IBackend be) => be is CudaBackend ? 65536 : 1024;
}

/// <summary>
/// A whole LS (or full-attention) layer through the graph executor, forward and forward + backward, synchronized at
/// the end of each invocation; forwards are batched OperationsPerInvoke at a time so the one synchronization is amortized.
/// </summary>
public class LayerBenchmarks
{
    const int Batched = 10;
    IBackend _be = null!;
    LayerStep _step = null!;

    [Params(LayerKind.Ls, LayerKind.Full)] public LayerKind Layer { get; set; }
    [Params(1024, 4096)] public int N { get; set; }
    [Params(DType.BFloat16)] public DType DType { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _be = Shared.Open();
        var dim = _be is CudaBackend ? 512 : 64;
        _step = new LayerStep(_be, new LayerSpec(Layer, DType, dim, 8, 128, 64), Math.Max(1, Shared.Tokens(_be) / N), N, new RandomInputs(3));
    }

    [Benchmark(OperationsPerInvoke = Batched)]
    public void Forward()
    {
        for (var i = 0; i < Batched; i++) _step.Forward();
        _be.Synchronize();
    }

    [Benchmark]
    public void ForwardBackward()
    {
        _step.Train();
        _be.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _step.Dispose();
        _be.Dispose();
    }
}

/// <summary>The fused LS attention op alone, launched OperationsPerInvoke times per synchronization.</summary>
public class AttentionOpBenchmarks
{
    const int Batched = 20;
    IBackend _be = null!;
    Tensor _q = null!, _k = null!, _v = null!, _kb = null!, _vb = null!, _o = null!, _lse = null!;
    readonly LsAttentionConfig _cfg = new(128, 64);

    [Params(1024, 16384)] public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _be = Shared.Open();
        var rnd = new RandomInputs(5);
        int b = Math.Max(1, Shared.Tokens(_be) / N), h = 8, d = 64;
        var dt = _be is CudaBackend ? DType.BFloat16 : DType.Float32;
        (_q, _k, _v) = (rnd.Normal(_be, dt, 1, b, h, N, d), rnd.Normal(_be, dt, 1, b, h, N, d), rnd.Normal(_be, dt, 1, b, h, N, d));
        (_kb, _vb) = (rnd.Normal(_be, dt, 1, b, h, 64, d), rnd.Normal(_be, dt, 1, b, h, 64, d));
        _o = _be.Empty(_q.Shape, dt);
        _lse = _be.Empty(new Shape(b, h, N), DType.Float32);
    }

    [Benchmark(OperationsPerInvoke = Batched)]
    public void LsAttentionForward()
    {
        for (var i = 0; i < Batched; i++) LsAttention.Forward(_be, _cfg, _q, _k, _v, _kb, _vb, null, _o, _lse);
        _be.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _q, _k, _v, _kb, _vb, _o, _lse }) t.Dispose();
        _be.Dispose();
    }
}
