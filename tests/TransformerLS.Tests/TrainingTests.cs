using TransformerLS.Backends;
using TransformerLS.Checkpoints;
using TransformerLS.Models;
using TransformerLS.Training;

namespace TransformerLS.Tests;

/// <summary>The trainer end to end on the CPU backend: a learnable toy task, checkpoints with resume, config errors.</summary>
public class TrainingTests
{
    /// <summary>A periodic byte string (period 7): a one-layer LM must predict it almost surely once it has seen it.</summary>
    static TrainConfig Toy(string path) => new()
    {
        Task = "lm", Data = path, Steps = 80, Batch = 4, Lr = 1e-2f, Warmup = 5, LogEvery = 10, EvalBatches = 2, Seed = 3,
        Lm = new CausalLmConfig { Vocab = 256, Dim = 32, Heads = 1, Hidden = 32, Layers = 1, Window = 8, ChunkLength = 4, Rank = 1, Dropout = 0, Length = 16, Memory = 16 },
    };

    static string Corpus()
    {
        var path = Path.Combine(Path.GetTempPath(), $"tls-toy-{Guid.NewGuid():N}.txt");
        File.WriteAllText(path, string.Concat(Enumerable.Repeat("abcdefg", 800)));
        return path;
    }

    [Fact]
    public void A_periodic_text_is_learned_below_half_a_bit_per_byte()
    {
        var path = Corpus();
        try
        {
            using var trainer = new Trainer(new CpuBackend(), Toy(path));
            var r = trainer.Run(cancel: TestContext.Current.CancellationToken);
            Assert.Equal("bits/byte", r.Metric);
            Assert.True(r.Before > 4, $"untrained: {r.Before} bits/byte");
            Assert.True(r.After < 0.5, $"after {trainer.Step} steps: {r.After} bits/byte (losses: {string.Join(", ", r.Losses.Select(l => l.Loss))})");
            Assert.Equal(r.PlannedPeakBytes, r.MeasuredPeakBytes);
        }
        finally { File.Delete(path); }
    }

    /// <summary>
    /// N straight steps and k steps + a checkpoint + a fresh trainer resumed to N end in the same bits: the data
    /// position (ListOps' example stream, the LM's block), the LM's carried memories, the dropout seeds, the schedule
    /// and the optimizer state all continue.
    /// </summary>
    [Theory]
    [InlineData("listops")]
    [InlineData("lm")]
    public void Resume_continues_exactly(string task)
    {
        var path = Corpus();
        var ckpt = Path.ChangeExtension(path, ".safetensors");
        try
        {
            var cfg = task == "lm"
                ? Toy(path) with { Steps = 9, LogEvery = 1, Lm = Toy(path).Lm with { Dropout = 0.1f } }
                : new TrainConfig { Steps = 9, Batch = 4, LogEvery = 1, EvalBatches = 1, Warmup = 2 };
            using var straight = new Trainer(new CpuBackend(), cfg);
            var all = straight.Run(cancel: TestContext.Current.CancellationToken);
            using (var first = new Trainer(new CpuBackend(), cfg))
            {
                // The same 9-step run, interrupted after step 4 (as Ctrl+C would), then saved.
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
                first.Run(p => { if (p.Step == 4) stop.Cancel(); }, stop.Token);
                Assert.Equal(4, first.Step);
                first.Save(ckpt);
            }
            using var resumed = new Trainer(new CpuBackend(), cfg);
            resumed.Resume(ckpt);
            Assert.Equal(4, resumed.Step);
            var rest = resumed.Run(cancel: TestContext.Current.CancellationToken);
            Assert.Equal(9, resumed.Step);
            Assert.Equal(all.Losses[^1], rest.Losses[^1]);
            foreach (var (name, t) in straight.Task.Parameters.Tensors)
                Assert.True(t.ToArray().AsSpan().SequenceEqual(resumed.Task.Parameters[name].ToArray()), $"{task}: {name} differs after resume");
        }
        finally { File.Delete(path); File.Delete(ckpt); }
    }

