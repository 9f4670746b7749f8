using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>
/// The CPU side of every op facade, one adapter for all of them: reads each input exactly as float64, runs the
/// family's generic reference on double arrays, and rounds each output once to its tensor's dtype. A null tensor
/// reads as an empty array and is not written. Outputs are fresh zeros unless named in <c>read</c> (bit k: output k
/// is read first, for references that add to it).
/// </summary>
static class CpuReference
{
    public delegate void Body(double[][] inputs, double[][] outputs);
    public delegate void Body<TState>(TState state, double[][] inputs, double[][] outputs);

    // The facades pass their scalars as state to static lambdas: a lambda capturing a facade's parameters would make
    // the compiler allocate its closure on entry to the facade, on the CUDA path too (which must allocate nothing).
    public static void Run<TState>(ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor?> outputs, TState state, Body<TState> body, uint read = 0)
    {
        var (i, o) = Load(inputs, outputs, read);
        body(state, i, o);
        Store(outputs, o);
    }

    public static void Run(ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor?> outputs, Body body, uint read = 0)
    {
        var (i, o) = Load(inputs, outputs, read);
        body(i, o);
        Store(outputs, o);
    }

    static (double[][], double[][]) Load(ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor?> outputs, uint read)
    {
        var i = new double[inputs.Length][];
        for (var k = 0; k < inputs.Length; k++) i[k] = inputs[k] is { } t ? CpuBackend.Read(t) : [];
        var o = new double[outputs.Length][];
        for (var k = 0; k < outputs.Length; k++)
            o[k] = outputs[k] is not { } t ? [] : (read >> k & 1) != 0 ? CpuBackend.Read(t) : new double[t.Count];
        return (i, o);
    }

    static void Store(ReadOnlySpan<Tensor?> outputs, double[][] o)
    {
        for (var k = 0; k < outputs.Length; k++)
            if (outputs[k] is { } t) CpuBackend.Write(t, o[k]);
    }

    /// <summary>Bit k set for each true flag: the <c>read</c> mask of <see cref="Run"/>.</summary>
    public static uint Mask(params ReadOnlySpan<bool> flags)
    {
        uint m = 0;
        for (var k = 0; k < flags.Length; k++) if (flags[k]) m |= 1u << k;
        return m;
    }
}
