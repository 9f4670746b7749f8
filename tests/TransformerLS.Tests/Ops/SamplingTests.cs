using TransformerLS.Backends;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

public class SamplingTests
{
    /// <summary>
    /// With the draws stratified over [0, 1) (u = (i + ½)/N), the count of each token is N times its probability within one
    /// draw (two on the GPU): softmax(x/T) cut to the top k and to the top-p prefix, renormalized, written out here from the
    /// definition.
    /// </summary>
    static void DrawsFollowTheCutSoftmax(IBackend be, float[] x, float t, int k, float p, int n, double slack)
    {
        using var scope = new TensorScope();
        var v = x.Length;
        var logits = be.Empty(new Shape(n, v), DType.Float32);
        logits.CopyFrom([.. Enumerable.Range(0, n).SelectMany(_ => x)]);
        var u = be.Empty(new Shape(n), DType.Float32);
        u.CopyFrom([.. Enumerable.Range(0, n).Select(i => (float)((i + 0.5) / n))]);
        var tokens = be.Empty(new Shape(n), DType.Float32);
        be.Fill(tokens, float.NaN);
        Sampling.SampleRows(be, logits, u, t, k, p, tokens);
        var got = tokens.ToArray();

        var order = Enumerable.Range(0, v).OrderByDescending(c => x[c]).ThenBy(c => c).ToArray();
        var w = order.Select(c => Math.Exp((x[c] - x[order[0]]) / (double)t)).ToArray();
        var keep = k > 0 ? Math.Min(k, v) : v;
        if (p < 1)
            for (double mass = 0, k2 = 0; k2 < keep; k2++)
                if ((mass += w[(int)k2] / w.Sum()) >= p) { keep = (int)k2 + 1; break; }
        var kept = w.Take(keep).Sum();
        for (var r = 0; r < v; r++)
        {
            var want = r < keep ? n * w[r] / kept : 0;
            var count = got.Count(g => g == order[r]);
            Assert.True(Math.Abs(count - want) <= slack, $"{be.Device} T {t} k {k} p {p}: token {order[r]} (rank {r}) drawn {count} times, expected {want:F1}");
        }
        Assert.All(got, g => Assert.True(g >= 0 && g < v && g == Math.Floor(g), $"{be.Device}: drew {g}"));
    }

    public static TheoryData<float, int, float> Options => new() { { 1f, 0, 1f }, { 0.7f, 0, 1f }, { 1.3f, 3, 1f }, { 1f, 0, 0.7f }, { 0.9f, 4, 0.8f } };

    [Theory, MemberData(nameof(Options))]
    public void Draws_follow_the_cut_softmax_on_the_cpu(float t, int k, float p) =>
        DrawsFollowTheCutSoftmax(new CpuBackend(), [0.3f, -1.2f, 2.0f, 0.9f, 2.0f, -0.4f, 1.1f], t, k, p, 20000, 1.0 + 1e-9);

    [Theory, MemberData(nameof(Options))]
    public void Draws_follow_the_cut_softmax_on_the_gpu(float t, int k, float p)
    {
        var gpu = TestEnv.RequireGpu();
        var rng = new Random(5);
        DrawsFollowTheCutSoftmax(gpu, [.. Enumerable.Range(0, 300).Select(_ => (float)(1.5 * RandomDraw.Normal(rng)))], t, k, p, 60000, 2.0 + 1e-9); // float32 sums move a boundary by ~1e-6 of the mass: one more draw either way
    }

    [Fact]
    public void Greedy_is_the_first_maximum_and_inactive_rows_draw_minus_one()
    {
        foreach (var be in TestEnv.HasGpu ? new IBackend[] { new CpuBackend(), TestEnv.RequireGpu() } : [new CpuBackend()])
        {
            using var scope = new TensorScope();
            var logits = be.Empty(new Shape(3, 4), DType.Float32);
            logits.CopyFrom([1, 5, 5, 2, /**/ -1, -2, -3, -0.5f, /**/ 9, 9, 9, 9]);
            var u = be.Empty(new Shape(3), DType.Float32);
            u.CopyFrom([0.99f, -1, 0.5f]);
            var tokens = be.Empty(new Shape(3), DType.Float32);
            Sampling.SampleRows(be, logits, u, 0, 0, 1, tokens);
            Assert.Equal([1f, -1f, 0f], tokens.ToArray());
            // ties in a draw: the lower index first, so the smallest draw picks it
            u.CopyFrom([0f, 0f, 0.3f]);
            Sampling.SampleRows(be, logits, u, 1, 0, 1, tokens);
            Assert.Equal([1f, 3f, 1f], tokens.ToArray());
        }
    }

    /// <summary>The conformance rows' slack: a token is admissible only as the rule's own draw within delta of u.</summary>
    [Fact]
    public void A_draw_is_admissible_only_within_its_slack()
    {
        double[] x = [0, 1, 2, 3]; // sorted: 3, 2, 1, 0 with p ∝ 1, e^-1, e^-2, e^-3
        var first = 1 / (1 + Math.Exp(-1) + Math.Exp(-2) + Math.Exp(-3)); // token 3's share: the boundary between 3 and 2
        Assert.True(Sampling.Admissible(x, 0.3, 1, 0, 1, 3, 1e-5));
        Assert.False(Sampling.Admissible(x, 0.3, 1, 0, 1, 2, 1e-5));
        Assert.True(Sampling.Admissible(x, first, 1, 0, 1, 3, 1e-5));
        Assert.True(Sampling.Admissible(x, first, 1, 0, 1, 2, 1e-5));
        Assert.False(Sampling.Admissible(x, first, 1, 0, 1, 1, 1e-5));
        Assert.False(Sampling.Admissible(x, first, 0, 0, 1, 2, 1e-5)); // greedy admits the maximum alone
        Assert.False(Sampling.Admissible(x, 0.99, 1, 2, 1, 1, 1e-5)); // outside the top 2
    }

    [Fact]
    public void Bad_input_is_named()
    {
        var be = new CpuBackend();
        using var scope = new TensorScope();
        var logits = be.Empty(new Shape(2, 5), DType.Float32);
        var (u, tokens) = (be.Empty(new Shape(2), DType.Float32), be.Empty(new Shape(2), DType.Float32));
        Assert.Contains("temperature", Assert.Throws<ArgumentOutOfRangeException>(() => Sampling.SampleRows(be, logits, u, -1, 0, 1, tokens)).Message);
        Assert.Contains("top-k", Assert.Throws<ArgumentOutOfRangeException>(() => Sampling.SampleRows(be, logits, u, 1, -2, 1, tokens)).Message);
        Assert.Contains("top-p", Assert.Throws<ArgumentOutOfRangeException>(() => Sampling.SampleRows(be, logits, u, 1, 0, 1.5f, tokens)).Message);
        Assert.Equal("uniforms", Assert.ThrowsAny<ArgumentException>(() => Sampling.SampleRows(be, logits, be.Empty(new Shape(3), DType.Float32), 1, 0, 1, tokens)).ParamName);
        if (!TestEnv.HasGpu) return;
        var gpu = TestEnv.RequireGpu();
        var wide = gpu.Empty(new Shape(1, 1025), DType.Float32);
        var (gu, gt) = (gpu.Empty(new Shape(1), DType.Float32), gpu.Empty(new Shape(1), DType.Float32));
        Assert.Contains("at most 1024", Assert.Throws<NotSupportedException>(() => Sampling.SampleRows(gpu, wide, gu, 1, 0, 1, gt)).Message);
    }
}
