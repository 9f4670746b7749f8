using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Graphs.Nodes;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>
/// Whole-model gradients and the executor's memory plan on the CPU backend: every parameter's gradient by
/// central differences, recomputation and gradient accumulation, planned peak = measured peak.
/// </summary>
public class GraphTests
{
    public static TheoryData<string> Models => ["lra", "lra-mean", "lm"];

    internal static ModelHarness Make(IBackend be, string model, DType dt, int seed, float dropout = 0) => ModelHarness.Create(be, model, dt, seed, dropout);

    /// <summary>
    /// Three elements of every parameter, perturbed by ±h: the CPU backend computes each op in float64 and stores
    /// float32, so the loss carries ~1e-7 relative noise; with h = 1e-2 that is ~1e-5 in a difference quotient, far
    /// below the 1% + 2e-4 allowed, while a wrong gradient path is off by its whole size. Dropout is on (its mask is a
    /// function of the seed, the same in every evaluation).
    /// </summary>
    [Theory, MemberData(nameof(Models))]
    public void Every_parameter_gradient_matches_finite_differences(string model) =>
        CheckGradients(model, DType.Float32, samples: 3, step: 1e-2, relative: 1e-2, absolute: 2e-4);

    /// <summary>
    /// The same check on a float64 model (parameters, activations, statistics and gradients all float64, on the CPU
    /// backend): the loss now carries ~1e-16 relative noise, so with h = 1e-5 the difference quotient is good to
    /// ~1e-10 and a gradient must match to 1e-6 relative, which a wrong term, a missed accumulation or a float32
    /// rounding anywhere in the backward would break. Seven elements of every parameter, dropout on.
    /// </summary>
    [Theory, MemberData(nameof(Models))]
    public void Float64_model_gradients_match_finite_differences_to_1e_6(string model) =>
        CheckGradients(model, DType.Float64, samples: 7, step: 1e-5, relative: 1e-6, absolute: 1e-9);

    /// <summary>|fd − backward| ≤ relative·|fd| + absolute at <paramref name="samples"/> random elements of every parameter of a <paramref name="dt"/> model.</summary>
    static void CheckGradients(string model, DType dt, int samples, double step, double relative, double absolute)
    {
        var be = new CpuBackend();
        using var h = Make(be, model, dt, 3, dropout: 0.1f);
        Assert.All(h.Parameters.Tensors.Values.Concat(h.Grads.Values), t => Assert.True(t.DType == dt || t.DType == dt.Wide(), $"{t} in a {dt.Name()} model"));
        using var run = h.Executor();
        const ulong seed = 17;
        double Loss()
        {
            run.Backward(h.Feeds, seed);
            return run[h.Loss].ToDoubles()[0];
        }
        Loss();
        var analytic = h.Grads.ToDictionary(p => p.Key, p => p.Value.ToDoubles());
        var rng = new Random(4);
        foreach (var (name, t) in h.Parameters.Tensors)
            foreach (var i in Enumerable.Range(0, samples).Select(_ => rng.Next((int)t.Count)))
            {
                var numeric = FiniteDifferences.OfElement(t, i, step, Loss);
                var a = analytic[name][i];
                Assert.True(Math.Abs(numeric - a) <= relative * Math.Abs(numeric) + absolute, $"{model} {name}[{i}]: finite difference {numeric:R}, backward {a:R}");
            }
        Assert.Contains(analytic.Values, g => g.Any(v => v != 0));
    }

