using TransformerLS.Ops;
using TransformerLS.Backends;
using System.Reflection;
using TransformerLS.Conformance;
using TransformerLS.Tensors;

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
        var seed = Random.Shared.Next();
        var r = ConformanceRunner.Run(Find(name), CpuBackend.Instance, seed);
        Assert.True(r.Passed, $"seed {seed}: {r.Describe()}");
    }

    /// <summary>TLS_CONFORMANCE (optional): '|'-separated texts; where set, the GPU rows whose name contains none of them
    /// skip, so that a device call can run just the rows a change touches (e.g. "d64 w128|d64 w192").</summary>
    internal static bool Selected(string name, string? filter) =>
        string.IsNullOrWhiteSpace(filter) || filter.Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Any(f => name.Contains(f, StringComparison.Ordinal));

    [Fact]
    public void Conformance_filter_selects_by_name_fragment()
    {
        Assert.True(Selected("ls_attention bfloat16 B1 H2 n256 d64 w128 r64", null));
        Assert.True(Selected("ls_attention bfloat16 B1 H2 n256 d64 w128 r64", "d32|d64 w128"));
        Assert.False(Selected("ls_attention bfloat16 B1 H2 n256 d64 w128 r64", "d64 w192| layer_norm"));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gpu_backend(string name)
    {
        var gpu = TestEnv.RequireGpu();
        var filter = Environment.GetEnvironmentVariable("TLS_CONFORMANCE");
        if (!Selected(name, filter)) Assert.Skip($"not selected by TLS_CONFORMANCE={filter}");
        var before = gpu.MemoryStats;
        var seed = Random.Shared.Next();
        var r = ConformanceRunner.Run(Find(name), gpu, seed);
        TestContext.Current.SendDiagnosticMessage(r.Describe());
        Assert.True(r.Passed, $"seed {seed}: {r.Describe()}");
        Assert.Equal(before.LiveBytes, gpu.MemoryStats.LiveBytes);
        Assert.Equal(before.LiveAllocations, gpu.MemoryStats.LiveAllocations);
    }

    /// <summary>The op facades: public static methods of TransformerLS.Ops that take a backend first.</summary>
    public static TheoryData<string> Facades() => [.. typeof(IBackend).Assembly.GetExportedTypes()
        .Where(t => t.Namespace == "TransformerLS.Ops" && t.IsAbstract && t.IsSealed)
        .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static).Where(m => m.GetParameters() is [{ ParameterType: var p }, ..] && p == typeof(IBackend))
            .Select(m => $"{t.Name}.{m.Name}"))
        .Distinct().Order(StringComparer.Ordinal)];

    // Replaces the hand list of ops: every facade, found by reflection, must have a case in float32 and in bfloat16
    // (the loss mean is float32 whatever the logits, so its float32 case stands for both).
    [Theory]
    [MemberData(nameof(Facades))]
    public void Every_op_facade_has_a_case_in_both_dtypes(string facade)
    {
        Assert.True(Facades().Count() >= 30, $"found only {Facades().Count()} facade methods");
        var cases = OpCases.All.Where(c => c.Facade == facade).ToArray();
        Assert.True(cases.Length > 0, $"{facade} has no case in any Ops/<Family>/<Family>Cases.cs");
        var floatOnly = facade.StartsWith("CrossEntropy.LossMean", StringComparison.Ordinal);
        foreach (var dt in floatOnly ? [DType.Float32] : OpCases.DTypes)
            Assert.True(cases.Any(c => c.DType == dt), $"{facade} has no {dt.Name()} case");
    }

    [Fact]
    public void Perf_mode_runs_the_same_definitions_at_the_bench_shapes()
    {
        var perf = OpCases.Perf(new KernelShape(), OpCases.DTypes).ToArray();
        Assert.Equal(46, perf.Length); // 9 families timed by tls-bench kernels (the LS attention also token-major), forward and backward, DecodeLinear at batch 1, 8 and 64, the decode attention at batch 1 and 64: both dtypes
        foreach (var c in perf)
        {
            Assert.Contains(OpCases.All, t => t.Facade == c.Facade && t.Op == c.Op && t.DType == c.DType); // one definition, two shapes
            Assert.True(c.Bytes > 0, $"{c.Name}: no minimal bytes");
        }
        Assert.Contains(perf, c => c.Op == "ls_attention" && c.Flops == 4.0 * 16 * 8 * 4096 * (2 * 64 + 128 + 64) * 64);
    }

    [Fact]
    public void The_rule_catches_a_wrong_result()
    {
        // A backend that is off by one bf16 ulp everywhere must fail: the bar is not loose.
        var c = Find("gelu float32 [4,333]");
        var wrong = new OpCase
        {
            Facade = c.Facade, Op = c.Op, DType = c.DType, Shape = c.Shape, Name = c.Name, Inputs = c.Inputs, Outputs = c.Outputs, Reference32 = c.Reference32,
            Reference64 = c.Reference64,
            Prepare = (be, i, o) => () => { Elementwise.Gelu(be, i[0], o[0]); Elementwise.Axpby(be, o[0], 1.004f, null, 0, o[0]); },
        };
        Assert.False(ConformanceRunner.Run(wrong, CpuBackend.Instance, 1).Passed);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GpuCollection
{
    public const string Name = "gpu (serial: shared context, exact allocator counts)";
}
