using TransformerLS.Ops;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

public class EmbeddingTests
{
    static Tensor Make(IBackend be, Shape s, DType dt, float[] values)
    {
        var t = be.Empty(s, dt);
        t.CopyFrom(values);
        return t;
    }

    /// <summary>The lookup is linear in W, so its gradient is its adjoint: ⟨dy, E(W)⟩ = ⟨E*(dy), W⟩ for random W and dy.</summary>
    [Fact]
    public void Backward_is_the_adjoint_of_the_lookup()
    {
        var be = CpuBackend.Instance;
        using var scope = new TensorScope();
        var rng = new Random(11);
        float[] R(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)RandomDraw.Normal(rng))];
        int v = 7, d = 5;
        float[] tokens = [3, 0, 6, 3, -1, 3];
        float[] w = R(v * d), dy = R(tokens.Length * d);
        var y = be.Empty(new Shape(tokens.Length, d), DType.Float32);
        var dw = be.Empty(new Shape(v, d), DType.Float32);
        var t = Make(be, new Shape(tokens.Length), DType.Float32, tokens);
        Embedding.Forward(be, Make(be, new Shape(v, d), DType.Float32, w), t, y);
        Embedding.Backward(be, t, Make(be, new Shape(tokens.Length, d), DType.Float32, dy), dw);
        var lhs = y.ToArray().Zip(dy, (a, b) => (double)a * b).Sum();
        var rhs = dw.ToArray().Zip(w, (a, b) => (double)a * b).Sum();
        Assert.Equal(lhs, rhs, 1e-5);
        Assert.All(y.ToArray().Skip(4 * d).Take(d), x => Assert.Equal(0f, x)); // the padding token's row
        Assert.All(dw.ToArray().Skip(1 * d).Take(d), x => Assert.Equal(0f, x)); // token 1 never appears
    }

    [Fact]
    public void Bad_tokens_and_shapes_are_named()
    {
        var be = CpuBackend.Instance;
        using var scope = new TensorScope();
        var w = Make(be, new Shape(4, 2), DType.Float32, new float[8]);
        var y = be.Empty(new Shape(2, 2), DType.Float32);
        Assert.Contains("tokens[1]", Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.Forward(be, w, Make(be, new Shape(2), DType.Float32, [0, 4]), y)).Message);
        Assert.Contains("tokens[0]", Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.Forward(be, w, Make(be, new Shape(2), DType.Float32, [0.5f, 1]), y)).Message);
        Assert.Contains("y", Assert.Throws<ArgumentException>(() => Embedding.Forward(be, w, Make(be, new Shape(3), DType.Float32, [0, 1, 2]), y)).Message);
        Assert.Equal("dweight", Assert.Throws<ArgumentException>(() =>
            Embedding.Backward(be, Make(be, new Shape(2), DType.Float32, [0, 1]), y, Make(be, new Shape(8), DType.Float32, new float[8]))).ParamName);
        Assert.Contains("dweight", Assert.Throws<ArgumentException>(() =>
            Embedding.Backward(be, Make(be, new Shape(2), DType.Float32, [0, 1]), y, Make(be, new Shape(4, 2), DType.BFloat16, new float[8]))).Message);
    }

    [Fact]
    public void Gpu_out_of_range_token_gives_a_nan_row_not_a_wild_read()
    {
        var be = TestEnv.RequireGpu();
        using var scope = new TensorScope();
        var w = Make(be, new Shape(4, 2), DType.Float32, [1, 2, 3, 4, 5, 6, 7, 8]);
        var y = be.Empty(new Shape(2, 2), DType.Float32);
        Embedding.Forward(be, w, Make(be, new Shape(2), DType.Float32, [2, 1_000_000]), y);
        var r = y.ToArray();
        Assert.Equal([5f, 6f], r[..2]);
        Assert.True(float.IsNaN(r[2]) && float.IsNaN(r[3]));
    }
}
