using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>
/// Whole models on the GPU against the CPU backend: the loss and every parameter gradient by the FlashAttention
/// rule (the reference is the CPU float32 model holding the same values; the same-precision error is the CPU
/// model's in the test's dtype), with dropout on (the masks are the same on both backends). Then the memory plan:
/// planned peak = the CUDA allocator's measured peak, with and without recomputation.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuModelTests
{
    public static TheoryData<string, DType> Cases => new()
    {
        { "lra", DType.Float32 }, { "lra", DType.BFloat16 }, { "lra-mean", DType.Float32 }, { "lra-mean", DType.BFloat16 },
        { "lm", DType.Float32 }, { "lm", DType.BFloat16 },
    };

    static ModelHarness Make(IBackend be, string model, DType dt, DType values) => ModelHarness.Create(be, model, dt, 21, 0.1f, 64, values);

    static (float Loss, Dictionary<string, float[]> Grads) Run(ModelHarness h, bool recompute = false)
    {
        using var run = h.Executor(recompute);
        run.Backward(h.Feeds, seed: 77);
        return (run[h.Loss].ToArray()[0], h.Grads.ToDictionary(p => p.Key, p => p.Value.ToArray()));
    }

    static double MaxError(float[] a, float[] reference) => a.Zip(reference, (x, r) => Math.Abs((double)x - r)).DefaultIfEmpty().Max();

    [Theory, MemberData(nameof(Cases))]
    public void Loss_and_every_parameter_gradient_match_the_cpu(string model, DType dt)
    {
        var gpu = TestEnv.RequireGpu();
        var cpu = CpuBackend.Instance;
        using var reference = Make(cpu, model, DType.Float32, dt);
        var (refLoss, refGrads) = Run(reference);
        var (sameLoss, sameGrads) = dt == DType.Float32 ? (refLoss, refGrads) : Run(Make(cpu, model, dt, dt));
        using var g = Make(gpu, model, dt, dt);
        var (loss, grads) = Run(g);
        // Floors: float32 GPU sums in other orders (a few ulps per op through the model); bf16 adds its own rounding.
        var floor = dt == DType.Float32 ? 2e-5 : 2e-3;
        Assert.True(Math.Abs(loss - refLoss) <= 2 * Math.Abs(sameLoss - refLoss) + floor * Math.Max(1, Math.Abs(refLoss)),
            $"{model} {dt.Name()} loss: gpu {loss}, cpu float32 {refLoss}, cpu {dt.Name()} {sameLoss}");
        foreach (var (name, r) in refGrads)
        {
            // A bias's gradient is Σ dY over tokens, its weight's Σ dY·x over the same tokens with x of order 1 (normed):
            // where the Σ dY cancel (a bias ahead of a softmax over positions has an exact gradient of 0) the bias
            // carries the rounding noise of its weight's sum, so its floor is scaled by the larger of the two.
            var scale = r.Max(Math.Abs);
            if (name.EndsWith(".bias", StringComparison.Ordinal) && refGrads.TryGetValue(name[..^".bias".Length] + ".weight", out var w))
                scale = Math.Max(scale, w.Max(Math.Abs));
            var bound = 2 * MaxError(sameGrads[name], r) + floor * scale + 1e-7;
            var err = MaxError(grads[name], r);
            Assert.True(err <= bound, $"{model} {dt.Name()} d{name}: max error {err:E3} > bound {bound:E3} (max |grad| {scale:E3})");
            Assert.DoesNotContain(grads[name], float.IsNaN);
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void Planned_peak_equals_the_allocators_peak(string model, DType dt)
    {
        var gpu = TestEnv.RequireGpu();
        using var h = Make(gpu, model, dt, dt);
        foreach (var recompute in new[] { false, true })
        {
            using var run = h.Executor(recompute, h.Logits);
            run.Forward(h.Feeds);
            gpu.Synchronize();
            Assert.Equal(run.InferencePlan.PeakBytes, run.MeasuredPeakBytes);
            run.Backward(h.Feeds, seed: 5);
            gpu.Synchronize();
            Assert.Equal(run.TrainingPlan.PeakBytes, run.MeasuredPeakBytes);
            Assert.True(run.TrainingPlan.PeakBytes < run.TrainingPlan.NoReuseBytes);
        }
    }

    [Fact]
    public void Recomputation_on_the_gpu_gives_the_same_gradients()
    {
        var gpu = TestEnv.RequireGpu();
        using var h = Make(gpu, "lm", DType.BFloat16, DType.BFloat16);
        var (l1, plain) = Run(h);
        var (l2, again) = Run(h, recompute: true);
        Assert.Equal(l1, l2);
        // Key gradients sum with fp32 atomics, so the order (and the last bits) may differ between runs.
        foreach (var (name, g) in plain)
            Assert.True(MaxError(again[name], g) <= 1e-3 * (1 + g.Max(Math.Abs)), $"d{name} differs with recomputation");
    }
}
