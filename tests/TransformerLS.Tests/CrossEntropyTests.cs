using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

public class CrossEntropyTests
{
    /// <summary>dlogits against central differences of Σ dloss·loss in float64 on the CPU.</summary>
    [Fact]
    public void Backward_matches_finite_differences()
    {
        var be = CpuBackend.Instance;
        using var scope = new TensorScope();
        var rng = new Random(3);
        int n = 4, v = 6;
        var x = be.Empty(new Shape(n, v), DType.Float32);
        var xs = Enumerable.Range(0, n * v).Select(_ => (float)(2 * Conformance.ConformanceRunner.Normal(rng))).ToArray();
        x.CopyFrom(xs);
        var t = be.Empty(new Shape(n), DType.Float32);
        t.CopyFrom([2, -1, 5, 0]);
        float[] dl = [0.5f, 1f, -2f, 1.5f];
        var dloss = be.Empty(new Shape(n), DType.Float32);
        dloss.CopyFrom(dl);
        var loss = be.Empty(new Shape(n), DType.Float32);
        var lse = be.Empty(new Shape(n), DType.Float32);
        var dx = be.Empty(new Shape(n, v), DType.Float32);
        be.CrossEntropy(x, t, loss, lse);
        be.CrossEntropyBackward(x, t, lse, dloss, dx);
        var targets = new double[] { 2, -1, 5, 0 };
        double Objective(double[] at)
        {
            double[] l = new double[n], s = new double[n];
            Ops.CrossEntropy.CrossEntropy.Forward<double>(v, at, targets, l, s);
            return l.Select((li, i) => li * dl[i]).Sum();
        }
        var got = dx.ToArray();
        var h = 1e-5;
        for (var k = 0; k < n * v; k++)
        {
            var p = xs.Select(a => (double)a).ToArray();
            var m = (double[])p.Clone();
            p[k] += h; m[k] -= h;
            Assert.Equal((Objective(p) - Objective(m)) / (2 * h), got[k], 1e-5);
        }
        Assert.All(got.Skip(v).Take(v), g => Assert.Equal(0f, g)); // the ignored row
        Assert.Equal(0f, loss.ToArray()[1]);
    }

    [Fact]
    public void Bad_targets_and_shapes_are_named()
    {
        var be = CpuBackend.Instance;
        using var scope = new TensorScope();
        var x = be.Empty(new Shape(2, 3), DType.Float32);
        be.Fill(x, 0);
        var t = be.Empty(new Shape(2), DType.Float32);
        var loss = be.Empty(new Shape(2), DType.Float32);
        var lse = be.Empty(new Shape(2), DType.Float32);
        t.CopyFrom([1, 3]);
        Assert.Contains("target[1]", Assert.Throws<ArgumentOutOfRangeException>(() => be.CrossEntropy(x, t, loss, lse)).Message);
        t.CopyFrom([1.5f, 0]);
        Assert.Contains("target[0]", Assert.Throws<ArgumentOutOfRangeException>(() => be.CrossEntropy(x, t, loss, lse)).Message);
        Assert.Contains("loss", Assert.Throws<ArgumentException>(() => be.CrossEntropy(x, t, be.Empty(new Shape(3), DType.Float32), lse)).Message);
        Assert.Contains("logits", Assert.Throws<ArgumentException>(() => be.CrossEntropy(be.Empty(new Shape(6), DType.Float32), t, loss, lse)).Message);
        t.CopyFrom([1, 0]);
        Assert.Equal("dloss", Assert.Throws<ArgumentException>(() =>
            be.CrossEntropyBackward(x, t, lse, be.Empty(new Shape(3), DType.Float32), be.Empty(new Shape(2, 3), DType.Float32))).ParamName);
    }

    /// <summary>On the GPU an out-of-range target cannot throw without a host round trip: its loss is NaN, never a wild read.</summary>
    [Fact]
    public void Gpu_out_of_range_target_gives_nan_not_a_wild_read()
    {
        var be = TestEnv.RequireGpu();
        using var scope = new TensorScope();
        var x = be.Empty(new Shape(2, 3), DType.Float32);
        be.Fill(x, 0);
        var t = be.Empty(new Shape(2), DType.Float32);
        t.CopyFrom([1, 1000000]);
        var loss = be.Empty(new Shape(2), DType.Float32);
        var lse = be.Empty(new Shape(2), DType.Float32);
        be.CrossEntropy(x, t, loss, lse);
        var l = loss.ToArray();
        Assert.Equal(Math.Log(3), l[0], 1e-6);
        Assert.True(float.IsNaN(l[1]));
    }
}
