using TransformerLS.Conformance;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>
/// Ops whose reductions run in a fixed order (two-stage sums, no float atomics) give the same bits every run: each
/// case's launch runs twice on the same inputs and its outputs are compared bit for bit. Families join as their atomics
/// go (issue 17). The causal attention's backward is deterministic on the CUDA cores (float32, and bf16 at head dims off the
/// tensor cores); its tensor-core backward and the embedding backward still sum with atomics.
/// </summary>
[Collection(GpuCollection.Name)]
public class DeterminismTests
{
    static readonly string[] Deterministic =
        ["LayerNorm.Backward", "DualLayerNorm.Backward", "LsProjection.Forward", "LsProjection.Backward", "Linear.Forward", "Linear.Backward", "Elementwise.ColumnSum",
         "LsAttention.Backward", "LsCausalDecode.Forward", "Optimizer.AdamStepAll", "Optimizer.WriteAdamHyper",
         "LsChunkProjection.Forward", "LsChunkProjection.Backward"];

    static bool IsDeterministic(OpCase c) => Deterministic.Contains(c.Facade)
        || (c.Facade == "LsCausalAttention.Backward" && !LsCausalAttentionCuda.UsesMma(c.DType, c.Inputs[0].Shape[3]));

    public static TheoryData<string> Cases() => [.. OpCases.All.Where(IsDeterministic).Select(c => c.Name)];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gives_the_same_bits_twice(string name)
    {
        var gpu = TestEnv.RequireGpu();
        var c = OpCases.All.Single(k => k.Name == name);
        using var scope = new TensorScope();
        var rng = new Random(7);
        var ins = c.Inputs.Select(s => { var t = gpu.Empty(s.Shape, s.DType); t.CopyFrom(ConformanceRunner.MakeInput(s, rng)); return t; }).ToArray();
        var outs = c.Outputs.Select(s => gpu.Empty(s.Shape, s.DType)).ToArray();
        var launch = c.Prepare(gpu, ins, outs);
        byte[][] Run()
        {
            foreach (var t in outs) gpu.Fill(t, float.NaN);
            launch();
            gpu.Synchronize();
            return [.. outs.Select(t => { var b = new byte[t.Bytes]; gpu.CopyToHost(t, b); return b; })];
        }
        var (first, second) = (Run(), Run());
        for (var o = 0; o < outs.Length; o++)
            Assert.True(first[o].AsSpan().SequenceEqual(second[o]), $"{name}: {c.Outputs[o].Name} differs between two runs");
    }

    [Fact]
    public void Some_cases_are_checked()
    {
        Assert.True(Cases().Count() >= 30, $"only {Cases().Count()} deterministic cases");
    }
}
