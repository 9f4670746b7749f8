using System.Reflection;
using TransformerLS.Backends;
using TransformerLS.Cuda;

namespace TransformerLS.Bench.Harness;

/// <summary>Where a result came from: written at the top of every export.</summary>
public sealed record BenchEnvironment(string Device, string Driver, string Cuda, string Nvrtc, string Cublas, string Commit, string Runtime, string Date)
{
    /// <summary>The library commit this program was built from ("+dirty" when tracked files had edits).</summary>
    public static string BuildCommit => typeof(BenchEnvironment).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .FirstOrDefault(a => a.Key == "Commit")?.Value is { Length: > 0 } c ? c : "unknown";

    public static BenchEnvironment Of(IBackend be)
    {
        string nvrtc = NativeLibraries.TryLoad(NativeLib.Nvrtc, out _) ? $"{CudaRuntimeCompiler.Version.Major}.{CudaRuntimeCompiler.Version.Minor}" : "none";
        var date = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'");
        var runtime = $".NET {Environment.Version}";
        if (be is not CudaBackend cuda)
            return new($"CPU ({Environment.ProcessorCount} cores, the float64 reference backend)", "none", "none", nvrtc, "none", BuildCommit, runtime, date);
        var p = cuda.Context.Device;
        var v = CudaContext.DriverVersion();
        var blas = cuda.Blas.Version;
        return new($"{p.Name} ({p.Arch}, {p.MultiprocessorCount} SMs, {p.TotalMemory >> 20} MiB)", DriverRelease() ?? "unknown",
            $"{v / 1000}.{v % 1000 / 10}", nvrtc, $"{blas / 10000}.{blas / 100 % 100}.{blas % 100}", BuildCommit, runtime, date);
    }

    /// <summary>The kernel driver's release (e.g. 580.159.04) as Linux reports it.</summary>
    static string? DriverRelease()
    {
        const string path = "/proc/driver/nvidia/version";
        if (!File.Exists(path)) return null;
        var line = File.ReadLines(path).FirstOrDefault() ?? "";
        var m = System.Text.RegularExpressions.Regex.Match(line, @"\b(\d+\.\d+(\.\d+)?)\b");
        return m.Success ? m.Groups[1].Value : null;
    }

    public IEnumerable<(string Key, string Value)> Fields =>
        [("device", Device), ("driver", Driver), ("cuda", Cuda), ("nvrtc", Nvrtc), ("cublas", Cublas), ("commit", Commit), ("runtime", Runtime), ("date", Date)];

    /// <summary>The one-line header of a markdown report: every field, "key: value" separated by "; ".</summary>
    public string Header => string.Join("; ", Fields.Select(f => $"{f.Key}: {f.Value}"));
}