    [Fact]
    public void A_checkpoint_resumes_bit_exactly_and_a_wrong_one_is_named()
    {
        var path = Corpus();
        var ckpt = Path.ChangeExtension(path, ".safetensors");
        try
        {
            var cfg = Toy(path) with { Steps = 6 };
            using var a = new Trainer(CpuBackend.Instance, cfg);
            a.Run(cancel: TestContext.Current.CancellationToken);
            a.Save(ckpt);
            Assert.Equal(cfg, Trainer.ConfigOf(ckpt) with { Lm = cfg.Lm, ListOps = cfg.ListOps, Lra = cfg.Lra });
            using var b = new Trainer(CpuBackend.Instance, cfg with { Seed = 99 });
            b.Resume(ckpt);
            Assert.Equal(6, b.Step);
            foreach (var (name, t) in a.Task.Parameters.Tensors) Assert.Equal(t.ToArray(), b.Task.Parameters[name].ToArray());
            using var other = new Trainer(CpuBackend.Instance, cfg with { Lm = cfg.Lm with { Hidden = 48 } });
            Assert.Throws<CheckpointException>(() => other.Resume(ckpt));
        }
        finally { File.Delete(path); File.Delete(ckpt); }
    }

    [Fact]
    public void Bad_configs_name_the_field()
    {
        Assert.Contains("task 'x'", Assert.Throws<ArgumentException>(() => new TrainConfig { Task = "x" }.Validate()).Message);
        Assert.Contains("dtype 'f16'", Assert.Throws<ArgumentException>(() => new TrainConfig { DType = "f16" }.Validate()).Message);
        Assert.Equal("Batch", Assert.Throws<ArgumentOutOfRangeException>(() => new TrainConfig { Batch = 0 }.Validate()).ParamName);
        Assert.Contains("data", Assert.Throws<ArgumentException>(() => new Trainer(CpuBackend.Instance, new TrainConfig { Task = "lm" })).Message);
        var json = Path.GetTempFileName();
        try
        {
            File.WriteAllText(json, "{ \"steps\": 5, \"stepz\": 3 }");
            Assert.Contains("stepz", Assert.Throws<ArgumentException>(() => TrainConfig.Load(json)).Message);
            File.WriteAllText(json, "{ \"steps\": 5, \"lm\": { \"dim\": 48 } }");
            var cfg = TrainConfig.Load(json);
            Assert.Equal((5, 48, 256), (cfg.Steps, cfg.Lm.Dim, cfg.Lm.Vocab));
        }
        finally { File.Delete(json); }
    }

    [Fact]
    public void A_diverging_run_is_caught_on_the_device_at_its_first_bad_step_and_keeps_finite_weights()
    {
        var cfg = new TrainConfig { Steps = 6, Batch = 4, LogEvery = 3, EvalBatches = 1, Warmup = 0, Lr = 1e30f };
        using var trainer = new Trainer(new CpuBackend(), cfg);
        var e = Assert.Throws<NonFiniteLossException>(() => trainer.Run(cancel: TestContext.Current.CancellationToken));
        var m = System.Text.RegularExpressions.Regex.Match(e.Message, @"gradient norm is not finite at step (\d+)");
        Assert.True(m.Success, e.Message);
        Assert.InRange(int.Parse(m.Groups[1].Value), 1, 3); // found at the first logged step, naming the step it happened
        foreach (var (name, t) in trainer.Task.Parameters.Tensors)
            Assert.True(t.ToArray().All(float.IsFinite), $"{name} holds a non-finite value after the skipped steps");
        var path = Path.Combine(Path.GetTempPath(), $"tls-{Guid.NewGuid():N}.safetensors");
        Assert.Throws<NonFiniteLossException>(() => trainer.Save(path));
        Assert.False(File.Exists(path));
    }
}
