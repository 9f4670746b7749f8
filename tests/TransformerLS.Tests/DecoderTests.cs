using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Models;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>
/// Incremental decoding (CausalLmDecoder) against the block forward (CausalLm.BuildGraph, blocks committed to the
/// memories, the last block right-padded): the log-probabilities at every position of a stream that crosses chunk
/// and block boundaries and outlives the memory span, by the 2x rule against a float64 block forward.
/// </summary>
[Collection(GpuCollection.Name)]
public class DecoderTests
{
    // (L, M, w, l, r): the window inside the memory; the window cut by a short memory (P = M < w − 1); a memory longer
    // than the block and a window longer than the block; no memory at all.
    public static TheoryData<int, int, int, int, int> Shapes => new()
    {
        { 8, 8, 4, 2, 2 }, { 8, 4, 8, 2, 1 }, { 4, 12, 6, 2, 1 }, { 8, 0, 4, 4, 1 },
    };

    static CausalLmConfig Config(int L, int M, int w, int l, int r) => new()
    {
        Vocab = 13, Dim = 16, Heads = 2, Hidden = 32, Layers = 2, Window = w, ChunkLength = l, Rank = r, Length = L, Memory = M, Dropout = 0,
    };

    static int[] Stream(int count, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => rng.Next(13))];
    }

    /// <summary>A model in <paramref name="dt"/> holding exactly <paramref name="like"/>'s parameter values.</summary>
    static CausalLm CopyOf(CausalLm like, DType dt, IBackend be)
    {
        var m = new CausalLm(be, like.Config, dt, 0);
        foreach (var (name, t) in like.Parameters.Tensors) m.Parameters[name].CopyFrom(t.ToDoubles());
        return m;
    }

    /// <summary>log p(next token | stream[..t]) for every t, [T][V], from the block forward.</summary>
    internal static double[][] BlockForward(CausalLm model, int[] stream)
    {
        var cfg = model.Config;
        var be = model.Backend;
        using var g = model.BuildGraph(1);
        using var run = new Executor(g.Graph, new ExecutorOptions { Keep = [.. g.NextMemories, g.Logits] });
        var feeds = new Dictionary<Value, Tensor>();
        using var scope = new TensorScope();
        foreach (var v in g.Memories.Append(g.Tokens).Append(g.Targets))
        {
            var t = be.Empty(v.Shape, v.DType);
            be.Fill(t, v == g.Targets ? -1f : 0f);
            feeds[v] = t;
        }
        var result = new List<double[]>();
        for (var start = 0; start < stream.Length; start += cfg.Length)
        {
            var n = Math.Min(cfg.Length, stream.Length - start);
            var tokens = new float[cfg.Length];
            for (var i = 0; i < n; i++) tokens[i] = stream[start + i];
            feeds[g.Tokens].CopyFrom(tokens);
            run.Forward(feeds);
            var logits = run[g.Logits].ToDoubles();
            for (var i = 0; i < n; i++) result.Add(LogSoftmax(logits.AsSpan(i * cfg.Vocab, cfg.Vocab)));
            for (var i = 0; i < g.Memories.Length; i++) Elementwise.Cast(be, run[g.NextMemories[i]], feeds[g.Memories[i]]);
            run.ReleaseOutputs();
        }
        return [.. result];
    }

    static double[] LogSoftmax(ReadOnlySpan<double> row)
    {
        double max = double.NegativeInfinity, sum = 0;
        foreach (var v in row) max = Math.Max(max, v);
        foreach (var v in row) sum += Math.Exp(v - max);
        var lse = max + Math.Log(sum);
        var y = new double[row.Length];
        for (var c = 0; c < y.Length; c++) y[c] = row[c] - lse;
        return y;
    }

    static double[][] Decode(CausalLm model, int[] stream)
    {
        using var d = new CausalLmDecoder(model, 1);
        return [.. stream.Select(t => d.Step([t]).Select(v => (double)v).ToArray())];
    }

    /// <summary>Sequence 1 of a batch of 2 prefilled with stream[..p], then stepped through the rest: log-probs at positions p − 1 ….</summary>
    static double[][] PrefillThenDecode(CausalLm model, int[] stream, int p)
    {
        using var d = new CausalLmDecoder(model, 2);
        var rows = new List<double[]> { d.Prefill(1, stream.AsSpan(0, p)).Select(v => (double)v).ToArray() };
        Assert.Equal(p, d.Position(1));
        Assert.Equal(0, d.Position(0));
        foreach (var t in stream[p..]) rows.Add(d.Step([0, t], [false, true]).AsSpan(model.Config.Vocab).ToArray().Select(v => (double)v).ToArray());
        return [.. rows];
    }

    /// <summary>
    /// A batch of streams.Length sequences prefilled together with streams[b][..p] (PrefillAll, one block forward at batch B), then
    /// stepped together through the rest: per sequence its log-probs at positions p − 1 ….
    /// </summary>
    static double[][][] PrefillAllThenDecode(CausalLm model, int[][] streams, int p)
    {
        var B = streams.Length;
        var V = model.Config.Vocab;
        using var d = new CausalLmDecoder(model, B);
        var rows = Enumerable.Range(0, B).Select(_ => new List<double[]>()).ToArray();
        void Add(float[] lp)
        {
            for (var b = 0; b < B; b++) rows[b].Add([.. lp.AsSpan(b * V, V).ToArray().Select(v => (double)v)]);
        }
        Add(d.PrefillAll([.. streams.Select(s => s[..p])]));
        for (var b = 0; b < B; b++) Assert.Equal(p, d.Position(b));
        for (var t = p; t < streams[0].Length; t++) Add(d.Step([.. streams.Select(s => s[t])]));
        return [.. rows.Select(r => r.ToArray())];
    }

    /// <summary>PrefillAll against each sequence's float64 block forward, prompts ending mid-chunk, at a block end and past it.</summary>
    static void CheckPrefillAll(IBackend be, CausalLmConfig cfg, DType dt, double floor)
    {
        var cpu = new CpuBackend();
        var streams = Enumerable.Range(0, 3).Select(b => Stream(2 * cfg.Length + 5, 40 + b)).ToArray();
        using var model = new CausalLm(cpu, cfg, dt, 8);
        using var exact = CopyOf(model, DType.Float64, cpu);
        var truth = streams.Select(s => BlockForward(exact, s)).ToArray();
        var same = streams.Select((s, b) => MaxError(BlockForward(model, s), truth[b])).Max();
        var bound = 2 * same + floor * Math.Max(1, truth.Max(t => t.Max(row => row.Max(Math.Abs))));
        using var on = CopyOf(model, dt, be);
        foreach (var p in new[] { cfg.ChunkLength + 1, cfg.Length, cfg.Length + cfg.ChunkLength + 1 })
        {
            var got = PrefillAllThenDecode(on, streams, p);
            for (var b = 0; b < streams.Length; b++)
            {
                var err = MaxError(got[b], truth[b][(p - 1)..]);
                TestContext.Current.SendDiagnosticMessage($"{be.GetType().Name} {dt.Name()} sequence {b} prompt {p}: error {err:E3}, block forward {same:E3}, bound {bound:E3}");
                Assert.True(err <= bound, $"{dt.Name()} sequence {b} prompt {p}: error {err:E3} > bound {bound:E3}");
            }
        }
    }

    [Theory, InlineData(DType.Float32), InlineData(DType.BFloat16)]
    public void Prefilling_a_batch_at_once_matches_each_sequences_block_forward(DType dt) =>
        CheckPrefillAll(new CpuBackend(), Config(8, 8, 4, 2, 2), dt, 1.0 / (1 << 23));

    [Theory, InlineData(DType.Float32), InlineData(DType.BFloat16)]
    public void Prefilling_a_batch_at_once_on_the_gpu_matches_each_sequences_block_forward(DType dt)
    {
        var gpu = TestEnv.RequireGpu();
        var before = gpu.MemoryStats.LiveBytes;
        CheckPrefillAll(gpu, Config(16, 16, 8, 4, 2) with { Dim = 64, Heads = 2 }, dt, dt == DType.Float32 ? 2e-5 : 2e-3);
        Assert.Equal(before, gpu.MemoryStats.LiveBytes);
    }

    static double MaxError(double[][] a, double[][] truth) => a.Zip(truth, (x, y) => x.Zip(y, (p, q) => Math.Abs(p - q)).Max()).Max();

    [Theory, MemberData(nameof(Shapes))]
    public void Decoding_matches_the_block_forward_at_every_position(int L, int M, int w, int l, int r)
    {
        var be = new CpuBackend();
        var stream = Stream(3 * L + 3, L + M + w);
        foreach (var dt in new[] { DType.Float32, DType.BFloat16 })
        {
            using var model = new CausalLm(be, Config(L, M, w, l, r), dt, 5);
            using var exact = CopyOf(model, DType.Float64, be);
            var truth = BlockForward(exact, stream);
            var same = MaxError(BlockForward(model, stream), truth);
            var decoded = Decode(model, stream);
            Assert.All(decoded, row => Assert.DoesNotContain(row, double.IsNaN));
            var err = MaxError(decoded, truth);
            var magnitude = truth.Max(row => row.Max(Math.Abs));
            var bound = 2 * same + Math.Max(1, magnitude) / (1 << 23);
            TestContext.Current.SendDiagnosticMessage($"{dt.Name()} L{L} M{M} w{w} l{l} r{r}: decode error {err:E3}, block forward {same:E3}");
            Assert.True(err <= bound, $"{dt.Name()} L{L} M{M} w{w} l{l} r{r}: decode error {err:E3} > bound {bound:E3} (block forward in {dt.Name()}: {same:E3})");
            // And it is the block forward's computation, not merely close: far below the spread between positions.
            Assert.True(err < 0.05, $"{dt.Name()}: decode error {err:E3}");
        }
    }

    // A prompt through the block forward fills the caches as its steps would have: prompts ending inside the first chunk,
    // mid-block, at a block end, and past a block boundary into a partial chunk, with the steps after them crossing chunk
    // and block boundaries; M >= L shapes only (the others prefill token by token, which the test above covers).
    [Theory, MemberData(nameof(Shapes))]
    public void A_block_prefill_then_steps_matches_the_block_forward(int L, int M, int w, int l, int r)
    {
        var be = new CpuBackend();
        var stream = Stream(3 * L + 3, L + M + w + 1);
        foreach (var dt in new[] { DType.Float32, DType.BFloat16 })
        {
            using var model = new CausalLm(be, Config(L, M, w, l, r), dt, 6);
            using (var probe = new CausalLmDecoder(model, 1)) Assert.Equal(M >= L && M > 0, probe.PrefillsInBlocks);
            using var exact = CopyOf(model, DType.Float64, be);
            var truth = BlockForward(exact, stream);
            var same = MaxError(BlockForward(model, stream), truth);
            var magnitude = truth.Max(row => row.Max(Math.Abs));
            var bound = 2 * same + Math.Max(1, magnitude) / (1 << 23);
            foreach (var p in new[] { 1, l + 1, L, L + l + 1, 2 * L + 1 }.Distinct())
            {
                var got = PrefillThenDecode(model, stream, p);
                Assert.Equal(stream.Length - p + 1, got.Length);
                var err = MaxError(got, truth[(p - 1)..]);
                TestContext.Current.SendDiagnosticMessage($"{dt.Name()} L{L} M{M} w{w} l{l} r{r} prompt {p}: error {err:E3}, block forward {same:E3}");
                Assert.True(err <= bound && err < 0.05, $"{dt.Name()} L{L} M{M} w{w} l{l} r{r} prompt {p}: error {err:E3} > bound {bound:E3}");
            }
        }
    }

    [Fact]
    public void A_batch_of_sequences_at_different_positions_decodes_each_as_if_alone()
    {
        var be = new CpuBackend();
        var cfg = Config(8, 8, 4, 2, 2);
        using var model = new CausalLm(be, cfg, DType.Float32, 9);
        var streams = new[] { Stream(21, 1), Stream(13, 2), Stream(30, 3) };
        var alone = streams.Select(s => Decode(model, s)).ToArray();
        using var d = new CausalLmDecoder(model, streams.Length);
        // Prompts of different lengths prefilled one sequence at a time, then lockstep steps while each has tokens left.
        var prompts = new[] { 5, 1, 11 };
        var got = streams.Select(_ => new List<double[]>()).ToArray();
        for (var b = 0; b < streams.Length; b++)
            for (var t = 0; t < prompts[b]; t++)
            {
                var tokens = new int[streams.Length];
                var active = new bool[streams.Length];
                (tokens[b], active[b]) = (streams[b][t], true);
                got[b].Add([.. d.Step(tokens, active).AsSpan(b * cfg.Vocab, cfg.Vocab).ToArray().Select(v => (double)v)]);
            }
        Assert.Equal(prompts.Select(p => (long)p), Enumerable.Range(0, streams.Length).Select(d.Position));
        while (Enumerable.Range(0, streams.Length).Any(b => d.Position(b) < streams[b].Length))
        {
            var active = Enumerable.Range(0, streams.Length).Select(b => d.Position(b) < streams[b].Length).ToArray();
            var tokens = Enumerable.Range(0, streams.Length).Select(b => active[b] ? streams[b][d.Position(b)] : 0).ToArray();
            var lp = d.Step(tokens, active);
            for (var b = 0; b < streams.Length; b++)
                if (active[b]) got[b].Add([.. lp.AsSpan(b * cfg.Vocab, cfg.Vocab).ToArray().Select(v => (double)v)]);
                else Assert.True(float.IsNaN(lp[b * cfg.Vocab]), "an inactive sequence's row is NaN");
        }
        for (var b = 0; b < streams.Length; b++)
        {
            Assert.Equal(alone[b].Length, got[b].Count);
            for (var t = 0; t < alone[b].Length; t++) Assert.Equal(alone[b][t], got[b][t]); // the CPU backend computes rows independently: the same bits
        }
        // A reset sequence starts over: its first row is the fresh decoder's.
        d.Reset(1);
        var first = d.Step([0, streams[1][0], 0], [false, true, false]).AsSpan(cfg.Vocab, cfg.Vocab).ToArray().Select(v => (double)v);
        Assert.Equal(alone[1][0], first);
    }

    /// <summary>
    /// A batch large enough that the log-softmax takes its rows in parallel (16 x 256 logits) gives each sequence its batch-1
    /// rows, bit for bit, with an idle sequence's row NaN.
    /// </summary>
    [Fact]
    public void A_large_batch_takes_its_log_softmax_rows_in_parallel_with_the_same_bits()
    {
        var be = new CpuBackend();
        var cfg = Config(8, 8, 4, 2, 1) with { Vocab = 256 };
        using var model = new CausalLm(be, cfg, DType.Float32, 4);
        const int batch = 16, steps = 5;
        var rng = new Random(5);
        var streams = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, steps).Select(_ => rng.Next(256)).ToArray()).ToArray();
        using var d = new CausalLmDecoder(model, batch);
        var got = new float[steps][];
        for (var t = 0; t < steps; t++)
            got[t] = d.Step([.. streams.Select(s => s[t])], [.. Enumerable.Range(0, batch).Select(b => b != 3 || t == 0)]);
        foreach (var b in new[] { 0, 3, 15 })
        {
            using var alone = new CausalLmDecoder(model, 1);
            for (var t = 0; t < steps; t++)
            {
                var row = got[t].AsSpan(b * 256, 256);
                if (b == 3 && t > 0) { Assert.True(float.IsNaN(row[0]), "an idle sequence's row is NaN"); continue; }
                Assert.True(alone.Step([streams[b][t]]).AsSpan().SequenceEqual(row), $"sequence {b}, step {t}: the batched row differs from batch 1");
            }
        }
    }

    /// <summary>The block prefill on the GPU, then steps, against the float64 CPU block forward; nothing it allocates outlives the decoder.</summary>
    [Theory, InlineData(DType.Float32), InlineData(DType.BFloat16)]
    public void A_block_prefill_on_the_gpu_matches_the_block_forward(DType dt)
    {
        var gpu = TestEnv.RequireGpu();
        var cpu = new CpuBackend();
        var cfg = Config(16, 16, 8, 4, 2) with { Dim = 64, Heads = 2 };
        var stream = Stream(3 * 16 + 5, 5);
        using var model = new CausalLm(cpu, cfg, dt, 7);
        using var exact = CopyOf(model, DType.Float64, cpu);
        var truth = BlockForward(exact, stream);
        var same = MaxError(BlockForward(model, stream), truth);
        var bound = 2 * same + (dt == DType.Float32 ? 2e-5 : 2e-3) * Math.Max(1, truth.Max(row => row.Max(Math.Abs)));
        var before = gpu.MemoryStats.LiveBytes;
        using (var onGpu = CopyOf(model, dt, gpu))
            foreach (var p in new[] { 5, 16, 16 + 4 + 3 })
            {
                var err = MaxError(PrefillThenDecode(onGpu, stream, p), truth[(p - 1)..]);
                TestContext.Current.SendDiagnosticMessage($"gpu {dt.Name()} prompt {p}: error {err:E3}, cpu block forward {same:E3}, bound {bound:E3}");
                Assert.True(err <= bound, $"gpu {dt.Name()} prompt {p}: error {err:E3} > bound {bound:E3}");
            }
        Assert.Equal(before, gpu.MemoryStats.LiveBytes);
    }

    /// <summary>The decoder on the GPU (the decode kernels, cuBLAS, the rings) against the float64 CPU block forward.</summary>
    [Theory, InlineData(DType.Float32), InlineData(DType.BFloat16)]
    public void Decoding_on_the_gpu_matches_the_block_forward(DType dt)
    {
        var gpu = TestEnv.RequireGpu();
        var cpu = new CpuBackend();
        var cfg = Config(16, 16, 8, 4, 2) with { Dim = 64, Heads = 2 }; // head dim 32: the GPU causal kernels' smallest
        var stream = Stream(3 * 16 + 5, 4);
        using var model = new CausalLm(cpu, cfg, dt, 6);
        using var exact = CopyOf(model, DType.Float64, cpu);
        var truth = BlockForward(exact, stream);
        var same = MaxError(BlockForward(model, stream), truth);
        var before = gpu.MemoryStats.LiveBytes;
        double err;
        using (var onGpu = CopyOf(model, dt, gpu))
        {
            var decoded = Decode(onGpu, stream);
            Assert.All(decoded, row => Assert.DoesNotContain(row, double.IsNaN));
            err = MaxError(decoded, truth);
        }
        // Floors as in GpuModelTests: float32 GPU sums in other orders; bf16 adds its own rounding.
        var bound = 2 * same + (dt == DType.Float32 ? 2e-5 : 2e-3) * Math.Max(1, truth.Max(row => row.Max(Math.Abs)));
        TestContext.Current.SendDiagnosticMessage($"gpu {dt.Name()}: decode error {err:E3}, cpu block forward {same:E3}, bound {bound:E3}");
        Assert.True(err <= bound, $"gpu {dt.Name()}: decode error {err:E3} > bound {bound:E3} (cpu block forward in {dt.Name()}: {same:E3})");
        Assert.Equal(before, gpu.MemoryStats.LiveBytes);
    }

    /// <summary>
    /// A step replayed from its CUDA graph gives the eager step's bits: a batch of three at different positions (one idle at
    /// times), through chunk and block boundaries and past the memory span, so both recorded variants replay many times.
    /// </summary>
    [Theory, InlineData(DType.Float32), InlineData(DType.BFloat16)]
    public void Graph_replayed_steps_give_the_eager_steps_bits(DType dt)
    {
        var gpu = TestEnv.RequireGpu();
        var cfg = Config(16, 16, 8, 4, 2) with { Dim = 64, Heads = 2 };
        var streams = new[] { Stream(60, 1), Stream(60, 2), Stream(60, 3) };
        var before = gpu.MemoryStats.LiveBytes;
        using (var model = new CausalLm(gpu, cfg, dt, 9))
        using (var eager = new CausalLmDecoder(model, 3, captureGraphs: false))
        using (var graphed = new CausalLmDecoder(model, 3))
        {
            Assert.True(graphed.CapturesGraphs);
            for (var t = 0; t < 60; t++)
            {
                // sequence 1 starts 7 steps late, sequence 2 sits out every fifth step
                bool[] active = [true, t >= 7, t % 5 != 4];
                int[] tokens = [streams[0][t], streams[1][t], streams[2][t]];
                var (a, b) = (eager.Step(tokens, active), graphed.Step(tokens, active));
                Assert.True(a.AsSpan().SequenceEqual(b), $"step {t}: the replayed step differs from the eager one");
            }
            Assert.Equal(0, eager.GraphReplays);
            Assert.True(graphed.GraphReplays >= 50, $"only {graphed.GraphReplays} of 60 steps replayed a graph");
        }
        Assert.Equal(before, gpu.MemoryStats.LiveBytes);
    }

    /// <summary>
    /// A batch prefill whose block forward is replayed from its CUDA graph (from a decoder's second block run on) gives the
    /// eager prefill's bits, and so do the steps after it: four rounds of fresh prompts, two blocks each, after a reset.
    /// </summary>
    [Theory, InlineData(DType.Float32), InlineData(DType.BFloat16)]
    public void Graph_replayed_prefills_give_the_eager_prefills_bits(DType dt)
    {
        var gpu = TestEnv.RequireGpu();
        var cfg = Config(16, 16, 8, 4, 2) with { Dim = 64, Heads = 2 };
        var before = gpu.MemoryStats.LiveBytes;
        using (var model = new CausalLm(gpu, cfg, dt, 10))
        using (var eager = new CausalLmDecoder(model, 2, captureGraphs: false))
        using (var graphed = new CausalLmDecoder(model, 2))
        {
            for (var round = 0; round < 4; round++)
            {
                var streams = new[] { Stream(cfg.Length + 9, 20 + 2 * round), Stream(cfg.Length + 9, 21 + 2 * round) };
                for (var b = 0; b < 2; b++) { eager.Reset(b); graphed.Reset(b); }
                int[][] prompts = [streams[0][..(cfg.Length + 5)], streams[1][..(cfg.Length + 5)]];
                var (a, g) = (eager.PrefillAll(prompts), graphed.PrefillAll(prompts));
                Assert.True(a.AsSpan().SequenceEqual(g), $"round {round}: the replayed prefill differs from the eager one");
                for (var t = cfg.Length + 5; t < streams[0].Length; t++)
                {
                    int[] tokens = [streams[0][t], streams[1][t]];
                    Assert.True(eager.Step(tokens).AsSpan().SequenceEqual(graphed.Step(tokens)), $"round {round}, step {t}: the steps after the prefills differ");
                }
            }
            Assert.Equal(0, eager.PrefillReplays);
            Assert.Equal(4 * 2 - 1, graphed.PrefillReplays); // two block runs a round: a warm-up, then recorded and launched, then replays
        }
        Assert.Equal(before, gpu.MemoryStats.LiveBytes);
    }

    /// <summary>
    /// A step that draws on the device draws what the host rule draws from the same step's log-probabilities (both decoders
    /// are fed the same tokens, so their logits have the same bits): exactly when greedy; otherwise the host rule's token for
    /// a draw within 1e-5 of the same one (a float32 sampler moves each boundary between tokens by ~1e-6 of the mass).
    /// </summary>
    [Theory, InlineData(DType.Float32), InlineData(DType.BFloat16)]
    public void Device_sampling_draws_what_the_host_rule_draws(DType dt)
    {
        var gpu = TestEnv.RequireGpu();
        var cfg = Config(16, 16, 8, 4, 2) with { Dim = 64, Heads = 2 };
        var before = gpu.MemoryStats.LiveBytes;
        using (var model = new CausalLm(gpu, cfg, dt, 4))
        using (var host = new CausalLmDecoder(model, 3))
        using (var device = new CausalLmDecoder(model, 3))
        {
            var rng = new Random(8);
            var tokens = new[] { 1, 2, 3 };
            int exact = 0, draws = 0;
            foreach (var opts in new[] { new SamplingOptions { Temperature = 0 }, new SamplingOptions { Temperature = 1.2f }, new SamplingOptions { Temperature = 0.8f, TopK = 5, TopP = 0.9f } })
                for (var t = 0; t < 25; t++)
                {
                    bool[] active = [true, t % 4 != 3, t >= 5];
                    var u = Enumerable.Range(0, 3).Select(_ => rng.NextDouble()).ToArray();
                    var lp = host.Step(tokens, active);
                    var drawn = device.StepSample(tokens, active, opts, u);
                    for (var b = 0; b < 3; b++)
                    {
                        if (!active[b]) { Assert.Equal(-1, drawn[b]); continue; }
                        var row = lp.AsSpan(b * cfg.Vocab, cfg.Vocab).ToArray().Select(x => (double)x).ToArray();
                        var want = opts.Draw(lp.AsSpan(b * cfg.Vocab, cfg.Vocab), u[b]);
                        if (opts.Temperature == 0) Assert.Equal(want, drawn[b]);
                        else Assert.True(Sampling.Admissible(row, u[b], opts.Temperature, opts.TopK, opts.TopP, drawn[b], 1e-5),
                            $"{dt.Name()} step {t} sequence {b}: drew {drawn[b]}, the host rule {want}");
                        (exact, draws) = (exact + (want == drawn[b] ? 1 : 0), draws + 1);
                        tokens[b] = drawn[b];
                    }
                }
            Assert.True(exact >= draws - 2, $"only {exact} of {draws} draws equal the host rule's");
            Assert.Equal(host.Position(0), device.Position(0));
        }
        Assert.Equal(before, gpu.MemoryStats.LiveBytes);
    }

    [Fact]
    public void Generation_in_a_batch_gives_each_prompt_its_batch_1_bytes_and_honours_the_options()
    {
        var be = new CpuBackend();
        using var model = new CausalLm(be, Config(8, 8, 4, 2, 1), DType.Float32, 3);
        byte[][] prompts = [[1, 2, 3], [], [4, 5, 6, 7, 8, 9, 10, 11, 12, 1]];
        var opts = new SamplingOptions { Temperature = 0.9f, TopK = 5, TopP = 0.9f, MaxBytes = 12 };
        using var batch = new LmGenerator(model, 3);
        var streamed = new List<(int, byte)>();
        var got = batch.Generate(prompts, opts, 40, (b, x) => streamed.Add((b, x)));
        using var one = new LmGenerator(model, 1);
        for (var b = 0; b < 3; b++)
        {
            Assert.Equal(one.Generate([prompts[b]], opts, 40 + b)[0], got[b]);
            Assert.Equal(got[b], streamed.Where(s => s.Item1 == b).Select(s => s.Item2));
            Assert.Equal(12, got[b].Length);
            Assert.All(got[b], x => Assert.InRange(x, 0, 12));
        }
        Assert.Equal(3 + 1 + 10, batch.LastStats!.PrefillTokens);
        Assert.Equal(3 * 11, batch.LastStats.DecodeTokens); // the last byte of each is drawn, not fed

        // Greedy is top-k 1 is the decoder's argmax; a stop sequence ends a sequence with it.
        var greedy = one.Generate([prompts[0]], opts with { Temperature = 0 }, 1)[0];
        Assert.Equal(greedy, one.Generate([prompts[0]], opts with { TopK = 1 }, 2)[0]);
        using var d = new CausalLmDecoder(model, 1);
        var lp = d.Prefill(0, [1, 2, 3]);
        Assert.Equal(Array.IndexOf(lp, lp.Max()), greedy[0]);
        var stopAt = one.Generate([prompts[0]], opts with { Stop = [greedy[2]], Temperature = 0 }, 1)[0];
        Assert.Equal(greedy[..(Array.IndexOf(greedy, greedy[2]) + 1)], stopAt);
    }

    [Fact]
    public void Top_k_and_top_p_cut_the_distribution()
    {
        float[] lp = [.. new[] { 0.5, 0.3, 0.15, 0.05 }.Select(p => (float)Math.Log(p))];
        var rng = new Random(1);
        var k2 = Enumerable.Range(0, 2000).Select(_ => new SamplingOptions { TopK = 2 }.Draw(lp, rng)).ToArray();
        Assert.Equal([0, 1], k2.Distinct().Order());
        Assert.InRange(k2.Count(x => x == 0) / 2000.0, 0.55, 0.70); // 0.5 / 0.8 = 0.625
        var p6 = Enumerable.Range(0, 500).Select(_ => new SamplingOptions { TopP = 0.6f }.Draw(lp, rng)).Distinct().Order();
        Assert.Equal([0, 1], p6); // 0.5 < 0.6 <= 0.8
        Assert.Equal([0], Enumerable.Range(0, 100).Select(_ => new SamplingOptions { TopP = 0.4f }.Draw(lp, rng)).Distinct());
        Assert.Equal(4, Enumerable.Range(0, 4000).Select(_ => new SamplingOptions().Draw(lp, rng)).Distinct().Count());
        Assert.Contains("top-p", Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions { TopP = 0 }.Validate()).Message);
        Assert.Contains("top-k", Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions { TopK = -1 }.Validate()).Message);
    }

    [Fact]
    public void Bad_input_is_named()
    {
        var be = new CpuBackend();
        using var model = new CausalLm(be, Config(8, 8, 4, 2, 1), DType.Float32, 1);
        using var d = new CausalLmDecoder(model, 2);
        Assert.Contains("one per sequence (2)", Assert.Throws<ArgumentException>(() => d.Step([1])).Message);
        Assert.Contains("[0, 13)", Assert.Throws<ArgumentOutOfRangeException>(() => d.Step([1, 13])).Message);
        Assert.Equal(0, d.Position(1)); // a refused step changes nothing
        using var odd = new CausalLm(be, Config(6, 8, 4, 4, 1), DType.Float32, 1);
        Assert.Contains("multiple of the chunk length", Assert.Throws<ArgumentException>(() => new CausalLmDecoder(odd, 1)).Message);
    }
}
