using TransformerLS.Ops;
using TransformerLS.Backends;
using TransformerLS.Conformance;

namespace TransformerLS.Tests;

/// <summary>The whole op table on both backends, by the 2x-of-same-precision rule.</summary>
[Collection(GpuCollection.Name)]
public class ConformanceTests
{
    public static TheoryData<string> Cases() => new(OpCases.All.Select(c => c.Name));

    static OpCase Find(string name) => OpCases.All.Single(c => c.Name == name);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Cpu_backend(string name)
    {
        var r = ConformanceRunner.Run(Find(name), CpuBackend.Instance, seed: Random.Shared.Next());
        Assert.True(r.Passed, r.Describe());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gpu_backend(string name)
    {
        var gpu = TestEnv.RequireGpu();
        var before = gpu.MemoryStats;
        var r = ConformanceRunner.Run(Find(name), gpu, seed: Random.Shared.Next());
        TestContext.Current.SendDiagnosticMessage(r.Describe());
        Assert.True(r.Passed, r.Describe());
        Assert.Equal(before.LiveBytes, gpu.MemoryStats.LiveBytes);
        Assert.Equal(before.LiveAllocations, gpu.MemoryStats.LiveAllocations);
    }

    [Fact]
    public void Table_covers_every_op_in_both_dtypes()
    {
        string[] ops = ["axpby", "scale", "cast", "gelu", "gelu_backward", "bias_add", "column_sum", "matmul", "linear", "linear_backward", "ls_attention", "ls_attention_backward", "ls_projection", "ls_projection_backward",
            "layernorm", "layernorm_backward", "softmax", "softmax_backward"];
        foreach (var op in ops)
            foreach (var dt in new[] { "float32", "bfloat16" })
                Assert.Contains(OpCases.All, c => c.Op == op && c.Name.Contains(dt));
    }

    [Fact]
    public void The_rule_catches_a_wrong_result()
    {
        // A backend that is off by one bf16 ulp everywhere must fail: the bar is not loose.
        var c = Find("gelu float32 [4,333]");
        var wrong = new OpCase
        {
            Op = c.Op, Name = c.Name, Inputs = c.Inputs, Outputs = c.Outputs, Reference32 = c.Reference32,
            Reference64 = c.Reference64,
            Run = (be, i, o) => { Elementwise.Gelu(be, i[0], o[0]); Elementwise.Axpby(be, o[0], 1.004f, null, 0, o[0]); },
        };
        Assert.False(ConformanceRunner.Run(wrong, CpuBackend.Instance, 1).Passed);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GpuCollection
{
    public const string Name = "gpu (serial: shared context, exact allocator counts)";
}
