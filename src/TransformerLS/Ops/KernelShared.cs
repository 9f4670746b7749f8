using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>
/// Dynamic shared memory of a kernel whose carve-up grows with the head dim, as its module exports it (one source):
/// bytes = {kernel}_smem_fixed + {kernel}_smem_per_d · d. The CUDA-core attention kernels keep tiles of d-wide rows there,
/// so a head dim whose tiles exceed the device's opt-in limit is refused by name.
/// </summary>
static class KernelShared
{
    public static uint Bytes(CudaBackend be, string file, string fixedName, string perDName, int d) =>
        (uint)(be.Constant(file, fixedName) + be.Constant(file, perDName) * d);

    /// <summary>The bytes a kernel needs at head dim d, or a refusal naming them, the limit and the largest d that fits.</summary>
    /// Both names come as literals from the launcher (building them here would allocate on every launch).
    public static uint Checked(CudaBackend be, string file, string fixedName, string perDName, int d, DType dtype, string what)
    {
        var bytes = Bytes(be, file, fixedName, perDName, d);
        var limit = be.Context.Device.MaxSharedMemoryPerBlockOptin;
        if (bytes > limit)
            throw new ArgumentOutOfRangeException("q", d,
                $"head dim {d} needs {bytes} bytes of shared memory in the CUDA-core {what}; {be.Context.Device.Name} allows {limit}, " +
                $"so head dims up to {(limit - be.Constant(file, fixedName)) / be.Constant(file, perDName)} run here" +
                (dtype == DType.BFloat16 ? " (bf16 head dims 16, 32, …, 128 run on the tensor cores)" : ""));
        return bytes;
    }
}
