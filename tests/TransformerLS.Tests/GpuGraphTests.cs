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
