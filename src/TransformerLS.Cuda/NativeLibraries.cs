using System.Reflection;
using System.Runtime.InteropServices;

namespace TransformerLS.Cuda;

/// <summary>The native libraries the binding uses, found by soname.</summary>
public enum NativeLib { Driver, Nvrtc, Cublas, CublasLt }

/// <summary>Thrown when a CUDA library cannot be loaded; lists every path that was tried.</summary>
public sealed class CudaLibraryNotFoundException(string message) : DllNotFoundException(message);

/// <summary>
/// Finds libcuda, libnvrtc, libcublas and libcublasLt by soname, newest first. TLS_CUDA_LIBRARY_PATH (a directory, or a
/// list separated by ':' or ';') is searched before the loader's own path. The toolkit's stub libcuda
/// (lib64/stubs) is refused: it loads, but every call fails with CUDA_ERROR_STUB_LIBRARY.
/// </summary>
public static class NativeLibraries
{
    internal const string DriverName = "tls_cuda";
    internal const string NvrtcName = "tls_nvrtc";
    internal const string CublasName = "tls_cublas";
    internal const string CublasLtName = "tls_cublaslt";
    public const string PathVariable = "TLS_CUDA_LIBRARY_PATH";

    static readonly Lock Gate = new();
    static readonly Dictionary<NativeLib, nint> Loaded = [];
    static readonly Dictionary<NativeLib, string> LoadedFrom = [];

    static NativeLibraries() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    static string[] Candidates(NativeLib lib) => (lib, OperatingSystem.IsWindows()) switch
    {
        (NativeLib.Driver, false) => ["libcuda.so.1", "libcuda.so"],
        (NativeLib.Nvrtc, false) => ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"],
        (NativeLib.Cublas, false) => ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"],
        (NativeLib.CublasLt, false) => ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"],
        (NativeLib.Driver, true) => ["nvcuda.dll"],
        (NativeLib.Nvrtc, true) => ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll"],
        (NativeLib.Cublas, true) => ["cublas64_13.dll", "cublas64_12.dll", "cublas64_11.dll"],
        (NativeLib.CublasLt, true) => ["cublasLt64_13.dll", "cublasLt64_12.dll", "cublasLt64_11.dll"],
        _ => throw new ArgumentOutOfRangeException(nameof(lib)),
    };

    /// <summary>Loads <paramref name="lib"/> or throws <see cref="CudaLibraryNotFoundException"/>.</summary>
    public static nint Load(NativeLib lib)
    {
        lock (Gate)
        {
            if (Loaded.TryGetValue(lib, out var h)) return h;
            var tried = new List<string>();
            var dirs = (Environment.GetEnvironmentVariable(PathVariable) ?? "")
                .Split([':', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var name in Candidates(lib))
            {
                foreach (var dir in dirs)
                    if (TryOne(Path.Combine(dir, name), tried, out h)) return Remember(lib, h, Path.Combine(dir, name));
                if (TryOne(name, tried, out h)) return Remember(lib, h, name);
            }
            throw new CudaLibraryNotFoundException(
                $"Could not load the CUDA {lib} library. Tried: {string.Join(", ", tried)}. " +
                $"Install the CUDA driver/toolkit libraries or set {PathVariable} to the directory that holds them.");
        }
    }

    /// <summary>True when <paramref name="lib"/> can be loaded; never throws.</summary>
    public static bool TryLoad(NativeLib lib, out string? error)
    {
        try { Load(lib); error = null; return true; }
        catch (CudaLibraryNotFoundException e) { error = e.Message; return false; }
    }

    public static string? LoadedPath(NativeLib lib) { lock (Gate) return LoadedFrom.GetValueOrDefault(lib); }

    static bool TryOne(string path, List<string> tried, out nint handle)
    {
        handle = 0;
        if (path.Replace('\\', '/').Contains("/stubs/", StringComparison.Ordinal))
        {
            tried.Add($"{path} (refused: toolkit stub, not a driver)");
            return false;
        }
        if (NativeLibrary.TryLoad(path, out handle)) return true;
        tried.Add(path);
        return false;
    }

    static nint Remember(NativeLib lib, nint h, string path)
    {
        Loaded[lib] = h;
        LoadedFrom[lib] = path;
        return h;
    }

    static nint Resolve(string name, Assembly assembly, DllImportSearchPath? path) => name switch
    {
        DriverName => Load(NativeLib.Driver),
        NvrtcName => Load(NativeLib.Nvrtc),
        CublasName => Load(NativeLib.Cublas),
        CublasLtName => Load(NativeLib.CublasLt),
        _ => 0,
    };

    /// <summary>Installs the import resolver; called by every entry point before the first native call.</summary>
    internal static void EnsureResolver() { }
}
