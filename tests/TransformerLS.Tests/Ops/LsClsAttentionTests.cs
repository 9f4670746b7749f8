using TransformerLS.Ops;

using static TransformerLS.Tests.FiniteDifferences;

namespace TransformerLS.Tests;

public class LsClsAttentionTests
{
    [Theory]
    [InlineData(2, 1, 4, 3, true)]
    [InlineData(1, 2, 3, 2, false)]
    public void Backward_matches_finite_differences(int B, int H, int n, int d, bool masked)
    {
        var g = new LsClsGeometry(B, H, n, d, 1f / MathF.Sqrt(d));
        var rng = new Random(8);
        double[][] x = [Rand(rng, B * H * d), Rand(rng, B * H * d), Rand(rng, B * H * d), Rand(rng, B * H * n * d)];
        var mask = masked ? Enumerable.Range(0, B * n).Select(i => i % 3 == 1 ? 0.0 : 1.0).ToArray() : [];
        var dout = Rand(rng, B * H * d);
        double[] F(double[][] i)
        {
            double[] o = new double[B * H * d], lse = new double[B * H];
            LsClsAttention.Forward(g, i[0], i[1], i[2], i[3], mask, o, lse);
            return o;
        }
        double[] o = new double[B * H * d], lse = new double[B * H];
        LsClsAttention.Forward(g, x[0], x[1], x[2], x[3], mask, o, lse);
        double[][] grads = [new double[B * H * d], new double[B * H * d], new double[B * H * d], new double[B * H * n * d]];
        LsClsAttention.Backward(g, x[0], x[1], x[2], x[3], mask, o, lse, dout, grads[0], grads[1], grads[2], grads[3], false);
        string[] names = ["dq", "dk", "dv", "dc"];
        for (var w = 0; w < 4; w++) Check(() => Dot(dout, F(x)), x[w], grads[w], names[w]);
    }

    [Fact]
    public void Only_padding_leaves_the_cls_value()
    {
        var g = new LsClsGeometry(1, 1, 3, 2, 1f / MathF.Sqrt(2));
        double[] o = new double[2], lse = new double[1];
        LsClsAttention.Forward(g, [1, 2], [3, 4], [5, 6], [7, 8, 9, 10, 11, 12], [0, 0, 0], o, lse);
        Assert.Equal([5.0, 6.0], o);
    }
}
