using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using TransformerLS.Backends;
using TransformerLS.Cuda;

namespace TransformerLS.Tests;

/// <summary>
/// The params structs that cross from C# into CUDA: each kernels/&lt;family&gt;/&lt;family&gt;.cuh states its structs' size
/// and the offset of their last field in a TLS_PARAMS_LAYOUT line, which static_asserts the CUDA side when NVRTC
/// compiles it (KernelCompileTests, in CI). Here the same line is read back and compared with the C# mirror's
/// marshalled layout, so neither side can drift alone, and a mirror without a line (or a line without a mirror) fails.
/// </summary>
public sealed partial class LayoutContractTests
{
    [GeneratedRegex(@"^TLS_PARAMS_LAYOUT\((\w+), (\w+), (\d+), (\d+)\)", RegexOptions.Multiline)]
    private static partial Regex LayoutLine();

    static Dictionary<string, (string Last, int Size, int Offset, string Header)> Declared()
    {
        var all = new Dictionary<string, (string, int, int, string)>();
        foreach (var h in KernelLibrary.Headers)
            foreach (Match m in LayoutLine().Matches(KernelLibrary.ReadSource(h)))
                all.Add(m.Groups[1].Value, (m.Groups[2].Value, int.Parse(m.Groups[3].Value), int.Parse(m.Groups[4].Value), h));
        return all;
    }

    static Type[] Mirrors() => [.. typeof(IBackend).Assembly.GetTypes()
        .Where(t => t.IsValueType && t.Namespace == "TransformerLS.Ops" && t.Name.EndsWith("Params", StringComparison.Ordinal) && t.IsLayoutSequential)];

    public static TheoryData<string> MirrorNames() => [.. Mirrors().Select(t => t.Name).Order()];

    [Theory]
    [MemberData(nameof(MirrorNames))]
    public void Mirror_matches_the_layout_line_of_its_header(string name)
    {
        var mirror = Mirrors().Single(t => t.Name == name);
        Assert.True(Declared().TryGetValue(name, out var line), $"{name} has no TLS_PARAMS_LAYOUT line in any kernels/**/*.cuh");
        Assert.Equal(line.Size, Marshal.SizeOf(mirror));
        var last = mirror.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic).Last();
        Assert.True(string.Equals(last.Name, line.Last.Replace("_", ""), StringComparison.OrdinalIgnoreCase),
            $"{name}: the C# mirror's last field is {last.Name}; {line.Header} declares {line.Last}");
        Assert.Equal(line.Offset, (int)Marshal.OffsetOf(mirror, last.Name));
    }

    [GeneratedRegex(@"^TLS_EXPORT(?:_TABLE)?\((\w+), (.+)\)$", RegexOptions.Multiline)]
    private static partial Regex ExportLine();

    /// <summary>The block shapes launchers read from the modules (TLS_EXPORT) exist in the compiled module and are the source's numbers.</summary>
    [Fact]
    public void Exported_tile_sizes_are_read_from_the_module()
    {
        var gpu = TestEnv.RequireGpu();
        var exports = KernelLibrary.Sources.SelectMany(f => ExportLine().Matches(KernelLibrary.ReadSource(f)).Select(m => (File: f, Name: m.Groups[1].Value))).ToArray();
        Assert.True(exports.Length >= 10, $"expected the attention and projection kernels' exports, found {exports.Length}");
        foreach (var (file, name) in exports)
            Assert.True(gpu.Constant(file, name) >= 0, $"{file}: {name} read {gpu.Constant(file, name)}");
        Assert.Equal(64, gpu.Constant("ls_attention/ls_attention_mma.cu", "ls_attention_mma_qb")); // #define QB 64 in ls_attention_mma.cuh
        Assert.Equal(128, gpu.Constant("ls_attention/ls_attention_mma.cu", "ls_attention_mma_wide_qb")); // #define QM 128 there
        // A table's last element is there and one past it is refused by name.
        Assert.True(gpu.Constant("ls_causal_attention/ls_causal_attention_mma.cu", "ls_causal_attention_bwd_mma_smem", 31) > 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.Constant("ls_causal_attention/ls_causal_attention_mma.cu", "ls_causal_attention_bwd_mma_smem", 32));
        Assert.Throws<CudaException>(() => gpu.Constant("ls_attention/ls_attention.cu", "no_such_constant"));
    }

    /// <summary>cuLaunchKernelEx's structs (CudaKernel.LaunchDependent) as cuda.h lays them out on 64-bit hosts: CUlaunchConfig is
    /// seven uints, the stream at 32, the attribute pointer at 40, their count at 48 (56 bytes); CUlaunchAttribute an id padded to 8
    /// bytes and a 64-byte value union (72).</summary>
    [Fact]
    public void Driver_launch_structs_have_the_cuda_h_layout()
    {
        var driver = typeof(CudaKernel).Assembly.GetType("TransformerLS.Cuda.Driver", throwOnError: true)!;
        var config = driver.GetNestedType("LaunchConfig", BindingFlags.Public)!;
        var attribute = driver.GetNestedType("LaunchAttribute", BindingFlags.Public)!;
        Assert.Equal(56, Marshal.SizeOf(config));
        Assert.Equal(32, (int)Marshal.OffsetOf(config, "Stream"));
        Assert.Equal(40, (int)Marshal.OffsetOf(config, "Attributes"));
        Assert.Equal(48, (int)Marshal.OffsetOf(config, "AttributeCount"));
        Assert.Equal(72, Marshal.SizeOf(attribute));
        Assert.Equal(8, (int)Marshal.OffsetOf(attribute, "Value"));
    }

    [Fact]
    public void Every_layout_line_has_a_mirror()
    {
        var mirrors = Mirrors().Select(t => t.Name).ToHashSet();
        Assert.NotEmpty(mirrors);
        Assert.All(Declared().Keys, k => Assert.True(mirrors.Contains(k), $"{k} is declared in a kernel header but has no C# mirror in TransformerLS.Ops"));
    }
}
