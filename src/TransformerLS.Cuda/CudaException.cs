namespace TransformerLS.Cuda;

/// <summary>A failed CUDA driver, NVRTC or cuBLAS call: names the call, the error and (if any) the kernel.</summary>
public class CudaException : Exception
{
    public string Call { get; }
    public int Code { get; }
    public string ErrorName { get; }
    public string? Kernel { get; }

    public CudaException(string call, int code, string errorName, string errorText, string? kernel = null)
        : base($"{call} failed: {errorName} ({code}): {errorText}" + (kernel is null ? "" : $" [kernel {kernel}]"))
    {
        Call = call; Code = code; ErrorName = errorName; Kernel = kernel;
    }
}

/// <summary>Device memory exhausted: says how much was asked for and how much the driver reports free.</summary>
public sealed class CudaOutOfMemoryException(long requested, long free, long total, long liveInPool)
    : Exception($"CUDA out of memory: asked for {Fmt(requested)}, {Fmt(free)} free of {Fmt(total)} on the device " +
                $"({Fmt(liveInPool)} held by live tensors of this process)")
{
    public long RequestedBytes { get; } = requested;
    public long FreeBytes { get; } = free;

    internal static string Fmt(long b) => b >= 1L << 30 ? $"{b / (double)(1L << 30):F2} GiB"
        : b >= 1L << 20 ? $"{b / (double)(1L << 20):F1} MiB" : $"{b} bytes";
}

/// <summary>NVRTC rejected a kernel source; <see cref="Log"/> holds the compiler's full log.</summary>
public sealed class NvrtcCompileException(string source, string options, string log)
    : Exception($"NVRTC could not compile {source} with [{options}]:\n{log}")
{
    public string Log { get; } = log;
}
