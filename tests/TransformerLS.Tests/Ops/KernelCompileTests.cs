using TransformerLS.Backends;
using TransformerLS.Cuda;

namespace TransformerLS.Tests;

/// <summary>Every kernel source compiles with the NVRTC on this machine for sm_80 and sm_90; needs no GPU.</summary>
public class KernelCompileTests
{
    public static TheoryData<string, int> SourcesAndArchs()
    {
        var d = new TheoryData<string, int>();
        foreach (var s in KernelLibrary.Sources)
            foreach (var arch in new[] { 80, 90 }) d.Add(s, arch);
        return d;
    }

    [Theory]
    [MemberData(nameof(SourcesAndArchs))]
    public void Compiles_to_cubin(string source, int arch)
    {
        TestEnv.RequireNvrtc();
        var image = KernelLibrary.Compile(source, arch);
        Assert.True(image.IsCubin, $"expected CUBIN for sm_{arch}, got {image.Arch}");
        Assert.True(image.Image.Length > 1000, $"CUBIN of {source} is only {image.Image.Length} bytes");
        Assert.DoesNotContain("warning", image.Log, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Every_kernel_file_is_embedded()
    {
        var root = Path.Combine(TestEnv.RepoRoot, "kernels");
        var onDisk = Directory.GetFiles(root, "*.cu", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(root, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(onDisk, KernelLibrary.Sources.ToArray());
        Assert.Contains("mma.sync", KernelLibrary.ReadSource(KernelLibrary.PreludeName));
    }

    /// <summary>
    /// Every kernel and exported constant a launcher names (the string literals of Ops/*/*Cuda.cs) is a symbol of some
    /// compiled module, so a renamed kernel fails here, in CI without a GPU, not at its first launch.
    /// </summary>
    [Fact]
    public void Every_name_a_launcher_asks_for_is_in_a_module()
    {
        TestEnv.RequireNvrtc();
        var ops = Path.Combine(TestEnv.RepoRoot, "src", "TransformerLS", "Ops");
        var names = Directory.GetFiles(ops, "*Cuda.cs", SearchOption.AllDirectories)
            .SelectMany(f => System.Text.RegularExpressions.Regex.Matches(File.ReadAllText(f), "\"([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\"").Select(m => m.Groups[1].Value))
            .Where(n => !n.EndsWith(".cu", StringComparison.Ordinal)).Distinct().Order(StringComparer.Ordinal).ToArray();
        Assert.True(names.Length > 100, $"found only {names.Length} kernel and constant names");
        var images = KernelLibrary.Sources.Select(f => KernelLibrary.GetImage(f, 80).Image).ToArray();
        var missing = names.Where(n => !images.Any(i => i.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes($"\0{n}\0")) >= 0)).ToArray();
        Assert.True(missing.Length == 0, $"named by a launcher but in no module: {string.Join(", ", missing)}");
    }

    [Fact]
    public void Compile_error_carries_the_nvrtc_log()
    {
        TestEnv.RequireNvrtc();
        var c = new CudaRuntimeCompiler("extern \"C\" __global__ void k() { undefined_thing(); }", "broken.cu");
        var e = Assert.Throws<NvrtcCompileException>(() => c.Compile(80, []));
        Assert.Contains("undefined_thing", e.Log);
        Assert.Contains("broken.cu", e.Message);
    }

    [Fact]
    public void Name_expressions_resolve_template_instantiations()
    {
        TestEnv.RequireNvrtc();
        var c = new CudaRuntimeCompiler("template <typename T> __global__ void scale(T* p, T a) { p[threadIdx.x] *= a; }", "tmpl.cu")
            .AddNameExpression("scale<float>").AddNameExpression("scale<double>");
        var image = c.Compile(90, ["--std=c++17"]);
        Assert.StartsWith("_Z", image.LoweredNames["scale<float>"]);
        Assert.NotEqual(image.LoweredNames["scale<float>"], image.LoweredNames["scale<double>"]);
    }

    [Fact]
    public void Unknown_arch_falls_back_to_ptx_for_the_newest_known()
    {
        TestEnv.RequireNvrtc();
        var image = new CudaRuntimeCompiler("extern \"C\" __global__ void k(float* p) { p[0] = 1.f; }", "k.cu").Compile(999, []);
        Assert.False(image.IsCubin);
        Assert.StartsWith("compute_", image.Arch);
        Assert.Contains(".entry", System.Text.Encoding.UTF8.GetString(image.Image));
    }

    /// <summary>The Hopper-only files (*_sm90a.cu): sm_90a CUBIN where this NVRTC builds it (12+), and a clear refusal of the
    /// arch-specific target where it does not (NVRTC 11.8, CI), where KernelLibrary builds them plainly instead.</summary>
    [Fact]
    public void Sm90a_files_build_for_the_arch_specific_target_where_nvrtc_can()
    {
        TestEnv.RequireNvrtc();
        var files = KernelLibrary.Sources.Where(f => f.EndsWith(KernelLibrary.Sm90aSuffix, StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(files);
        foreach (var f in files) Assert.False(KernelLibrary.BuildsSm90a(f, 80), f);
        Assert.False(KernelLibrary.BuildsSm90a("ls_attention/ls_attention_mma.cu", 90));
        if (CudaRuntimeCompiler.Version.Major >= 12)
            foreach (var f in files)
            {
                Assert.True(KernelLibrary.BuildsSm90a(f, 90), f);
                var image = KernelLibrary.Compile(f, 90);
                Assert.True(image.IsCubin && image.Arch == "sm_90a", $"{f}: {image.Arch}");
            }
        else
        {
            foreach (var f in files) Assert.False(KernelLibrary.BuildsSm90a(f, 90), f);
            var c = new CudaRuntimeCompiler("extern \"C\" __global__ void k(float* p) { p[0] = 1.f; }", "k.cu");
            var e = Assert.Throws<ArgumentException>(() => c.Compile(90, [], archSpecific: true));
            Assert.Contains("sm_90a", e.Message);
        }
    }

    /// <summary>On an sm_90 GPU with NVRTC 12+, every *_sm90a.cu module loads with its wgmma kernels built in (tls_sm90a = 1), so a
    /// GPU run with TLS_WGMMA=1 exercises them rather than falling back; elsewhere they load as the plain build (tls_sm90a = 0).</summary>
    [Fact]
    public void Sm90a_modules_load_with_their_kernels_on_an_sm90_gpu()
    {
        var be = TestEnv.RequireGpu();
        // cmake/'s fatbins build every file plainly (no TLS_SM90A), so from them the wgmma kernels are absent too.
        var fromFatbins = Environment.GetEnvironmentVariable(KernelLibrary.FatbinDirVariable) is { Length: > 0 };
        var expected = !fromFatbins && KernelLibrary.BuildsSm90a("x" + KernelLibrary.Sm90aSuffix, be.Context.Device.ArchNumber) ? 1 : 0;
        foreach (var f in KernelLibrary.Sources.Where(f => f.EndsWith(KernelLibrary.Sm90aSuffix, StringComparison.Ordinal)))
            Assert.True(be.Constant(f, "tls_sm90a") == expected, $"{f}: tls_sm90a = {be.Constant(f, "tls_sm90a")} on {be.Context.Device.Arch}, expected {expected}");
    }

    [Fact]
    public void Cache_entries_are_checked_and_corrupt_ones_rejected()
    {
        var dir = Directory.CreateTempSubdirectory("tls-cache-");
        try
        {
            var path = Path.Combine(dir.FullName, "x.cubin");
            byte[] payload = [1, 2, 3, 4, 5, 6, 7, 8];
            KernelLibrary.WriteCache(path, payload);
            Assert.Equal(payload, KernelLibrary.TryReadCache(path));
            var bytes = File.ReadAllBytes(path);
            bytes[^1] ^= 0xff;
            File.WriteAllBytes(path, bytes);
            Assert.Null(KernelLibrary.TryReadCache(path));
            File.WriteAllBytes(path, bytes[..10]);
            Assert.Null(KernelLibrary.TryReadCache(path));
        }
        finally { dir.Delete(true); }
    }
}
