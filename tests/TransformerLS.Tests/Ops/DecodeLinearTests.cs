using TransformerLS.Backends;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>DecodeLinear's argument checks (its numbers are the conformance rows decode_linear_*).</summary>
public class DecodeLinearTests
{
    [Fact]
    public void Bad_outputs_and_norms_are_named()
    {
        var be = CpuBackend.Instance;
        using var scope = new TensorScope();
        Tensor T(DType dt, params int[] dims) => be.Empty(new Shape(dims), dt);
        var f = DType.Float32;
        var (x, w, y) = (T(f, 2, 8), T(f, 3, 8), T(f, 2, 3));
        Assert.Contains("expected 1 to 4", Assert.Throws<ArgumentException>(() => DecodeLinear.Forward(be, x, null, [])).Message);
        Assert.Contains("outputs[0].Weight has shape [3, 7]", Assert.Throws<ArgumentException>(() => DecodeLinear.Forward(be, x, null, [new(T(f, 3, 7), null, y)])).Message);
        Assert.Contains("outputs[1].Y has shape [2, 4]", Assert.Throws<ArgumentException>(() => DecodeLinear.Forward(be, x, null, [new(w, null, y), new(w, null, T(f, 2, 4))])).Message);
        Assert.Equal("outputs[0].Bias", Assert.Throws<ArgumentException>(() => DecodeLinear.Forward(be, x, null, [new(w, T(f, 4), y)])).ParamName);
        Assert.Equal("outputs[0].Weight", Assert.Throws<ArgumentException>(() => DecodeLinear.Forward(be, x, null, [new(T(DType.BFloat16, 3, 8), null, y)])).ParamName);
        Assert.Equal("gelu", Assert.Throws<ArgumentException>(() => DecodeLinear.Forward(be, x, null, [new(w, null, y)], gelu: true, accumulate: true)).ParamName);
        Assert.Equal("norm.Gamma", Assert.Throws<ArgumentException>(() => DecodeLinear.Forward(be, x, new(T(f, 7), T(f, 8), 1e-5f, T(f, 2, 8)), [new(w, null, y)])).ParamName);
        Assert.Equal("norm.Normed", Assert.Throws<ArgumentException>(() => DecodeLinear.Forward(be, x, new(T(f, 8), T(f, 8), 1e-5f, x), [new(w, null, y)])).ParamName);
        Assert.Equal("norm.Eps", Assert.Throws<ArgumentOutOfRangeException>(() => DecodeLinear.Forward(be, x, new(T(f, 8), T(f, 8), 0f, T(f, 2, 8)), [new(w, null, y)])).ParamName);
        Assert.Contains("must not be x", Assert.Throws<ArgumentException>(() => DecodeLinear.Forward(be, y, null, [new(T(f, 3, 3), null, y)])).Message);
    }
}
