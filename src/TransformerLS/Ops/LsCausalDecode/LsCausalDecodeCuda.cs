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
    public ulong Part;
    public int Splits, SplitKeys;
}

/// <summary>
/// kernels/ls_causal_decode/ls_causal_decode.cu: blocks of (sequence, head) x a split of <see cref="SplitKeys"/> keys, CUDA cores,
/// fp32 accumulation, then a combine over the splits in order (flash-decoding; deterministic).
/// </summary>
static class LsCausalDecodeCuda
{
    const string File = "ls_causal_decode/ls_causal_decode.cu";

    /// <summary>Keys per split: small enough that a batch of one spreads a long key list over many SMs.</summary>
    const int SplitKeys = 64;

    /// <summary>The most keys a query can see, w window keys and (Mc + Lb)·r compressed ones, in splits.</summary>
    static int Splits(LsDecodeGeometry g) => (int)(((long)g.W + (long)(g.Mc + g.Lb) * g.R + SplitKeys - 1) / SplitKeys);

    /// <summary>The split partials [B·H, splits, D + 2] fp32 the forward allocates while it runs.</summary>
    public static long ScratchBytes(LsDecodeGeometry g) => 4L * g.B * g.H * Splits(g) * (g.D + 2);

    public static void Forward(CudaBackend be, LsDecodeGeometry g, in LsDecodeInputs x, Tensor o)
    {
        var splits = Splits(g);
        var p = new LsDecodeParams
        {
            Q = x.Q.DevicePointer, KW = x.KW.DevicePointer, VW = x.VW.DevicePointer, U = x.U.DevicePointer, VB = x.VBias.DevicePointer,
            Rel = x.Rel.DevicePointer, KRing = x.KRing.DevicePointer, VRing = x.VRing.DevicePointer, KBlock = x.KBlock.DevicePointer,
            VBlock = x.VBlock.DevicePointer, RelC = x.RelC.DevicePointer, State = x.State.DevicePointer, O = o.DevicePointer,
            B = g.B, H = g.H, D = g.D, W = g.W, R = g.R, Mc = g.Mc, C = g.C, Lb = g.Lb, Nr = g.Nr, Scale = g.Scale,
            Splits = splits, SplitKeys = SplitKeys,
        };
        // Shared memory of the split block's carve-up, per key and per head-dim channel as the kernel exports it (one source).
        var smem = (uint)(be.Constant(File, "ls_causal_decode_smem_per_key") * SplitKeys + be.Constant(File, "ls_causal_decode_smem_per_d") * g.D);
        var threads = (uint)be.Constant(File, "ls_causal_decode_threads");
        var f32 = x.Q.DType == DType.Float32;
        var bytes = ScratchBytes(g);
        var part = be.Context.Allocator.Allocate(bytes);
        try
        {
            p.Part = part;
            be.Kernel(File, f32 ? "ls_causal_decode_f32" : "ls_causal_decode_bf16").Launch(new Dim3((uint)(g.B * g.H), (uint)splits, 1), threads, smem, be.Stream, p);
            be.Kernel(File, f32 ? "ls_causal_decode_combine_f32" : "ls_causal_decode_combine_bf16").Launch((uint)(g.B * g.H), threads, 0, be.Stream, p);
        }
        finally
        {
            be.Context.Allocator.Free(part, bytes);
        }
    }
}
