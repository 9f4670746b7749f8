using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of SampleRowsParams in kernels/sampling/sampling.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct SampleRowsParams
{
    public ulong Logits, Uniforms, Tokens;
    public long Rows;
    public int Vocab, TopK;
    public float Temperature, TopP;
}

/// <summary>Launcher of kernels/sampling/: one block a row (its thread count read from the module).</summary>
static class SamplingCuda
{
    const string File = "sampling/sampling.cu";

    public static void SampleRows(CudaBackend be, int n, int v, Tensor logits, Tensor uniforms, float temperature, int topK, float topP, Tensor tokens)
    {
        if (n == 0) return;
        var p = new SampleRowsParams
        {
            Logits = logits.DevicePointer, Uniforms = uniforms.DevicePointer, Tokens = tokens.DevicePointer, Rows = n, Vocab = v,
            TopK = topK, Temperature = temperature, TopP = topP,
        };
        be.Kernel(File, logits.DType == DType.Float32 ? "sample_rows_f32" : "sample_rows_bf16").Launch((uint)n, (uint)be.Constant(File, "sample_rows_threads"), 0, be.Stream, p);
    }
}
