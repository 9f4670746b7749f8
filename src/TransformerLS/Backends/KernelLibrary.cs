using System.Security.Cryptography;
using System.Text;
using TransformerLS.Cuda;

namespace TransformerLS.Backends;

/// <summary>
/// The kernel sources of kernels/, embedded in this assembly, and how a module is obtained for a device:
/// a fatbin built by cmake/ (TLS_KERNEL_FATBIN_DIR), else a CUBIN from the on-disk cache, else NVRTC.
/// Every kernels/**/*.cuh (common/: the prelude and tile helpers; each family's params header) is handed to NVRTC as an in-memory
/// header. The cache key covers the source, all headers, the options, the arch and the NVRTC version; an entry whose
/// checksum does not match is rebuilt, not trusted.
/// </summary>
internal static class KernelLibrary
{
    public const string PreludeName = "common/prelude.cuh";
    public const string FatbinDirVariable = "TLS_KERNEL_FATBIN_DIR";
    public const string CacheDirVariable = "TLS_KERNEL_CACHE_DIR";
    // -lineinfo (source lines for ncu and compute-sanitizer) only from NVRTC 12: NVRTC 11.8 segfaults on it for sm_90.
    static string[] Options => CudaRuntimeCompiler.Version.Major >= 12
        ? ["--std=c++17", "-DTLS_NVRTC=1", "-lineinfo"] : ["--std=c++17", "-DTLS_NVRTC=1"];

    /// <summary>Files whose name ends so hold Hopper-only kernels (wgmma): built for the arch-specific sm_90a target, with
    /// TLS_SM90A defined, where the device is sm_90 and NVRTC is 12 or later (NVRTC 11.8 has no sm_90a); elsewhere built
    /// plainly, their kernels empty and their export tls_sm90a = 0 (common/wgmma.cuh), so launchers keep to other kernels.</summary>
    public const string Sm90aSuffix = "_sm90a.cu";

    /// <summary>Whether <paramref name="file"/> builds for sm_90a on a device of <paramref name="arch"/> with this NVRTC.</summary>
    public static bool BuildsSm90a(string file, int arch) =>
        file.EndsWith(Sm90aSuffix, StringComparison.Ordinal) && arch == 90 && CudaRuntimeCompiler.Version.Major >= 12;

    static string[] OptionsFor(string file, int arch) => BuildsSm90a(file, arch) ? [.. Options, "-DTLS_SM90A=1"] : Options;
    static readonly byte[] Magic = "TLSK1\n"u8.ToArray();

    /// <summary>Paths of the .cu files under kernels/ (e.g. "layer_norm/layer_norm.cu").</summary>
    public static IReadOnlyList<string> Sources { get; } = Embedded(".cu");

    /// <summary>Paths of the .cuh headers under kernels/ (e.g. "common/prelude.cuh"); kernels include them by that path.</summary>
    public static IReadOnlyList<string> Headers { get; } = Embedded(".cuh");

    static string[] Embedded(string extension) =>
        [.. typeof(KernelLibrary).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("kernels/", StringComparison.Ordinal) && n.EndsWith(extension, StringComparison.Ordinal))
            .Select(n => n["kernels/".Length..]).Order(StringComparer.Ordinal)];

    public static string ReadSource(string file)
    {
        using var s = typeof(KernelLibrary).Assembly.GetManifestResourceStream("kernels/" + file)
            ?? throw new ArgumentException($"no kernel source named '{file}'; have: {string.Join(", ", Sources)}", nameof(file));
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }

    public static string CacheDirectory =>
        Environment.GetEnvironmentVariable(CacheDirVariable) is { Length: > 0 } d ? d
        : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "transformerls", "kernels");

    /// <summary>Compiles one source with NVRTC for sm_<paramref name="arch"/>; needs no GPU.</summary>
    public static CompiledKernelImage Compile(string file, int arch)
    {
        var compiler = new CudaRuntimeCompiler(ReadSource(file), file);
        foreach (var h in Headers) compiler.AddHeader(h, ReadSource(h));
        return compiler.Compile(arch, OptionsFor(file, arch), archSpecific: BuildsSm90a(file, arch));
    }

    /// <summary>Where a kernel file's image came from, for `tls check`.</summary>
    public enum Origin { Fatbin, Cache, Compiled }

    /// <summary>The image to load for <paramref name="file"/> on a device of <paramref name="arch"/>.</summary>
    public static (byte[] Image, Origin Origin) GetImage(string file, int arch)
    {
        if (Environment.GetEnvironmentVariable(FatbinDirVariable) is { Length: > 0 } dir)
        {
            var fatbin = Path.Combine(dir, Path.ChangeExtension(Path.GetFileName(file), ".fatbin"));
            if (!File.Exists(fatbin))
                throw new FileNotFoundException($"{FatbinDirVariable}={dir} but {fatbin} does not exist; build it with cmake/ or unset the variable", fatbin);
            return (File.ReadAllBytes(fatbin), Origin.Fatbin);
        }
        var (major, minor) = CudaRuntimeCompiler.Version;
        var path = Path.Combine(CacheDirectory, $"{Path.GetFileNameWithoutExtension(file)}-sm{arch}-{Key(file, arch, major, minor)}.cubin");
        if (TryReadCache(path) is { } cached) return (cached, Origin.Cache);
        var image = Compile(file, arch).Image;
        WriteCache(path, image);
        return (image, Origin.Compiled);
    }

    static string Key(string file, int arch, int major, int minor)
    {
        var text = string.Join("\0", [ReadSource(file), .. Headers.Select(ReadSource), string.Join(' ', OptionsFor(file, arch)), $"{arch}", $"{major}.{minor}"]);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..24].ToLowerInvariant();
    }

    /// <summary>Reads a cache entry: magic, SHA-256 of the payload, payload. Anything else counts as a miss.</summary>
    public static byte[]? TryReadCache(string path)
    {
        try
        {
            if (!File.Exists(path)) return null;
            var all = File.ReadAllBytes(path);
            if (all.Length < Magic.Length + 32 || !all.AsSpan(0, Magic.Length).SequenceEqual(Magic)) return null;
            var payload = all.AsSpan(Magic.Length + 32);
            return SHA256.HashData(payload).AsSpan().SequenceEqual(all.AsSpan(Magic.Length, 32)) ? payload.ToArray() : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    public static void WriteCache(string path, byte[] image)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var tmp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
            using (var f = File.Create(tmp))
            {
                f.Write(Magic);
                f.Write(SHA256.HashData(image));
                f.Write(image);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch (IOException) { } // a read-only or full cache only costs a recompile next time
        catch (UnauthorizedAccessException) { }
    }
}
