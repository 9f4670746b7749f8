using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LsDecodeParams in kernels/ls_causal_decode/ls_causal_decode.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LsDecodeParams
{
    public ulong Q, KW, VW, U, VB, Rel, KRing, VRing, KBlock, VBlock, RelC, State, O;
    public int B, H, D, W, R, Mc, C, Lb, Nr;
    public float Scale;
}

/// <summary>kernels/ls_causal_decode/ls_causal_decode.cu: one block per (sequence, head), CUDA cores, fp32 accumulation.</summary>
static class LsCausalDecodeCuda
{
    const string File = "ls_causal_decode/ls_causal_decode.cu";

    public static void Forward(CudaBackend be, LsDecodeGeometry g, in LsDecodeInputs x, Tensor o)
    {
        var p = new LsDecodeParams
        {
            Q = x.Q.DevicePointer, KW = x.KW.DevicePointer, VW = x.VW.DevicePointer, U = x.U.DevicePointer, VB = x.VBias.DevicePointer,
            Rel = x.Rel.DevicePointer, KRing = x.KRing.DevicePointer, VRing = x.VRing.DevicePointer, KBlock = x.KBlock.DevicePointer,
            VBlock = x.VBlock.DevicePointer, RelC = x.RelC.DevicePointer, State = x.State.DevicePointer, O = o.DevicePointer,
            B = g.B, H = g.H, D = g.D, W = g.W, R = g.R, Mc = g.Mc, C = g.C, Lb = g.Lb, Nr = g.Nr, Scale = g.Scale,
        };
        // Shared memory: the logits of every key a query can see (w window keys, (Mc + Lb)·r compressed) and σq, σq+u, σq+v.
        var keys = (long)g.W + (long)(g.Mc + g.Lb) * g.R;
        var smem = 4 * (keys + 3L * g.D);
        var threads = (uint)be.Constant(File, "ls_causal_decode_threads");
        // CudaKernel.Launch raises the opt-in above 48 KiB and names the kernel where the device allows less.
        be.Kernel(File, x.Q.DType == DType.Float32 ? "ls_causal_decode_f32" : "ls_causal_decode_bf16")
            .Launch(new Dim3((uint)(g.B * g.H), 1, 1), threads, (uint)smem, be.Stream, p);
    }
}
