using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>
/// Runs replayed from CUDA graphs (ExecutorOptions.CaptureGraph) against the same runs launched op by op: training
/// with dropout (the seed changes every replay), gradient accumulation (two recorded runs), inference on new values
/// written into the recorded feeds, fixed feeds enforced, nothing leaked.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuGraphTests
{
    public static TheoryData<string, DType> Cases => new()
    {
        { "lra", DType.BFloat16 }, { "lra-mean", DType.Float32 }, { "lm", DType.BFloat16 }, { "lm", DType.Float32 },
    };

    static ModelHarness Make(IBackend be, string model, DType dt) => ModelHarness.Create(be, model, dt, 31, 0.1f, 64);

    static Executor Training(ModelHarness h, bool graph) =>
        new(h.Graph, new ExecutorOptions { Loss = h.Loss, Keep = [h.Logits], CaptureGraph = graph }, h.Grads);

    /// <summary>Loss and gradients after each of six micro-steps: seeds 3..8, accumulating on every second one with scale 1/2.</summary>
    static List<(float Loss, Dictionary<string, float[]> Grads)> Steps(ModelHarness h, Executor run)
    {
        var results = new List<(float, Dictionary<string, float[]>)>();
        for (var i = 0; i < 6; i++)
        {
            run.Backward(h.Feeds, seed: (ulong)(3 + i), lossScale: 0.5f, accumulate: i % 2 == 1);
            results.Add((run[h.Loss].ToArray()[0], h.Grads.ToDictionary(p => p.Key, p => p.Value.ToArray())));
        }
        return results;
    }

    /// <summary>
    /// Atomic accumulations make two launches of the same step differ in the last bits, so "equal" is within 1e-3 of
    /// each gradient's scale; a replay that reused a stale dropout mask or dropped a zeroing would be off by O(1).
    /// </summary>
    [Theory, MemberData(nameof(Cases))]
    public void Replayed_training_steps_equal_launched_ones(string model, DType dt)
    {
        var gpu = TestEnv.RequireGpu();
        var start = gpu.MemoryStats.LiveBytes;
        using (var h = Make(gpu, model, dt))
        {
            List<(float Loss, Dictionary<string, float[]> Grads)> eager, replayed;
            using (var run = Training(h, false)) eager = Steps(h, run);
            using (var run = Training(h, true))
            {
                replayed = Steps(h, run);
                Assert.Equal(2, run.GraphsCaptured);    // accumulate = false and true
                Assert.Equal(4, run.GraphReplays);      // each key: warm-up, record + replay, replay
                Assert.Equal(run.TrainingPlan.PeakBytes, run.MeasuredPeakBytes);
            }
            Assert.NotEqual(eager[0].Loss, eager[2].Loss); // dropout is on: seeds 3 and 5 give other losses
            for (var i = 0; i < eager.Count; i++)
            {
                Assert.True(Math.Abs(replayed[i].Loss - eager[i].Loss) <= 1e-3 * Math.Abs(eager[i].Loss), $"step {i}: loss {replayed[i].Loss} vs {eager[i].Loss}");
                foreach (var (name, e) in eager[i].Grads)
                {
                    var scale = e.Max(Math.Abs);
                    var err = replayed[i].Grads[name].Zip(e, (a, b) => Math.Abs(a - b)).Max();
                    Assert.True(err <= 1e-3 * scale + 1e-7, $"{model} {dt.Name()} step {i} d{name}: replay differs by {err:E3} (max |grad| {scale:E3})");
                }
            }
        }
        gpu.Synchronize();
        Assert.Equal(start, gpu.MemoryStats.LiveBytes);
    }

    /// <summary>
    /// A training step recorded as one CUDA graph with the optimizer's update inside (Executor.Backward's then, the
    /// learning rate and step number written to device memory before each launch) moves the parameters as the same steps
    /// launched op by op with the update after them: within twice the spread of two eager runs (the backward's atomic sums
    /// differ in the last bits) plus 2% of one step's size (an update whose gradient's sign is noise).
    /// </summary>
    [Theory]
    [InlineData("lm", DType.Float32)]
    [InlineData("lra-mean", DType.Float32)]
    public void A_whole_step_replayed_with_the_update_inside_moves_parameters_as_eager_steps(string model, DType dt)
    {
        var gpu = TestEnv.RequireGpu();
        var start = gpu.MemoryStats.LiveBytes;
        const float lr0 = 1e-3f;
        Dictionary<string, float[]> Train(bool graph, int steps)
        {
            using var h = Make(gpu, model, dt);
            using var run = Training(h, graph);
            using var opt = new Training.AdamOptimizer(gpu, h.Parameters.Tensors) { ClipNorm = 1f };
            Action update = () => opt.EnqueueUpdate(h.Grads);
            for (var i = 0; i < steps; i++)
            {
                var lr = lr0 * (i + 1); // a new learning rate every step: a replay that kept the recorded one would show
                if (graph)
                {
                    opt.BeginStep(lr);
                    run.Backward(h.Feeds, seed: (ulong)(3 + i), then: update);
                }
                else
                {
                    run.Backward(h.Feeds, seed: (ulong)(3 + i));
                    opt.Step(h.Grads, lr);
                }
            }
            if (graph) Assert.Equal(steps - 1, run.GraphReplays); // a warm-up, then recorded and launched, then replays
            return h.Parameters.Tensors.ToDictionary(p => p.Key, p => p.Value.ToArray());
        }
        var init = Train(false, 0);
        var (a, b, c) = (Train(false, 4), Train(false, 4), Train(true, 4));
        var moved = a.Max(p => p.Value.Zip(init[p.Key], (x, y) => Math.Abs(x - y)).Max());
        Assert.True(moved > lr0, $"the parameters moved by at most {moved:E3} in four steps");
        foreach (var (name, e) in a)
        {
            var spread = e.Zip(b[name], (x, y) => Math.Abs(x - y)).Max();
            var err = e.Zip(c[name], (x, y) => Math.Abs(x - y)).Max();
            Assert.True(err <= 2 * spread + 0.02 * lr0, $"{model} {name}: the replayed steps differ by {err:E3} (two eager runs by {spread:E3})");
        }
        gpu.Synchronize();
        Assert.Equal(start, gpu.MemoryStats.LiveBytes);
    }

    /// <summary>
    /// The trainer with CUDA graphs replays each step (forward, backward, update) as one graph: its per-step losses and
    /// final weights follow an eager run's, within twice the spread of two eager runs plus 2% of the peak learning rate.
    /// </summary>
    [Fact]
    public void A_trainer_replaying_whole_steps_follows_the_eager_run()
    {
        var gpu = TestEnv.RequireGpu();
        var path = Path.Combine(Path.GetTempPath(), $"tls-graph-{Guid.NewGuid():N}.txt");
        File.WriteAllText(path, string.Concat(Enumerable.Repeat("abcdefg", 800)));
        try
        {
            var cfg = new Training.TrainConfig
            {
                Task = "lm", Data = path, Steps = 8, Batch = 4, Lr = 1e-2f, Warmup = 2, LogEvery = 1, EvalBatches = 1, Seed = 3, DType = "float32",
                Lm = new Models.CausalLmConfig { Vocab = 256, Dim = 32, Heads = 2, Hidden = 64, Layers = 2, Window = 8, ChunkLength = 4, Rank = 1, Dropout = 0.1f, Length = 16, Memory = 16 },
            };
            (IReadOnlyList<(int Step, float Loss)> Losses, Dictionary<string, float[]> Weights) Train(bool graph)
            {
                using var t = new Training.Trainer(gpu, cfg with { CudaGraph = graph });
                var r = t.Run(cancel: TestContext.Current.CancellationToken);
                return (r.Losses, t.Task.Parameters.Tensors.ToDictionary(p => p.Key, p => p.Value.ToArray()));
            }
            var (a, b, c) = (Train(false), Train(false), Train(true));
            Assert.Equal(a.Losses.Count, c.Losses.Count);
            for (var i = 0; i < a.Losses.Count; i++)
                Assert.True(Math.Abs(a.Losses[i].Loss - c.Losses[i].Loss) <= 2 * Math.Abs(a.Losses[i].Loss - b.Losses[i].Loss) + 1e-4 * Math.Abs(a.Losses[i].Loss),
                    $"step {a.Losses[i].Step}: loss {c.Losses[i].Loss} replayed vs {a.Losses[i].Loss} eager ({b.Losses[i].Loss} again)");
            foreach (var (name, e) in a.Weights)
            {
                var spread = e.Zip(b.Weights[name], (x, y) => Math.Abs(x - y)).Max();
                var err = e.Zip(c.Weights[name], (x, y) => Math.Abs(x - y)).Max();
                Assert.True(err <= 2 * spread + 0.02 * cfg.Lr, $"{name}: the replayed run's weights differ by {err:E3} (two eager runs by {spread:E3})");
            }
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Inference_replays_read_new_values_written_into_the_recorded_feeds()
    {
        var gpu = TestEnv.RequireGpu();
        using var h = Make(gpu, "lra", DType.BFloat16);
        var tokens = h.Feeds.Keys.First(v => v.Name == "tokens");
        var original = h.Feeds[tokens].ToArray();
        float[][] batches = [original, [.. original.Select(t => (t * 7 + 3) % 20)], [.. original.Select(t => (t + 11) % 20)]];
        float[][] Logits(bool graph)
        {
            using var run = new Executor(h.Graph, new ExecutorOptions { Keep = [h.Logits], CaptureGraph = graph });
            var all = new List<float[]>();
            foreach (var b in batches.Concat(batches))
            {
                h.Feeds[tokens].CopyFrom(b);
                run.Forward(h.Feeds);
                all.Add(run[h.Logits].ToArray());
            }
            if (graph) Assert.Equal(5, run.GraphReplays); // six runs: a warm-up, then one recorded and replayed, then four replays
            return [.. all];
        }
        var eager = Logits(false);
        var replayed = Logits(true);
        Assert.NotEqual(eager[0], eager[1]);
        for (var i = 0; i < eager.Length; i++)
            Assert.Equal(eager[i], replayed[i]); // the forward has no atomics: bit-identical
        h.Feeds[tokens].CopyFrom(original);
    }

    [Fact]
    public void A_replay_fed_another_tensor_is_refused_by_name()
    {
        var gpu = TestEnv.RequireGpu();
        using var h = Make(gpu, "lra", DType.Float32);
        using var run = Training(h, true);
        run.Backward(h.Feeds, 1);
        run.Backward(h.Feeds, 2); // recorded
        var labels = h.Feeds.Keys.First(v => v.Name == "labels");
        using var other = gpu.Empty(labels.Shape, labels.DType);
        gpu.Fill(other, 0f);
        var feeds = new Dictionary<Value, Tensor>(h.Feeds) { [labels] = other };
        var e = Assert.Throws<ArgumentException>(() => run.Backward(feeds, 3));
        Assert.Contains("input 'labels' was fed another tensor", e.Message);
        run.Backward(h.Feeds, 4); // the recorded feeds still replay
        Assert.Equal(2, run.GraphReplays);
    }
}
