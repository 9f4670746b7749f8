using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Layers;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>
/// The LS layer's memory options (what the batch-1 scale sweep runs): the key path recomputed before its backward
/// (LsAttentionBlock.Build's recomputeKeys) gives the same gradients, bit for bit, in a lower planned peak, and the
/// planned peak is the measured one; an executor that does not keep the loss frees the layer output after the forward.
/// </summary>
[Collection(GpuCollection.Name)]
public class LayerMemoryTests
{
    const int B = 1, N = 40, Dim = 16, Heads = 2, Window = 4, Rank = 3;

    /// <summary>Gradients (parameters and the input x, by name) of the summed layer output, the training plan and the measured peak.</summary>
    static (Dictionary<string, float[]> Grads, MemoryPlan Plan, long Measured) Run(IBackend be, DType dt, bool recomputeKeys, bool keepLoss, bool readLoss = false)
    {
        var cfg = new LsAttentionModuleConfig(Dim, Heads, Window, Rank);
        using var ps = new ParameterSet();
        var rng = new Random(3);
        LsAttentionBlock.AddParameters(ps, be, "", cfg, dt, rng);
        foreach (var t in ps.Tensors.Values)
            t.CopyFrom([.. Enumerable.Range(0, (int)t.Count).Select(_ => (float)dt.Round(0.3 * RandomDraw.Normal(rng)))]);
        using var x = be.Empty(new Shape(B, N, Dim), dt);
        x.CopyFrom([.. Enumerable.Range(0, (int)x.Count).Select(_ => (float)dt.Round(RandomDraw.Normal(rng)))]);
        var grads = ps.CreateGradients(be);
        grads["x"] = be.Empty(x.Shape, dt.Wide());
        be.Fill(grads["x"], 0f);
        try
        {
            using var g = new Graph(be);
            var y = LsAttentionBlock.Build(g, cfg, new ParameterValues(g, ps), g.Parameter("x", x), null, null, recomputeKeys);
            using var run = new Executor(g, new ExecutorOptions { Loss = y, SumLoss = true, KeepLoss = keepLoss, Recompute = recomputeKeys }, grads);
            run.Backward(new Dictionary<Value, Tensor>(), seed: 5);
            be.Synchronize();
            if (readLoss) _ = run[y];
            return (grads.ToDictionary(p => p.Key, p => p.Value.ToArray()), run.TrainingPlan, run.MeasuredPeakBytes);
        }
        finally
        {
            foreach (var t in grads.Values) t.Dispose();
        }
    }

    static void Check(IBackend be, DType dt)
    {
        var start = be.MemoryStats.LiveBytes;
        var kept = Run(be, dt, recomputeKeys: false, keepLoss: true);
        var plain = Run(be, dt, recomputeKeys: false, keepLoss: false);
        var recomputed = Run(be, dt, recomputeKeys: true, keepLoss: false);
        foreach (var r in new[] { kept, plain, recomputed }) Assert.Equal(r.Plan.PeakBytes, r.Measured);
        var yBytes = (long)B * N * Dim * dt.Size();
        Assert.Equal(kept.Plan.PeakBytes - yBytes, plain.Plan.PeakBytes); // the output is not live at the peak (the attention's backward)
        Assert.True(recomputed.Plan.PeakBytes < plain.Plan.PeakBytes, $"{dt.Name()}: recomputed peak {recomputed.Plan.PeakBytes} B, kept {plain.Plan.PeakBytes} B");
        foreach (var (name, g) in plain.Grads)
        {
            Assert.Equal(g, kept.Grads[name]);
            Assert.Equal(g, recomputed.Grads[name]);
        }
        Assert.Contains(plain.Grads["x"], v => v != 0);
        Assert.Contains(plain.Grads["W_k.weight"], v => v != 0);
        Assert.Equal(start, be.MemoryStats.LiveBytes);
    }

    [Theory, InlineData(DType.Float32), InlineData(DType.BFloat16)]
    public void Recomputing_the_key_path_gives_the_same_gradients_in_less_memory_on_cpu(DType dt) => Check(new CpuBackend(), dt);

    [Theory, InlineData(DType.Float32), InlineData(DType.BFloat16)]
    public void Recomputing_the_key_path_gives_the_same_gradients_in_less_memory_on_gpu(DType dt) => Check(TestEnv.RequireGpu(), dt);

    [Fact]
    public void An_unkept_loss_cannot_be_read_and_the_key_path_block_does_not_nest()
    {
        var be = new CpuBackend();
        Assert.Contains("not kept", Assert.Throws<InvalidOperationException>(() => Run(be, DType.Float32, false, keepLoss: false, readLoss: true)).Message);
        var cfg = new LsAttentionModuleConfig(Dim, Heads, Window, Rank);
        using var ps = new ParameterSet();
        LsAttentionBlock.AddParameters(ps, be, "", cfg, DType.Float32, new Random(1));
        using var g = new Graph(be);
        var x = g.Input("x", new Shape(B, N, Dim), DType.Float32);
        g.BeginBlock();
        Assert.Equal("recomputeKeys", Assert.Throws<ArgumentException>(() => LsAttentionBlock.Build(g, cfg, new ParameterValues(g, ps), x, null, null, recomputeKeys: true)).ParamName);
    }
}
