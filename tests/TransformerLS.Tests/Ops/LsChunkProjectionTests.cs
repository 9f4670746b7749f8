using TransformerLS.Ops;

using static TransformerLS.Tests.FiniteDifferences;

namespace TransformerLS.Tests;

public class LsChunkProjectionTests
{
    [Theory]
    [InlineData(2, 1, 7, 3, 2, 3, true)]
    [InlineData(1, 2, 8, 2, 1, 4, false)]
    [InlineData(1, 1, 5, 2, 3, 1, false)]
    public void Backward_matches_finite_differences(int B, int H, int T, int d, int r, int l, bool masked)
    {
        var g = new LsChunkProjectionGeometry(B, H, T, d, r, l);
        var rng = new Random(3);
        double[] s = Rand(rng, B * T * H * r), x = Rand(rng, B * H * T * d), dy = Rand(rng, B * H * g.Chunks * r * d);
        var mask = masked ? Enumerable.Range(0, B * T).Select(i => i % 4 == 1 ? 0.0 : 1.0).ToArray() : [];
        double Loss()
        {
            var y = new double[dy.Length];
            LsChunkProjection.Forward(g, s, x, mask, y);
            return Dot(dy, y);
        }
        double[] ds = new double[s.Length], dx = new double[x.Length];
        LsChunkProjection.Backward(g, s, x, mask, dy, ds, dx, false);
        Check(Loss, s, ds, "dscores");
        Check(Loss, x, dx, "dx");
    }

    [Fact]
    public void A_chunk_without_tokens_gives_zero_rows_and_gradients()
    {
        var g = new LsChunkProjectionGeometry(1, 1, 6, 2, 1, 3);
        var rng = new Random(1);
        double[] s = Rand(rng, 6), x = Rand(rng, 12), mask = [1, 1, 1, 0, 0, 0], y = new double[4];
        LsChunkProjection.Forward(g, s, x, mask, y);
        Assert.All(y[2..], v => Assert.Equal(0.0, v));
        Assert.NotEqual(0.0, y[0]);
        double[] ds = new double[6], dx = new double[12];
        LsChunkProjection.Backward(g, s, x, mask, Rand(rng, 4), ds, dx, false);
        Assert.All(ds[3..], v => Assert.Equal(0.0, v));
        Assert.All(dx[6..], v => Assert.Equal(0.0, v));
    }
}
