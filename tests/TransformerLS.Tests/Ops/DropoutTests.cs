using TransformerLS.Ops;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

public class DropoutTests
{
    static float[] Run(IBackend be, float[] x, float p, ulong seed)
    {
        using var scope = new TensorScope();
        var t = be.Empty(new Shape(x.Length), DType.Float32);
        t.CopyFrom(x);
        var y = be.Empty(t.Shape, DType.Float32);
        Elementwise.Dropout(be, t, y, p, seed);
        return y.ToArray();
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda")]
    public void Keeps_one_minus_p_scaled_and_reproduces_by_seed(string device)
    {
        IBackend be = device == "cpu" ? CpuBackend.Instance : TestEnv.RequireGpu();
        var ones = Enumerable.Repeat(1f, 200_000).ToArray();
        var y = Run(be, ones, 0.3f, 7);
        var kept = y.Count(v => v != 0);
        Assert.InRange(kept / 200_000.0, 0.695, 0.705);
        Assert.All(y.Where(v => v != 0), v => Assert.Equal(1f / 0.7f, v));
        Assert.Equal(y, Run(be, ones, 0.3f, 7));
        var other = Run(be, ones, 0.3f, 8);
        var agree = y.Zip(other).Count(z => (z.First == 0) == (z.Second == 0)) / 200_000.0;
        Assert.InRange(agree, 0.55, 0.61); // independent masks agree on 0.7² + 0.3² = 58%
        Assert.Equal(ones, Run(be, ones, 0f, 7));
    }

    [Fact]
    public void Bad_probability_is_named()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Run(CpuBackend.Instance, [1f], 1f, 0));
        Assert.Equal("p", e.ParamName);
    }
}
