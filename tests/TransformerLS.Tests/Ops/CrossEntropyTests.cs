using TransformerLS.Graphs;
using TransformerLS.Ops;
using TransformerLS.Backends;
using TransformerLS.Graphs.Nodes;
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
        var xs = Enumerable.Range(0, n * v).Select(_ => (float)(2 * RandomDraw.Normal(rng))).ToArray();
        x.CopyFrom(xs);
        var t = be.Empty(new Shape(n), DType.Float32);
        t.CopyFrom([2, -1, 5, 0]);
        float[] dl = [0.5f, 1f, -2f, 1.5f];
        var dloss = be.Empty(new Shape(n), DType.Float32);
        dloss.CopyFrom(dl);
        var loss = be.Empty(new Shape(n), DType.Float32);
        var lse = be.Empty(new Shape(n), DType.Float32);
        var dx = be.Empty(new Shape(n, v), DType.Float32);
        CrossEntropy.Forward(be, x, t, loss, lse);
        CrossEntropy.Backward(be, x, t, lse, dloss, dx);
        var targets = new double[] { 2, -1, 5, 0 };
        double Objective(double[] at)
        {
            double[] l = new double[n], s = new double[n];
            Ops.CrossEntropy.Forward<double>(v, at, targets, l, s);
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

    /// <summary>
    /// The graph's mean loss leaves ignored rows out of the divisor, as torch's CrossEntropyLoss(ignore_index) does,
    /// on both backends; with every row ignored the loss and its gradient are 0, not NaN.
    /// </summary>
    [Theory, InlineData("cpu"), InlineData("cuda")]
    public void The_mean_loss_divides_by_the_rows_that_have_a_target(string device)
    {
        IBackend be = device == "cpu" ? new CpuBackend() : TestEnv.RequireGpu();
        var live = be.MemoryStats.LiveBytes; // checked on the private CPU backend only: GPU tests of other classes share the GPU's
        const int n = 5, v = 4;
        var rng = new Random(8);
        double[] xs = [.. Enumerable.Range(0, n * v).Select(_ => RandomDraw.Normal(rng))];
        foreach (double[] targets in new[] { new double[] { 1, -1, 3, -1, 0 }, [-1, -1, -1, -1, -1] })
        {
            using var g = new Graph(be);
            var logits = g.Input("logits", new Shape(n, v), DType.Float32);
            var target = g.Input("target", new Shape(n), DType.Float32);
            var w = be.Empty(new Shape(n, v), DType.Float32);
            w.CopyFrom(xs);
            var weight = g.Parameter("w", w);
            var loss = g.CrossEntropyMean(g.Plus(logits, weight), target);
            using var zeros = be.Empty(new Shape(n, v), DType.Float32);
            using var t = be.Empty(new Shape(n), DType.Float32);
            be.Fill(zeros, 0f);
            t.CopyFrom(targets);
            using var dw = be.Empty(new Shape(n, v), DType.Float32);
            using (var run = new Graphs.Executor(g, new Graphs.ExecutorOptions { Loss = loss }, new Dictionary<string, Tensor> { ["w"] = dw }))
            {
                run.Backward(new Dictionary<Graphs.Value, Tensor> { [logits] = zeros, [target] = t }, 1);
                var valid = Enumerable.Range(0, n).Where(i => targets[i] >= 0).ToArray();
                double Row(int i)
                {
                    var row = xs.AsSpan(i * v, v).ToArray();
                    var m = row.Max();
                    return m + Math.Log(row.Sum(x => Math.Exp(x - m))) - row[(int)targets[i]];
                }
                var expected = valid.Length == 0 ? 0 : valid.Sum(Row) / valid.Length;
                Assert.Equal(expected, run[loss].ToDoubles()[0], 5e-6);
                var grad = dw.ToDoubles();
                for (var i = 0; i < n; i++)
                    for (var j = 0; j < v; j++)
                    {
                        // d mean / d x_ij = (softmax_ij − [j = t_i]) / rows with a target; 0 on ignored rows.
                        var row = xs.AsSpan(i * v, v).ToArray();
                        var p = Math.Exp(row[j]) / row.Sum(Math.Exp);
                        var want = targets[i] < 0 ? 0 : (p - (j == (int)targets[i] ? 1 : 0)) / valid.Length;
                        Assert.Equal(want, grad[i * v + j], 1e-6);
                    }
            }
            w.Dispose();
        }
        if (device == "cpu") Assert.Equal(live, be.MemoryStats.LiveBytes);
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
        Assert.Contains("target[1]", Assert.Throws<ArgumentOutOfRangeException>(() => CrossEntropy.Forward(be, x, t, loss, lse)).Message);
        t.CopyFrom([1.5f, 0]);
        Assert.Contains("target[0]", Assert.Throws<ArgumentOutOfRangeException>(() => CrossEntropy.Forward(be, x, t, loss, lse)).Message);
        Assert.Contains("loss", Assert.Throws<ArgumentException>(() => CrossEntropy.Forward(be, x, t, be.Empty(new Shape(3), DType.Float32), lse)).Message);
        Assert.Contains("logits", Assert.Throws<ArgumentException>(() => CrossEntropy.Forward(be, be.Empty(new Shape(6), DType.Float32), t, loss, lse)).Message);
        t.CopyFrom([1, 0]);
        Assert.Equal("dloss", Assert.Throws<ArgumentException>(() =>
            CrossEntropy.Backward(be, x, t, lse, be.Empty(new Shape(3), DType.Float32), be.Empty(new Shape(2, 3), DType.Float32))).ParamName);
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
        CrossEntropy.Forward(be, x, t, loss, lse);
        var l = loss.ToArray();
        Assert.Equal(Math.Log(3), l[0], 1e-6);
        Assert.True(float.IsNaN(l[1]));
    }
}
