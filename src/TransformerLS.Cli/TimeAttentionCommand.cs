using TransformerLS.Backends;
using TransformerLS.Conformance;
using TransformerLS.Cuda;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Cli;

/// <summary>
/// `tls time-attention`: device time of the fused bidirectional LS attention (then the causal one), forward and backward, with CUDA
/// events (warm-up, then the median of the runs) on random inputs. Useful FLOPs: 4·B·H·N·(2w + r)·d forward,
/// 2.5x that backward.
/// </summary>
static class TimeAttentionCommand
{
    public static int Run(int tokens, int heads, int headDim, int window, int rank, int runs)
    {
        if (!CudaContext.IsAvailable(out var why)) { Console.Error.WriteLine($"tls time-attention: needs a GPU: {why}"); return 2; }
        using var be = new CudaBackend();
        var cfg = new LsAttentionConfig(window, rank);
        Console.WriteLine($"{be.Context.Device.Name}: LS attention, {tokens} tokens/call, H={heads} d={headDim} w={window} r={rank}, median of {runs}");
        Console.WriteLine($"{"dtype",-9}{"N",7}{"B",5}{"fwd ms",10}{"fwd TF/s",10}{"bwd ms",10}{"bwd TF/s",10}");
        foreach (var dt in new[] { DType.BFloat16, DType.Float32 })
            for (var n = 1024; n <= tokens; n *= 4)
            {
                var b = tokens / n;
                using var scope = new TensorScope();
                var rng = new Random(n);
                Tensor Rand(params int[] dims) => RandomTensor(be, dt, rng, 1, dims);
                Tensor Like(Tensor t, DType? d = null) => be.Empty(t.Shape, d ?? t.DType);
                var q = Rand(b, heads, n, headDim); var k = Rand(b, heads, n, headDim); var v = Rand(b, heads, n, headDim);
                var kb = Rand(b, heads, rank, headDim); var vb = Rand(b, heads, rank, headDim); var dout = Rand(b, heads, n, headDim);
                var o = Like(q); var lse = be.Empty(new Shape(b, heads, n), DType.Float32);
                Tensor dq = Like(q), dk = Like(q), dv = Like(q), dkb = Like(kb), dvb = Like(kb);
                var fwd = Median(be, runs, () => LsAttention.Forward(be, cfg, q, k, v, kb, vb, null, o, lse));
                var bwd = Median(be, runs, () => LsAttention.Backward(be, cfg, q, k, v, kb, vb, null, o, lse, dout, dq, dk, dv, dkb, dvb));
                var flops = 4.0 * b * heads * n * (2.0 * window + rank) * headDim;
                Console.WriteLine($"{dt.Name(),-9}{n,7}{b,5}{fwd,10:F3}{flops / fwd / 1e9,10:F2}{bwd,10:F3}{2.5 * flops / bwd / 1e9,10:F2}");
            }
        TimeCausal(be, tokens, heads, headDim, runs);
        return 0;
    }

    /// <summary>
    /// The causal kernel at the enwik8 phase-1 shape: w = 512, l = 16, r = 1, L = M = 2048, 64K block tokens per call.
    /// Useful FLOPs per query: 6·d per window key (q·k, q·R, p·v) and 4·d per visible compressed key; backward 2.5x.
    /// </summary>
    static void TimeCausal(CudaBackend be, int tokens, int heads, int headDim, int runs)
    {
        const int W = 512, Lc = 16, R = 1, L = 2048, M = 2048;
        int b = Math.Max(1, tokens / L), p = W - 1, mc = M / Lc, nc = (mc + L / Lc) * R;
        var cfg = new LsCausalConfig(W, Lc, R);
        Console.WriteLine($"causal LS attention: B={b} L={L} M={M} H={heads} d={headDim} w={W} l={Lc} r={R}");
        Console.WriteLine($"{"dtype",-9}{"fwd ms",10}{"fwd TF/s",10}{"bwd ms",10}{"bwd TF/s",10}");
        foreach (var dt in new[] { DType.BFloat16, DType.Float32 })
        {
            using var scope = new TensorScope();
            var rng = new Random(5);
            Tensor Rand(double scale, params int[] dims) => RandomTensor(be, dt, rng, scale, dims);
            var x = new LsCausalInputs(Rand(1, b, heads, L, headDim), Rand(1, b, heads, p + L, headDim), Rand(1, b, heads, p + L, headDim),
                Rand(0.1, heads, headDim), Rand(0.1, heads, headDim), Rand(1, heads, W, headDim),
                Rand(1, b, heads, nc, headDim), Rand(1, b, heads, nc, headDim), Rand(1, heads, nc, headDim), null);
            var o = be.Empty(x.Q.Shape, dt);
            var lse = be.Empty(new Shape(b, heads, L), DType.Float32);
            var dout = Rand(1, b, heads, L, headDim);
            var g = new LsCausalGradients(be.Empty(x.Q.Shape, dt), be.Empty(x.K.Shape, dt), be.Empty(x.K.Shape, dt), be.Empty(x.U.Shape, dt),
                be.Empty(x.U.Shape, dt), be.Empty(x.Rel.Shape, dt), be.Empty(x.KC.Shape, dt), be.Empty(x.KC.Shape, dt), be.Empty(x.RelC.Shape, dt));
            var fwd = Median(be, runs, () => LsCausalAttention.Forward(be, cfg, x, o, lse));
            var bwd = Median(be, runs, () => LsCausalAttention.Backward(be, cfg, x, o, lse, dout, g));
            var compressed = (mc + (L / Lc - 1) / 2.0) * R;
            var flops = (double)b * heads * L * headDim * (6.0 * W + 4.0 * compressed);
            Console.WriteLine($"{dt.Name(),-9}{fwd,10:F3}{flops / fwd / 1e9,10:F2}{bwd,10:F3}{2.5 * flops / bwd / 1e9,10:F2}");
        }
    }

    /// <summary>N(0, scale²) values, never zeros, so the timed kernels do real work.</summary>
    static Tensor RandomTensor(CudaBackend be, DType dt, Random rng, double scale, int[] dims)
    {
        var t = be.Empty(new Shape(dims), dt);
        t.CopyFrom(ConformanceRunner.MakeInput(new InputSpec("x", t.Shape, dt, Scale: scale), rng));
        return t;
    }

    static double Median(CudaBackend be, int runs, Action op)
    {
        for (var i = 0; i < 3; i++) op();
        using var start = new CudaEvent(be.Context);
        using var end = new CudaEvent(be.Context);
        var times = new double[runs];
        for (var i = 0; i < runs; i++)
        {
            start.Record(be.Stream);
            op();
            end.Record(be.Stream);
            times[i] = CudaEvent.ElapsedMilliseconds(start, end);
        }
        Array.Sort(times);
        return times[runs / 2];
    }
}