    [Theory, MemberData(nameof(Models))]
    public void Recomputation_gives_the_same_gradients_in_less_memory(string model)
    {
        var be = new CpuBackend();
        using var h = Make(be, model, DType.Float32, 5, dropout: 0.2f);
        float[][] Run(bool recompute, out MemoryPlan plan)
        {
            using var run = h.Executor(recompute);
            run.Backward(h.Feeds, seed: 9);
            plan = run.TrainingPlan;
            Assert.Equal(plan.PeakBytes, run.MeasuredPeakBytes);
            return [.. h.Grads.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Value.ToArray())];
        }
        var plain = Run(false, out var full);
        var again = Run(true, out var checkpointed);
        for (var i = 0; i < plain.Length; i++) Assert.Equal(plain[i], again[i]);
        Assert.True(checkpointed.PeakBytes < full.PeakBytes, $"recomputation peak {checkpointed.PeakBytes} B, plain {full.PeakBytes} B");
    }

    [Theory, MemberData(nameof(Models))]
    public void Planned_peak_equals_measured_and_beats_no_reuse(string model)
    {
        var be = new CpuBackend();
        foreach (var dt in new[] { DType.Float32, DType.BFloat16 })
        {
            using var h = Make(be, model, dt, 6);
            using var run = h.Executor(false, h.Logits);
            var before = be.MemoryStats.LiveBytes;
            run.Forward(h.Feeds);
            var inference = run.InferencePlan;
            Assert.Equal(inference.PeakBytes, run.MeasuredPeakBytes);
            Assert.Equal(before + h.Logits.Bytes, be.MemoryStats.LiveBytes); // only the kept logits remain
            run.Backward(h.Feeds, seed: 1);
            var training = run.TrainingPlan;
            Assert.Equal(training.PeakBytes, run.MeasuredPeakBytes);
            Assert.True(training.PeakBytes < training.NoReuseBytes, $"{dt}: planned {training.PeakBytes} B, without reuse {training.NoReuseBytes} B");
            Assert.True(inference.PeakBytes < training.PeakBytes, $"{dt}: inference {inference.PeakBytes} B, training {training.PeakBytes} B");
            run.ReleaseOutputs();
            Assert.Equal(before, be.MemoryStats.LiveBytes);
        }
    }

    [Fact]
    public void Accumulating_two_half_scaled_runs_equals_one_run()
    {
        var be = CpuBackend.Instance;
        using var h = Make(be, "lm", DType.Float32, 7);
        using var run = h.Executor();
        run.Backward(h.Feeds, 3);
        var once = h.Grads.ToDictionary(p => p.Key, p => p.Value.ToArray());
        run.Backward(h.Feeds, 3, lossScale: 0.5f);
        run.Backward(h.Feeds, 3, lossScale: 0.5f, accumulate: true);
        foreach (var (name, g) in h.Grads)
        {
            var twice = g.ToArray();
            for (var i = 0; i < twice.Length; i++)
                Assert.True(Math.Abs(twice[i] - once[name][i]) <= 1e-6f * (1 + Math.Abs(once[name][i])), $"{name}[{i}]: {twice[i]} vs {once[name][i]}");
        }
    }

    /// <summary>Mean pooling as the LRA code does it: Σ mask·x / N, padding zeroed but counted; bf16 x takes the cast path.</summary>
    [Theory, InlineData(DType.Float32), InlineData(DType.BFloat16)]
    public void Masked_mean_divides_by_every_position_like_the_reference(DType dt)
    {
        var be = new CpuBackend();
        const int B = 2, N = 5, D = 3;
        var rng = new Random(12);
        double[] xs = [.. Enumerable.Range(0, B * N * D).Select(_ => dt.Round(RandomDraw.Normal(rng)))];
        double[] ms = [1, 1, 1, 1, 1, 1, 1, 0, 1, 0];
        using (var g = new Graph(be))
        {
            var x = g.Input("x", new Shape(B, N, D), dt);
            var mask = g.Input("mask", new Shape(B, N), DType.Float32);
            var y = g.MaskedMean(x, mask);
            using var xt = be.Empty(x.Shape, dt);
            using var mt = be.Empty(mask.Shape, DType.Float32);
            xt.CopyFrom(xs); mt.CopyFrom(ms);
            using var got = Executor.ForwardOnce(g, y, new Dictionary<Value, Tensor> { [x] = xt, [mask] = mt });
            var values = got.ToDoubles();
            for (var b = 0; b < B; b++)
                for (var k = 0; k < D; k++)
                {
                    var expected = Enumerable.Range(0, N).Sum(t => ms[b * N + t] * xs[(b * N + t) * D + k]) / N;
                    var ulp = dt == DType.Float32 ? 1e-6 : 1.0 / 256; // one rounding of the result
                    Assert.True(Math.Abs(values[b * D + k] - expected) <= ulp * Math.Abs(expected) + 1e-7, $"[{b}, {k}]: {values[b * D + k]} vs {expected}");
                }
            Assert.Contains("float32 [B, N]", Assert.Throws<ArgumentException>(() => g.MaskedMean(x, g.Input("bad", new Shape(B, N + 1), DType.Float32))).Message);
        }
        Assert.Equal(0, be.MemoryStats.LiveBytes);
    }

    [Fact]
    public void Graph_capture_is_ignored_on_the_cpu()
    {
        var be = new CpuBackend();
        using var h = Make(be, "lm", DType.Float32, 9, dropout: 0.1f);
        float[] Grads(bool graph)
        {
            using var run = new Executor(h.Graph, new ExecutorOptions { Loss = h.Loss, CaptureGraph = graph }, h.Grads);
            for (var i = 0; i < 3; i++) run.Backward(h.Feeds, (ulong)i);
            Assert.Equal(0, run.GraphReplays);
            return [.. h.Grads.OrderBy(p => p.Key, StringComparer.Ordinal).SelectMany(p => p.Value.ToArray())];
        }
        Assert.Equal(Grads(false), Grads(true));
    }

    [Fact]
    public void Bad_feeds_and_options_are_named()
    {
        var be = CpuBackend.Instance;
        using var h = Make(be, "lra", DType.Float32, 8);
        using var run = h.Executor();
        var missing = new Dictionary<Value, Tensor>(h.Feeds);
        missing.Remove(missing.Keys.First(v => v.Name == "mask"));
        Assert.Contains("'mask'", Assert.Throws<ArgumentException>(() => run.Backward(missing, 1)).Message);
        using var wrong = be.Empty(new Shape(3), DType.Float32);
        var bad = new Dictionary<Value, Tensor>(h.Feeds) { [h.Feeds.Keys.First(v => v.Name == "labels")] = wrong };
        Assert.Contains("'labels'", Assert.Throws<ArgumentException>(() => run.Backward(bad, 1)).Message);
        Assert.Contains("activation with one element",
            Assert.Throws<ArgumentException>(() => new Executor(h.Graph, new ExecutorOptions { Loss = h.Logits }, h.Grads)).Message);
        using (new Executor(h.Graph, new ExecutorOptions { Loss = h.Logits, SumLoss = true }, h.Grads)) { }
        Assert.Contains("needs a float32 gradient",
            Assert.Throws<ArgumentException>(() => new Executor(h.Graph, new ExecutorOptions { Loss = h.Loss })).Message);
        using var inference = new Executor(h.Graph, new ExecutorOptions());
        Assert.Throws<InvalidOperationException>(() => inference.TrainingPlan);
    }
}
