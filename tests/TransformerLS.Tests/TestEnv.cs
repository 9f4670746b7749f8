using TransformerLS.Backends;
using TransformerLS.Cuda;

namespace TransformerLS.Tests;

/// <summary>What this machine offers the tests, decided once.</summary>
public static class TestEnv
{
    static readonly Lazy<(bool Ok, string Why)> Nvrtc = new(() =>
        NativeLibraries.TryLoad(NativeLib.Nvrtc, out var e) ? (true, "") : (false, e!));

    static readonly Lazy<(CudaBackend? Backend, string Why)> Gpu = new(() =>
    {
        if (!CudaContext.IsAvailable(out var why)) return (null, why);
        var be = new CudaBackend(0);
        // cuBLAS's and cuBLASLt's workspaces live as long as the backend; made here (Prepare), they are not seen to appear
        // inside whichever test first runs a matmul (a conformance run of only its class failed its live-bytes check).
        be.Prepare();
        return (be, "");
    });

    public static bool InCi => Environment.GetEnvironmentVariable("CI") == "true";

    /// <summary>NVRTC is required in CI (.ci/run installs it); elsewhere its absence skips the test.</summary>
    public static void RequireNvrtc()
    {
        if (Nvrtc.Value.Ok) return;
        if (InCi) Assert.Fail($"CI must have NVRTC (.ci/run installs libnvrtc11.2): {Nvrtc.Value.Why}");
        Assert.Skip($"no NVRTC on this machine: {Nvrtc.Value.Why}");
    }

    /// <summary>The shared GPU backend, or a skip naming why there is none.</summary>
    public static CudaBackend RequireGpu()
    {
        var (be, why) = Gpu.Value;
        if (be is null) Assert.Skip($"no CUDA GPU: {why}");
        return be;
    }

    public static bool HasGpu => Gpu.Value.Backend is not null;

    public static string RepoRoot
    {
        get
        {
            var d = new DirectoryInfo(AppContext.BaseDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "TransformerLS.Native.sln"))) d = d.Parent;
            return d?.FullName ?? Environment.GetEnvironmentVariable("TLS_REPO_ROOT")
                ?? throw new InvalidOperationException("cannot find the repository root from " + AppContext.BaseDirectory);
        }
    }
}
