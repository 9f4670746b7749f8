using TransformerLS.Ops;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>Wrong shapes, dtypes and arguments are rejected with messages that name the argument, the value and what was expected.</summary>
[Collection(GpuCollection.Name)]
public class BadInputTests
{
    public static TheoryData<string> Backends() => new("cpu", "cuda");

    static IBackend Get(string name) => name == "cpu" ? CpuBackend.Instance : TestEnv.RequireGpu();

    static T Throws<T>(Action a, params string[] fragments) where T : Exception
    {
        var e = Assert.Throws<T>(a);
        foreach (var f in fragments) Assert.Contains(f, e.Message);
        return e;
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Matmul_inner_dimension_mismatch(string backend)
    {
        var be = Get(backend);
        using var s = new TensorScope();
        var a = be.Empty(new(2, 3), DType.Float32);
        var b = be.Empty(new(4, 5), DType.Float32);
        var c = be.Empty(new(2, 5), DType.Float32);
        var e = Throws<ArgumentException>(() => MatMul.Forward(be, a, false, b, false, c), "inner dimension 4", "a's 3");
        Assert.Equal("b", e.ParamName);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Matmul_wrong_output_shape_and_dtype(string backend)
    {
        var be = Get(backend);
        using var s = new TensorScope();
        var a = be.Empty(new(2, 3), DType.Float32);
        var b = be.Empty(new(3, 5), DType.Float32);
        Throws<ArgumentException>(() => MatMul.Forward(be, a, false, b, false, be.Empty(new(5, 2), DType.Float32)), "c has shape [5, 2]", "expected [2, 5]");
        Throws<ArgumentException>(() => MatMul.Forward(be, a, false, b, false, be.Empty(new(2, 5), DType.BFloat16)), "c has dtype bfloat16", "expected float32");
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void LayerNorm_rejects_bad_gamma_and_eps(string backend)
    {
        var be = Get(backend);
        using var s = new TensorScope();
        var x = be.Empty(new(4, 8), DType.BFloat16);
        var y = be.Empty(new(4, 8), DType.BFloat16);
        var g = be.Empty(new(8), DType.Float32);
        Throws<ArgumentException>(() => LayerNorm.Forward(be, x, be.Empty(new(7), DType.Float32), g, y, null, null, 1e-5f), "gamma has shape [7]", "expected [8]");
        Throws<ArgumentException>(() => LayerNorm.Forward(be, x, be.Empty(new(8), DType.BFloat16), g, y, null, null, 1e-5f), "gamma has dtype bfloat16");
        Throws<ArgumentOutOfRangeException>(() => LayerNorm.Forward(be, x, g, g, y, null, null, 0f), "eps");
        Throws<ArgumentException>(() => LayerNorm.Forward(be, x, g, g, y, be.Empty(new(4), DType.Float32), null, 1e-5f), "mean and rstd");
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Softmax_axis_out_of_range(string backend)
    {
        var be = Get(backend);
        using var s = new TensorScope();
        var x = be.Empty(new(4, 8), DType.Float32);
        var e = Throws<ArgumentOutOfRangeException>(() => Softmax.Forward(be, x, be.Empty(new(4, 8), DType.Float32), 2), "axis must be in [-2, 2)");
        Assert.Equal("axis", e.ParamName);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Elementwise_shape_mismatch_and_disposed_input(string backend)
    {
        var be = Get(backend);
        using var s = new TensorScope();
        var a = be.Empty(new(3), DType.Float32);
        Throws<ArgumentException>(() => Elementwise.Axpby(be, a, 1, be.Empty(new(4), DType.Float32), 1, a), "b has shape [4]", "expected [3]");
        Throws<ArgumentException>(() => Elementwise.BiasAdd(be, be.Empty(new(2, 3), DType.Float32), be.Empty(new(2), DType.Float32), be.Empty(new(2, 3), DType.Float32)), "bias has shape [2]");
        var gone = be.Empty(new(3), DType.Float32);
        gone.Dispose();
        Throws<ObjectDisposedException>(() => Elementwise.Gelu(be, gone, a), "x was disposed");
    }

    [Fact]
    public void Mixing_backends_is_rejected()
    {
        var gpu = TestEnv.RequireGpu();
        using var s = new TensorScope();
        var cpu = CpuBackend.Instance.Empty(new(3), DType.Float32);
        Throws<ArgumentException>(() => Elementwise.Gelu(gpu, cpu, gpu.Empty(new(3), DType.Float32)), "x is on cpu", "this op runs on cuda:0");
    }

    [Fact]
    public void Tensor_level_errors()
    {
        using var s = new TensorScope();
        var t = CpuBackend.Instance.Empty(new(2, 3), DType.Float32);
        Throws<ArgumentException>(() => t.Reshape(4, 2), "cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)");
        Throws<ArgumentException>(() => t.CopyFrom(new float[5]), "got 5 values", "[2, 3] (6 elements)");
        Throws<ArgumentOutOfRangeException>(() => new Shape(2, -1), "every dimension must be >= 0");
        Throws<ArgumentException>(() => Device.Parse("gpu0"), "'gpu0'", "cpu, cuda, cuda:N");
        Assert.Equal(Device.Cuda(1), Device.Parse("cuda:1"));
    }
}

public class TensorTests
{
    [Fact]
    public void Scope_disposes_what_it_created_except_kept_tensors()
    {
        Tensor inner, kept, outer;
        using (var o = new TensorScope())
        {
            outer = CpuBackend.Instance.Empty(new(1), DType.Float32);
            using (var s = new TensorScope())
            {
                inner = CpuBackend.Instance.Empty(new(2), DType.Float32);
                kept = s.Keep(CpuBackend.Instance.Empty(new(3), DType.Float32));
            }
            Assert.True(inner.IsDisposed);
            Assert.False(kept.IsDisposed);
        }
        Assert.True(kept.IsDisposed);
        Assert.True(outer.IsDisposed);
    }

    [Fact]
    public void Views_do_not_free_their_storage()
    {
        using var t = CpuBackend.Instance.Empty(new(2, 3), DType.Float32);
        t.CopyFrom([1, 2, 3, 4, 5, 6]);
        using (var v = t.Reshape(3, 2)) Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, v.ToArray());
        Assert.Equal(6f, t.ToArray()[5]);
    }

    [Fact]
    public void BFloat16_rounds_to_nearest_even_and_keeps_nan()
    {
        Assert.Equal(1.0f, BFloat16.Round(1.00390625f));          // halfway, even stays
        Assert.Equal(1.015625f, BFloat16.Round(1.01171875f));     // halfway between odd and even: up to even
        Assert.Equal(1.0078125f, BFloat16.Round(1.0079f));
        Assert.True(float.IsNaN(BFloat16.Round(float.NaN)));
        Assert.Equal(float.PositiveInfinity, BFloat16.Round(float.PositiveInfinity));
        using var t = CpuBackend.Instance.Empty(new(3), DType.BFloat16);
        t.CopyFrom([1.00390625f, -2.5f, 3e38f]);
        Assert.Equal(new[] { 1.0f, -2.5f, BFloat16.Round(3e38f) }, t.ToArray());
    }
}

public class LinearInputTests
{
    [Fact]
    public void Linear_rejects_mismatched_weight_and_upstream_gradient()
    {
        var be = CpuBackend.Instance;
        using var s = new TensorScope();
        var x = be.Empty(new(2, 5, 8), DType.Float32);
        var w = be.Empty(new(3, 8), DType.Float32);
        var e = Assert.Throws<ArgumentException>(() => Ops.Linear.Forward(be, x, be.Empty(new(3, 7), DType.Float32), null, be.Empty(new(2, 5, 3), DType.Float32)));
        Assert.Contains("weight has shape [3, 7]; expected [out, 8]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Ops.Linear.Backward(be, be.Empty(new(2, 4, 3), DType.Float32), x, w, null, null, null));
        Assert.Contains("dy has shape [2, 4, 3]; expected [2, 5, 3]", e.Message);
    }
}
