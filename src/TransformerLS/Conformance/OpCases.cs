using System.Reflection;
using TransformerLS.Tensors;

namespace TransformerLS.Conformance;

/// <summary>
/// The registry of op cases (ggml's test-backend-ops in spirit). Each op family declares its cases beside its
/// facade (Ops/&lt;Family&gt;/&lt;Family&gt;Cases.cs): <c>Cases(DType)</c> at small, odd test shapes and, where the bench
/// times the family, <c>PerfCases(KernelShape, DType)</c> at the bench shapes, both from one definition per shape.
/// The families are found by reflection, so a new family's cases join the tests, `tls check` and `tls-bench
/// kernels` without a list to edit.
/// </summary>
internal static class OpCases
{
    public static readonly DType[] DTypes = [DType.Float32, DType.BFloat16];

    /// <summary>Every family's test-mode cases, float32 then bfloat16.</summary>
    public static IReadOnlyList<OpCase> All { get; } = [.. DTypes.SelectMany(dt => Families("Cases").SelectMany(m => (IEnumerable<OpCase>)m.Invoke(null, [dt])!))];

    /// <summary>Every family's perf-mode cases at <paramref name="shape"/>.</summary>
    public static IEnumerable<OpCase> Perf(KernelShape shape, IEnumerable<DType> dtypes) =>
        dtypes.SelectMany(dt => Families("PerfCases").SelectMany(m => (IEnumerable<OpCase>)m.Invoke(null, [shape, dt])!));

    static IEnumerable<MethodInfo> Families(string name) => typeof(OpCase).Assembly.GetTypes()
        .Where(t => t.Namespace == "TransformerLS.Ops" && t.IsAbstract && t.IsSealed)
        .OrderBy(t => t.Name, StringComparer.Ordinal)
        .Select(t => t.GetMethod(name, BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public))
        .Where(m => m is not null)!;
}
