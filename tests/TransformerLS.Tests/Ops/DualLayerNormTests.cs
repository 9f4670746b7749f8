using TransformerLS.Ops;

using static TransformerLS.Tests.FiniteDifferences;

namespace TransformerLS.Tests;

public class DualLayerNormTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Backward_matches_finite_differences(bool tokenMajor)
    {
        var g = new DualLayerNormGeometry(1, 2, 3, 2, 2, tokenMajor);
        var rng = new Random(4);
        double[] x = Rand(rng, 24, 2), gamma = Rand(rng, 6), beta = Rand(rng, 6), dy = Rand(rng, 24);
        double[] mean = new double[4], rstd = new double[4];
        double Loss()
        {
            var y = new double[24];
            DualLayerNorm.Forward(g, x, gamma, beta, y, new double[4], new double[4], 1e-5);
            return Dot(dy, y);
        }
        DualLayerNorm.Forward(g, x, gamma, beta, new double[24], mean, rstd, 1e-5);
        double[] dx = new double[24], dg = new double[6], db = new double[6];
        DualLayerNorm.Backward(g, dy, x, gamma, mean, rstd, dx, dg, db);
        Check(Loss, x, dx, "dx");
        Check(Loss, gamma, dg, "dgamma");
        Check(Loss, beta, db, "dbeta");
    }

    /// <summary>Token-major in, head-split out: channel h·d + c of token t lands at [b, h, t, c], normalized over all heads.</summary>
    [Fact]
    public void Normalizes_across_heads_and_splits_them()
    {
        var g = new DualLayerNormGeometry(1, 1, 2, 3, 2, true);
        double[] x = [1, 2, 3, 4, /**/ 0, 0, 0, 8, /**/ -1, 1, -1, 1];
        double[] gamma = [1, 1, 1, 1], beta = [0, 0, 0, 0], y = new double[12];
        DualLayerNorm.Forward(g, x, gamma, beta, y, new double[3], new double[3], 1e-5);
        // Token 0: mean 2.5, variance 1.25 over all four channels; head 1 holds channels 2 and 3.
        var rs = 1 / Math.Sqrt(1.25 + 1e-5);
        Assert.Equal(-1.5 * rs, y[0], 12);
        Assert.Equal(0.5 * rs, y[6], 12);
        Assert.Equal(1.5 * rs, y[7], 12);
        // Token 2 lies at t = 2 of each head.
        Assert.Equal(-1 / Math.Sqrt(1 + 1e-5), y[4], 12);
        Assert.Equal(1 / Math.Sqrt(1 + 1e-5), y[11], 12);
    }
}
