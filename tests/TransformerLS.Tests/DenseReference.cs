namespace TransformerLS.Tests;

/// <summary>
/// Section 9 of the reference written the slow, obvious way, in float64, from nothing but the module's parameter
/// values: explicit key sets, one softmax per query. The module tests compare the library's composed ops with it.
/// </summary>
static class DenseReference
{
    public static double[] Row(double[] m, int row, int cols) => m.AsSpan(row * cols, cols).ToArray();

    /// <summary>x [T, in] · Wᵀ [in, out] + b.</summary>
    public static double[][] Linear(double[][] x, double[] w, double[]? b, int outDim)
    {
        var inDim = w.Length / outDim;
        return [.. x.Select(r => Enumerable.Range(0, outDim).Select(o =>
        {
            var s = b?[o] ?? 0;
            for (var i = 0; i < inDim; i++) s += r[i] * w[o * inDim + i];
            return s;
        }).ToArray())];
    }

    public static double[] LayerNorm(double[] x, double[] gamma, double[] beta, double eps = 1e-5)
    {
        var mean = x.Average();
        var rstd = 1 / Math.Sqrt(x.Select(v => (v - mean) * (v - mean)).Average() + eps);
        return [.. x.Select((v, i) => (v - mean) * rstd * gamma[i] + beta[i])];
    }

    public static double[] Slice(double[] v, int h, int d) => v.AsSpan(h * d, d).ToArray();
    public static double Dot(double[] a, double[] b) => a.Zip(b, (x, y) => x * y).Sum();

    /// <summary>Softmax-weighted sum of values (logits −inf are excluded; at least one must be finite).</summary>
    public static double[] Attend(IList<double> logits, IList<double[]> values)
    {
        var m = logits.Max();
        var e = logits.Select(z => double.IsNegativeInfinity(z) ? 0 : Math.Exp(z - m)).ToArray();
        var sum = e.Sum();
        var y = new double[values[0].Length];
        for (var j = 0; j < e.Length; j++)
            for (var c = 0; c < y.Length; c++) y[c] += e[j] / sum * values[j][c];
        return y;
    }

    /// <summary>P over the given positions of one score column (softmax), zero where excluded.</summary>
    public static double[] ColumnSoftmax(double[][] scores, int col, IList<int> positions)
    {
        var p = new double[scores.Length];
        if (positions.Count == 0) return p;
        var m = positions.Max(t => scores[t][col]);
        foreach (var t in positions) p[t] = Math.Exp(scores[t][col] - m);
        var s = p.Sum();
        foreach (var t in positions) p[t] /= s;
        return p;
    }

    public static double[] Sinusoid(int pos, int dim) =>
        [.. Enumerable.Range(0, dim).Select(i => i < dim / 2 ? Math.Sin(pos / Math.Pow(10000, 2.0 * i / dim)) : Math.Cos(pos / Math.Pow(10000, 2.0 * (i - dim / 2) / dim)))];
}
