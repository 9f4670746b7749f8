using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Conformance;

/// <summary>A reference computation at any floating-point precision.</summary>
internal interface IReference
{
    /// <summary><paramref name="stored"/> rounds a value the way the backend stores an intermediate tensor
    /// (identity for the float64 truth, the case's dtype for the same-precision computation).</summary>
    T[][] Run<T>(T[][] inputs, Func<T, T> stored) where T : IFloatingPointIeee754<T>;
}

/// <summary>The builders every family's Cases file uses: inputs, outputs and the case itself.</summary>
internal static class Case
{
    public static InputSpec In(string name, DType dt, double scale = 1, params int[] dims) => new(name, new Shape(dims), dt, Scale: scale);
    public static OutputSpec Out(string name, DType dt, params int[] dims) => new(name, new Shape(dims), dt);
    /// <summary>A float32 [B, n] padding mask input named "mask".</summary>
    public static InputSpec PaddingMask(int b, int n) => new("mask", new Shape(b, n), DType.Float32, InputKind.PaddingMask);

    /// <summary>A case whose launch needs no setup: <paramref name="run"/> is what is checked and timed.</summary>
    public static OpCase Make(string facade, string op, DType dt, string shape, InputSpec[] ins, OutputSpec[] outs, Action<IBackend, Tensor[], Tensor[]> run,
        IReference r, double flops = 0, double bytes = 0, Func<float, float>? sameInput = null, AdmissibleReference? admissible = null) =>
        Timed(facade, op, dt, shape, ins, outs, (be, i, o) => () => run(be, i, o), r, flops, bytes, sameInput, admissible);

    /// <summary>A case with untimed setup: <paramref name="prepare"/> runs it and returns the launch that is checked and timed.</summary>
    public static OpCase Timed(string facade, string op, DType dt, string shape, InputSpec[] ins, OutputSpec[] outs,
        Func<IBackend, Tensor[], Tensor[], Action> prepare, IReference r, double flops = 0, double bytes = 0, Func<float, float>? sameInput = null,
        AdmissibleReference? admissible = null) => new()
    {
        Facade = facade, Op = op, DType = dt, Shape = shape, Name = $"{op} {dt.Name()} {shape}", Inputs = ins, Outputs = outs, Prepare = prepare,
        Reference64 = i => r.Run<double>(i, x => x), Reference32 = i => r.Run<float>(i, x => (float)dt.Round(x)),
        SamePrecisionInput = sameInput, Flops = flops, Bytes = bytes, Admissible = admissible,
    };
}

/// <summary>
/// The bench shapes (perf mode): bidirectional ops at Tokens = B·N (the peers' 64K tokens per step, d_model 512 =
/// 8 x 64, w 128, r 64); the causal ones at the enwik8 phase-1 shape (L = M = 2048, w 512, l 16, r 1, B = Tokens / L).
/// </summary>
public sealed record KernelShape(int Tokens = 65536, int N = 4096, int Heads = 8, int HeadDim = 64, int Window = 128, int Rank = 64,
    int CausalLength = 2048, int CausalMemory = 2048, int CausalWindow = 512, int ChunkLength = 16, int CausalRank = 1)
{
    public int Batch => Math.Max(1, Tokens / N);
    public int Dim => Heads * HeadDim;
}
