using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of OptimizerParams in kernels/optimizer/optimizer.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct OptimizerParams
{
    public ulong Param, Grad, M, V, Copy, SumSq, Bad;
    public long N;
    public float Lr, Beta1, Beta2, Eps, WeightDecay, MaxNorm, Bias1, Bias2;
    public int Decoupled, Step;
}

/// <summary>Mirror of AdamTensorParams in kernels/optimizer/optimizer.cuh: one row of a group's device table.</summary>
[StructLayout(LayoutKind.Sequential)]
struct AdamTensorParams
{
    public ulong Param, Grad, M, V, Copy;
    public long N;
    public int FirstChunk, GradBf16;
}

/// <summary>Mirror of AdamMultiParams in kernels/optimizer/optimizer.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct AdamMultiParams
{
    public ulong Tensors, ChunkTensor, Partial, SumSq, Bad, Hyper;
    public long Chunk;
    public int Chunks;
    public float Lr, Beta1, Beta2, Eps, WeightDecay, MaxNorm, Bias1, Bias2;
    public int Decoupled, Step;
}

/// <summary>Launchers for kernels/optimizer/.</summary>
static class OptimizerCuda
{
    const string File = "optimizer/optimizer.cu";
    const int Threads = 256;

    static Dim3 Grid(long n) => (uint)Math.Clamp((n + Threads - 1) / Threads, 1, 1024);

    public static void SumOfSquares(CudaBackend be, Tensor x, Tensor acc)
    {
        var p = new OptimizerParams { Grad = x.DevicePointer, SumSq = acc.DevicePointer, N = x.Count };
        if (p.N > 0) be.Kernel(File, x.DType == DType.Float32 ? "sum_of_squares_f32" : "sum_of_squares_bf16").Launch(Grid(p.N), Threads, 0, be.Stream, p);
    }

    public static void AdamStep(CudaBackend be, in AdamHyper h, Tensor param, Tensor grad, Tensor m, Tensor v, Tensor? sumSquares, Tensor? copy, Tensor? badStep)
    {
        var p = new OptimizerParams
        {
            Param = param.DevicePointer, Grad = grad.DevicePointer, M = m.DevicePointer, V = v.DevicePointer,
            Copy = copy?.DevicePointer ?? 0, SumSq = sumSquares?.DevicePointer ?? 0, Bad = badStep?.DevicePointer ?? 0, N = param.Count,
            Lr = h.Lr, Beta1 = h.Beta1, Beta2 = h.Beta2, Eps = h.Eps, WeightDecay = h.WeightDecay, MaxNorm = h.MaxNorm,
            Bias1 = h.Bias1, Bias2 = h.Bias2, Decoupled = h.Decoupled ? 1 : 0, Step = h.Step,
        };
        if (p.N > 0) be.Kernel(File, grad.DType == DType.Float32 ? "adam_step_f32" : "adam_step_bf16").Launch(Grid(p.N), Threads, 0, be.Stream, p);
    }

    /// <summary>Writes a group's table (one AdamTensorParams a parameter) and chunk map to device memory, once.</summary>
    public static void WriteTable(CudaBackend be, AdamGroup g)
    {
        var rows = new AdamTensorParams[g.Entries.Count];
        var map = new int[g.Chunks];
        var chunk = 0;
        for (var i = 0; i < rows.Length; i++)
        {
            var e = g.Entries[i];
            rows[i] = new AdamTensorParams
            {
                Param = e.Param.DevicePointer, Grad = e.Grad.DevicePointer, M = e.M.DevicePointer, V = e.V.DevicePointer,
                Copy = e.Copy?.DevicePointer ?? 0, N = e.Param.Count, FirstChunk = chunk, GradBf16 = e.Grad.DType == DType.BFloat16 ? 1 : 0,
            };
            for (var c = (e.Param.Count + AdamGroup.ChunkElements - 1) / AdamGroup.ChunkElements; c > 0; c--) map[chunk++] = i;
        }
        var table = MemoryMarshal.AsBytes(rows.AsSpan());
        g.Table = be.Empty(new Shape(table.Length / 4), DType.Float32);
        g.ChunkMap = be.Empty(new Shape(map.Length), DType.Float32);
        g.Partial = be.Empty(new Shape(2 * g.Chunks), DType.Float32);
        be.CopyFromHost(g.Table, table);
        be.CopyFromHost(g.ChunkMap, MemoryMarshal.AsBytes(map.AsSpan()));
    }

    /// <summary>Σ g² of the group's gradients by chunks (fixed order), then every tensor's step: two launches.</summary>
    public static void AdamStepAll(CudaBackend be, in AdamHyper h, AdamGroup g, Tensor? sumSquares, Tensor? badStep, Tensor? hyper)
    {
        if (g.Chunks == 0) return;
        var p = new AdamMultiParams
        {
            Tensors = g.Table!.DevicePointer, ChunkTensor = g.ChunkMap!.DevicePointer, Partial = g.Partial!.DevicePointer,
            SumSq = sumSquares?.DevicePointer ?? 0, Bad = badStep?.DevicePointer ?? 0, Hyper = hyper?.DevicePointer ?? 0, Chunk = AdamGroup.ChunkElements, Chunks = g.Chunks,
            Lr = h.Lr, Beta1 = h.Beta1, Beta2 = h.Beta2, Eps = h.Eps, WeightDecay = h.WeightDecay, MaxNorm = h.MaxNorm,
            Bias1 = h.Bias1, Bias2 = h.Bias2, Decoupled = h.Decoupled ? 1 : 0, Step = h.Step,
        };
        be.Kernel(File, "adam_multi_sum_of_squares").Launch((uint)g.Chunks, Threads, 0, be.Stream, p);
        be.Kernel(File, "adam_multi_step").Launch((uint)g.Chunks, Threads, 0, be.Stream, p);
    }

    /// <summary>Writes [lr, bias1, bias2, step] into <paramref name="hyper"/>: four stream-ordered 32-bit memsets (no host wait, nothing allocated).</summary>
    public static void WriteHyper(CudaBackend be, Tensor hyper, in AdamHyper h)
    {
        CudaMemory.Fill32(be.Stream, hyper.DevicePointer, BitConverter.SingleToUInt32Bits(h.Lr), 1);
        CudaMemory.Fill32(be.Stream, hyper.DevicePointer + 4, BitConverter.SingleToUInt32Bits(h.Bias1), 1);
        CudaMemory.Fill32(be.Stream, hyper.DevicePointer + 8, BitConverter.SingleToUInt32Bits(h.Bias2), 1);
        CudaMemory.Fill32(be.Stream, hyper.DevicePointer + 12, BitConverter.SingleToUInt32Bits(h.Step), 1);
    }
}
