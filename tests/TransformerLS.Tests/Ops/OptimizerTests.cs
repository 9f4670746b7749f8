using TransformerLS.Backends;
using TransformerLS.Checkpoints;
using TransformerLS.Ops;
using TransformerLS.Tensors;
using TransformerLS.Training;

namespace TransformerLS.Tests;

public class OptimizerTests
{
    static IBackend Backend(string device) => device == "cpu" ? CpuBackend.Instance : TestEnv.RequireGpu();

    static Tensor Tensor(IBackend be, DType dt, params float[] values)
    {
        var t = be.Empty(new Shape(values.Length), dt);
        t.CopyFrom(values);
        return t;
    }

    /// <summary>Minimizes ½‖w − target‖² (gradient w − target): the loss must fall below a stated bound.</summary>
    [Theory]
    [InlineData("cpu", DType.Float32)]
    [InlineData("cpu", DType.BFloat16)]
    [InlineData("cuda", DType.Float32)]
    [InlineData("cuda", DType.BFloat16)]
    public void AdamW_drives_a_quadratic_to_its_minimum(string device, DType dt)
    {
        var be = Backend(device);
        using var scope = new TensorScope();
        var rng = new Random(5);
        var target = Enumerable.Range(0, 50).Select(_ => (float)rng.NextDouble() * 4 - 2).ToArray();
        var w = Tensor(be, dt, new float[50]);
        var t = Tensor(be, dt, target);
        var g = be.Empty(w.Shape, dt);
        using var opt = new AdamOptimizer(be, new Dictionary<string, Tensor> { ["w"] = w }) { WeightDecay = 0, ClipNorm = 10f };
        var schedule = new LrSchedule(0.1f, 10, 300, LrDecay.Cosine, 0.01f);
        double Loss() => 0.5 * w.ToArray().Zip(target, (a, b) => (double)(a - b) * (a - b)).Sum();
        var before = Loss();
        for (var step = 1; step <= 300; step++)
        {
            Elementwise.Axpby(be, w, 1, t, -1, g);
            opt.Step(new Dictionary<string, Tensor> { ["w"] = g }, schedule.At(step));
        }
        var bound = dt == DType.Float32 ? 1e-4 : 1e-3; // bf16 weights can only land on the bf16 grid
        Assert.True(Loss() < bound, $"loss {before:G3} -> {Loss():G3}, expected < {bound}");
    }

    /// <summary>Three steps by hand in float64 from torch's documented update rule, with clipping and decay.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Steps_follow_the_torch_update_rule(bool decoupled)
    {
        var be = CpuBackend.Instance;
        using var scope = new TensorScope();
        var w = Tensor(be, DType.Float32, 1f, -2f);
        var g = Tensor(be, DType.Float32, 3f, 4f); // norm 5, clipped to 1: factor 1 / (5 + 1e-6)
        using var opt = new AdamOptimizer(be, new Dictionary<string, Tensor> { ["w"] = w }) { WeightDecay = 0.1f, ClipNorm = 1f, Decoupled = decoupled };
        double[] ew = [1, -2], em = [0, 0], ev = [0, 0];
        double b1 = 0.9, b2 = 0.999, lr = 0.05, wd = 0.1, clip = 1 / (5 + 1e-6);
        for (var t = 1; t <= 3; t++)
        {
            opt.Step(new Dictionary<string, Tensor> { ["w"] = g }, (float)lr);
            for (var i = 0; i < 2; i++)
            {
                var gi = clip * (i == 0 ? 3 : 4);
                if (decoupled) ew[i] -= lr * wd * ew[i]; else gi += wd * ew[i];
                em[i] = b1 * em[i] + (1 - b1) * gi;
                ev[i] = b2 * ev[i] + (1 - b2) * gi * gi;
                ew[i] -= lr * (em[i] / (1 - Math.Pow(b1, t))) / (Math.Sqrt(ev[i] / (1 - Math.Pow(b2, t))) + 1e-8);
            }
            var got = w.ToArray();
            for (var i = 0; i < 2; i++) Assert.Equal(ew[i], got[i], 5e-7);
        }
    }

