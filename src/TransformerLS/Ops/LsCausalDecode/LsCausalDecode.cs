using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The LsCausalDecode family: this facade; LsCausalDecode.Reference.cs (checks, reference); LsCausalDecodeCuda.cs
// (launcher, params mirror); LsCausalDecodeCases.cs (test and bench cases). No graph node: decoding runs op by op
// (Models/CausalLmDecoder.cs). See Ops/README.md.

/// <summary>
/// One query per sequence of the causal LS attention, reading the decoder's caches in place (kernels/ls_causal_decode/);
/// checks once, then CUDA or the CPU reference.
/// </summary>
public static partial class LsCausalDecode
{
    /// <summary>
    /// The newest position of each sequence attends, under one softmax, to the last nw positions of its window ring and
    /// to its visible compressed keys: the <paramref name="cacheChunks"/> cache chunks of its block (ring slots from
    /// state's first-chunk slot on) then its block's first qi chunks. Shapes: <see cref="LsDecodeInputs"/>; o: like q.
    /// </summary>
    public static void Forward(IBackend be, LsCausalConfig cfg, int cacheChunks, in LsDecodeInputs x, Tensor o)
    {
        var g = CheckForward(be, cfg, cacheChunks, x, o);
        Attend(be, g, x, o);
    }

    /// <summary>
    /// A decode step's append, then the attention of <see cref="Forward(IBackend, LsCausalConfig, int, in LsDecodeInputs, Tensor)"/>:
    /// this position's window key and value (LN_W of its raw ones) into the window ring and its rows into the chunk buffers
    /// (<see cref="LsDecodeAppend"/>), which the attention then sees. On the GPU one launch where the vector kernel runs
    /// (the block holding window age 0 does the append); elsewhere DualLayerNorm and WriteRows first: the same result.
    /// </summary>
    public static void Forward(IBackend be, LsCausalConfig cfg, int cacheChunks, in LsDecodeInputs x, in LsDecodeAppend append, Tensor o)
    {
        var g = CheckForward(be, cfg, cacheChunks, x, o);
        CheckAppend(be, g, x, append);
        if (be is CudaBackend cuda && LsCausalDecodeCuda.Vectorized(g, x, o)) { LsCausalDecodeCuda.Forward(cuda, g, x, o, append); return; }
        if (be is not CudaBackend) CheckAppendRows(g, x, append);
        Compose(be, g, x, append);
        Attend(be, g, x, o);
    }

    static void Attend(IBackend be, LsDecodeGeometry g, in LsDecodeInputs x, Tensor o)
    {
        if (be is CudaBackend cuda) { LsCausalDecodeCuda.Forward(cuda, g, x, o); return; }
        CpuReference.Run([x.Q, x.KW, x.VW, x.U, x.VBias, x.Rel, x.KRing, x.VRing, x.KBlock, x.VBlock, x.RelC, x.State], [o], g,
            static (g, i, r) => Forward(g, i, r[0]));
    }
}
