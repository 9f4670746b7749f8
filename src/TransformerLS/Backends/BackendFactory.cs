using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Backends;

public static class BackendFactory
{
    /// <summary>"auto" (the first GPU where one works, else the CPU), "cpu", "cuda" or "cuda:N"; the caller disposes it.</summary>
    public static IBackend Open(string device)
    {
        if (device == "auto") return CudaContext.IsAvailable(out _) ? new CudaBackend(0) : new CpuBackend();
        var d = Device.Parse(device);
        return d.Kind == DeviceKind.Cpu ? new CpuBackend() : new CudaBackend(d.Index);
    }
}