    [Fact]
    public void Gpu_steps_match_the_cpu_with_bf16_weights_and_a_master_copy()
    {
        var gpu = TestEnv.RequireGpu();
        var rng = new Random(9);
        var init = Enumerable.Range(0, 1000).Select(_ => (float)ConformanceNormal(rng)).ToArray();
        var grads = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 1000).Select(_ => (float)ConformanceNormal(rng)).ToArray()).ToArray();
        float[] Run(IBackend be)
        {
            using var scope = new TensorScope();
            var w = Tensor(be, DType.BFloat16, init);
            using var opt = new AdamOptimizer(be, new Dictionary<string, Tensor> { ["w"] = w }) { ClipNorm = 2f };
            foreach (var gv in grads) opt.Step(new Dictionary<string, Tensor> { ["w"] = Tensor(be, DType.BFloat16, gv) }, 1e-2f);
            return [.. opt.State()["w.master"].ToArray(), .. w.ToArray()];
        }
        var cpu = Run(CpuBackend.Instance);
        var gpuResult = Run(gpu);
        for (var i = 0; i < 1000; i++) Assert.Equal(cpu[i], gpuResult[i], 1e-5);            // masters: fp32 arithmetic order only
        for (var i = 1000; i < 2000; i++) Assert.Equal(BFloat16.Round(cpu[i - 1000]), gpuResult[i], 0.01f * Math.Abs(gpuResult[i]) + 1e-6f);
    }

    static double ConformanceNormal(Random rng) => RandomDraw.Normal(rng);

    [Fact]
    public void State_round_trips_through_a_checkpoint()
    {
        var be = CpuBackend.Instance;
        using var scope = new TensorScope();
        var w = Tensor(be, DType.BFloat16, 1f, 2f, 3f);
        using var opt = new AdamOptimizer(be, new Dictionary<string, Tensor> { ["w"] = w });
        opt.Step(new Dictionary<string, Tensor> { ["w"] = Tensor(be, DType.BFloat16, 0.5f, -1f, 2f) }, 0.1f);
        var path = Path.GetTempFileName();
        try
        {
            SafeTensors.Save(path, opt.State(), new Dictionary<string, string> { ["optimizer.steps"] = $"{opt.Steps}" });
            var w2 = Tensor(be, DType.BFloat16, 0f, 0f, 0f);
            using var opt2 = new AdamOptimizer(be, new Dictionary<string, Tensor> { ["w"] = w2 });
            var file = SafeTensors.Open(path);
            file.LoadInto(opt2.State());
            opt2.Resume(int.Parse(file.Metadata["optimizer.steps"]));
            Assert.Equal(["w.exp_avg", "w.exp_avg_sq", "w.master"], opt2.State().Keys.Order());
            foreach (var (k, t) in opt.State()) Assert.Equal(t.ToArray(), opt2.State()[k].ToArray());
            Assert.Equal(1, opt2.Steps);
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda")]
    public void A_step_with_a_non_finite_gradient_norm_changes_nothing_and_is_recorded(string device)
    {
        var be = Backend(device);
        using var scope = new TensorScope();
        var (w, m, v) = (Tensor(be, DType.Float32, 1f, -2f), Tensor(be, DType.Float32, 0.5f, 0.25f), Tensor(be, DType.Float32, 0.1f, 0.2f));
        var g = Tensor(be, DType.Float32, 3f, float.NaN);
        var (sumsq, bad) = (be.Empty(new Shape(1), DType.Float32), be.Empty(new Shape(1), DType.Float32));
        be.Fill(sumsq, 0); be.Fill(bad, 0);
        Optimizer.SumOfSquares(be, g, sumsq);
        Optimizer.AdamStep(be, new AdamHyper(0.1f, 7, MaxNorm: float.PositiveInfinity), w, g, m, v, sumsq, null, bad);
        Assert.Equal([1f, -2f], w.ToArray());
        Assert.Equal([0.5f, 0.25f], m.ToArray());
        Assert.Equal([0.1f, 0.2f], v.ToArray());
        Assert.Equal(7f, bad.ToArray()[0]);
        Optimizer.AdamStep(be, new AdamHyper(0.1f, 8), w, g, m, v, sumsq, null, bad);
        Assert.Equal(7f, bad.ToArray()[0]); // the first bad step is kept
        // A finite norm steps as before, and +∞ as the clip norm means no clipping.
        var g2 = Tensor(be, DType.Float32, 3f, 4f);
        be.Fill(sumsq, 0);
        Optimizer.SumOfSquares(be, g2, sumsq);
        Optimizer.AdamStep(be, new AdamHyper(0.1f, 1, MaxNorm: float.PositiveInfinity), w, g2, m, v, sumsq, null, bad);
        Assert.All(w.ToArray(), x => Assert.True(float.IsFinite(x)));
        Assert.NotEqual(1f, w.ToArray()[0]);
    }

    [Fact]
    public void Schedules_warm_up_then_decay()
    {
        var cos = new LrSchedule(1f, 10, 110, LrDecay.Cosine, 0.1f);
        Assert.Equal(0.1f, cos.At(1), 6);
        Assert.Equal(1f, cos.At(10), 6);
        Assert.Equal(1f, cos.At(11), 6);       // the first step after the warm-up runs at the peak
        Assert.Equal(0.55f, cos.At(61), 5);   // halfway: (1 + 0.1) / 2
        Assert.Equal(0.1002220f, cos.At(110), 6); // the last step: one decay step short of the floor, 0.1 + 0.45·(1 + cos 0.99π)
        Assert.Equal(0.1f, cos.At(111), 6);
        Assert.Equal(0.1f, cos.At(500), 6);
        var lin = new LrSchedule(2f, 0, 100, LrDecay.Linear);
        Assert.Equal(2f, lin.At(1), 6);
        Assert.Equal(1f, lin.At(51), 6);
        Assert.Equal(0.02f, lin.At(100), 6);
        // A run of one step trains: its only step runs at the peak (it used to run at the floor, 0).
        Assert.Equal(3e-4f, new LrSchedule(3e-4f, 0, 1, LrDecay.Cosine).At(1));
        Assert.Equal(3e-4f, new LrSchedule(3e-4f, 0, 1, LrDecay.Linear).At(1));
        Assert.Equal(2f, new LrSchedule(2f, 5, 100, LrDecay.Constant).At(77));
        Assert.Throws<ArgumentOutOfRangeException>(() => cos.At(0));
        Assert.Contains("Total", Assert.Throws<ArgumentOutOfRangeException>(() => new LrSchedule(1f, 10, 5).Validate()).Message);
    }

    [Fact]
    public void Bad_hyperparameters_and_shapes_are_named()
    {
        var be = CpuBackend.Instance;
        using var scope = new TensorScope();
        var w = Tensor(be, DType.Float32, 1f, 2f);
        var m = Tensor(be, DType.Float32, 0f, 0f);
        var v = Tensor(be, DType.Float32, 0f, 0f);
        Assert.Contains("Beta2", Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.AdamStep(be, new AdamHyper(0.1f, 1, Beta2: 1f), w, w, m, v)).Message);
        Assert.Contains("Step", Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.AdamStep(be, new AdamHyper(0.1f, 0), w, w, m, v)).Message);
        Assert.Contains("grad", Assert.Throws<ArgumentException>(() => Optimizer.AdamStep(be, new AdamHyper(0.1f, 1), w, Tensor(be, DType.Float32, 1f), m, v)).Message);
        Assert.Contains("param", Assert.Throws<ArgumentException>(() => Optimizer.AdamStep(be, new AdamHyper(0.1f, 1), Tensor(be, DType.BFloat16, 1f, 2f), w, m, v)).Message);
        using var opt = new AdamOptimizer(be, new Dictionary<string, Tensor> { ["w"] = w });
        Assert.Contains("'w'", Assert.Throws<ArgumentException>(() => opt.Step(new Dictionary<string, Tensor>(), 0.1f)).Message);
    }
}
