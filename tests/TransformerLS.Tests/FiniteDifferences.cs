using TransformerLS.Tensors;
namespace TransformerLS.Tests;

/// <summary>Central finite differences in float64, shared by every gradient test.</summary>
static class FiniteDifferences
{
    public const double Step = 1e-6, Tolerance = 1e-7;

    public static double[] Rand(Random r, int n, double scale = 1) =>
        [.. Enumerable.Range(0, n).Select(_ => RandomDraw.Normal(r) * scale)];

    public static double Dot(double[] a, double[] b) => a.Zip(b, (p, q) => p * q).Sum();

    /// <summary>d loss / d x[i] by central differences; x[i] is perturbed in place and restored.</summary>
    public static double Derivative(Func<double> loss, double[] x, int i)
    {
        var keep = x[i];
        x[i] = keep + Step; var up = loss();
        x[i] = keep - Step; var down = loss();
        x[i] = keep;
        return (up - down) / (2 * Step);
    }

    /// <summary>d loss / d t[i] by central differences of step <paramref name="h"/>: t[i] is perturbed in place (rounded to t's dtype) and restored.</summary>
    public static double OfElement(Tensors.Tensor t, int i, double h, Func<double> loss)
    {
        var values = t.ToDoubles();
        var keep = values[i];
        values[i] = keep + h; t.CopyFrom(values);
        var up = loss();
        values[i] = keep - h; t.CopyFrom(values);
        var down = loss();
        values[i] = keep; t.CopyFrom(values);
        return (up - down) / (2 * h);
    }

    /// <summary>Every element: |numeric − analytic| &lt; Tolerance·max(1, |numeric|).</summary>
    public static void Check(Func<double> loss, double[] x, double[] analytic, string what)
    {
        for (var i = 0; i < x.Length; i++)
        {
            var numeric = Derivative(loss, x, i);
            Assert.True(Math.Abs(numeric - analytic[i]) < Tolerance * Math.Max(1, Math.Abs(numeric)),
                $"{what}[{i}]: finite difference {numeric:R}, backward {analytic[i]:R}");
        }
    }
}
