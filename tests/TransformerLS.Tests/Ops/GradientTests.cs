using TransformerLS.Ops;
using LN = TransformerLS.Ops.LayerNorm;

using static TransformerLS.Tests.FiniteDifferences;

namespace TransformerLS.Tests;

/// <summary>
/// Every backward reference against central finite differences of its forward reference, in float64 on
/// small shapes: L = Σ dy·f(x), so dL/dx_i must equal the backward's dx_i.
/// </summary>
public class GradientTests
{
    /// <summary>Checks d(Σ dy·f(inputs))/d(inputs[which]) numerically against <paramref name="analytic"/>.</summary>
    static void CheckFd(Func<double[][], double[]> f, double[][] inputs, double[] dy, int which, double[] analytic, string what) =>
        FiniteDifferences.Check(() => Dot(dy, f(inputs)), inputs[which], analytic, what);

    [Fact]
    public void Gelu()
    {
        var r = new Random(1);
        double[] x = Rand(r, 40, 2), dy = Rand(r, 40), dx = new double[40];
        Elementwise.GeluBackward<double>(x, dy, dx);
        CheckFd(i => { var y = new double[40]; Elementwise.Gelu<double>(i[0], y); return y; }, [x], dy, 0, dx, "gelu dx");
    }

    [Fact]
    public void Erf_matches_known_values()
    {
        // Values from an independent implementation (C99 libm erf, printed with 17 significant digits).
        Assert.Equal(0.52049987781304652, Elementwise.Erf(0.5), 1e-15);
        Assert.Equal(0.84270079294971487, Elementwise.Erf(1.0), 1e-15);
        Assert.Equal(0.99532226501895271, Elementwise.Erf(2.0), 1e-15);
        Assert.Equal(0.99997790950300136, Elementwise.Erf(3.0), 1e-15);
        Assert.Equal(-0.99999998458274209, Elementwise.Erf(-4.0), 1e-15);
        Assert.Equal(0.0, Elementwise.Erf(0.0));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void MatMul_gradients(bool ta, bool tb)
    {
        const int m = 3, n = 4, k = 5;
        var r = new Random(2);
        double[] a = Rand(r, m * k), b = Rand(r, k * n), dc = Rand(r, m * n);
        var g = new MatMulGeometry(1, m, n, k, 0, 0, 0);
        double[] F(double[][] i) { var c = new double[m * n]; MatMul.Reference<double>(g, i[0], ta, i[1], tb, c, 1, 0); return c; }
        // dA = dC·op(B)ᵀ (stored transposed if ta), dB = op(A)ᵀ·dC (stored transposed if tb)
        double[] da = new double[m * k], db = new double[k * n];
        if (!ta) MatMul.Reference<double>(new(1, m, k, n, 0, 0, 0), dc, false, b, !tb, da, 1, 0);
        else MatMul.Reference<double>(new(1, k, m, n, 0, 0, 0), b, tb, dc, true, da, 1, 0);
        if (!tb) MatMul.Reference<double>(new(1, k, n, m, 0, 0, 0), a, !ta, dc, false, db, 1, 0);
        else MatMul.Reference<double>(new(1, n, k, m, 0, 0, 0), dc, true, a, ta, db, 1, 0);
        CheckFd(F, [a, b], dc, 0, da, "dA");
        CheckFd(F, [a, b], dc, 1, db, "dB");
    }

    [Theory]
    [InlineData(3, 8)]
    [InlineData(1, 1)]
    [InlineData(2, 33)]
    public void LayerNorm_gradients(int rows, int cols)
    {
        var r = new Random(3);
        double[] x = Rand(r, rows * cols, 2), gamma = Rand(r, cols), beta = Rand(r, cols), dy = Rand(r, rows * cols);
        double[] mean = new double[rows], rstd = new double[rows], y = new double[rows * cols];
        LN.Forward<double>(rows, cols, x, gamma, beta, y, mean, rstd, 1e-5);
        double[] dx = new double[rows * cols], dg = new double[cols], db = new double[cols];
        LN.Backward<double>(rows, cols, dy, x, gamma, mean, rstd, dx, dg, db, false);
        double[] F(double[][] i) { var o = new double[rows * cols]; LN.Forward<double>(rows, cols, i[0], i[1], i[2], o, default, default, 1e-5); return o; }
        if (cols > 1) CheckFd(F, [x, gamma, beta], dy, 0, dx, "dx"); // with one column the output is constant in x
        CheckFd(F, [x, gamma, beta], dy, 1, dg, "dgamma");
        CheckFd(F, [x, gamma, beta], dy, 2, db, "dbeta");
    }

    [Theory]
    [InlineData(new[] { 3, 7 }, -1)]
    [InlineData(new[] { 2, 5, 3 }, 1)]
    public void Softmax_gradients(int[] dims, int axis)
    {
        var s = new Tensors.Shape(dims);
        var ax = s.Axis(axis, nameof(axis));
        var g = new SoftmaxGeometry(s.Product(0, ax), s[ax], s.Product(ax + 1, s.Rank));
        var r = new Random(4);
        var n = (int)s.Count;
        double[] x = Rand(r, n, 2), dy = Rand(r, n), y = new double[n], dx = new double[n];
        Softmax.Forward<double>(g, x, y);
        Softmax.Backward<double>(g, y, dy, dx);
        CheckFd(i => { var o = new double[n]; Softmax.Forward<double>(g, i[0], o); return o; }, [x], dy, 0, dx, "dx");
    }

    [Fact]
    public void Linear_backward_matches_finite_differences_on_the_cpu_backend()
    {
        // The composite Linear op on the CPU backend, float32 tensors, against float64 FD of its forward.
        var be = Backends.CpuBackend.Instance;
        using var scope = new Tensors.TensorScope();
        const int rows = 4, nin = 6, nout = 3;
        var r = new Random(5);
        var x = be.Empty(new(rows, nin), Tensors.DType.Float32); x.CopyFrom([.. Rand(r, rows * nin).Select(v => (float)v)]);
        var w = be.Empty(new(nout, nin), Tensors.DType.Float32); w.CopyFrom([.. Rand(r, nout * nin).Select(v => (float)v)]);
        var dy = be.Empty(new(rows, nout), Tensors.DType.Float32); dy.CopyFrom([.. Rand(r, rows * nout).Select(v => (float)v)]);
        var dw = be.Empty(new(nout, nin), Tensors.DType.Float32);
        Ops.Linear.Backward(be, dy, x, w, null, dw, null);
        double[] xs = [.. x.ToArray().Select(v => (double)v)], ws = [.. w.ToArray().Select(v => (double)v)], dys = [.. dy.ToArray().Select(v => (double)v)];
        double[] F(double[][] i) { var o = new double[rows * nout]; MatMul.Reference<double>(new(1, rows, nout, nin, 0, 0, 0), i[0], false, i[1], true, o, 1, 0); return o; }
        var analytic = dw.ToArray().Select(v => (double)v).ToArray();
        var x2 = new[] { xs, ws };
        for (var i = 0; i < ws.Length; i++)
        {
            var numeric = FiniteDifferences.Derivative(() => Dot(dys, F(x2)), ws, i);
            Assert.Equal(numeric, analytic[i], 4); // analytic is rounded to float32
        }
    }
}
