using TransformerLS.Backends;
using TransformerLS.Ops;
using TransformerLS.Tensors;

using static TransformerLS.Tests.FiniteDifferences;

namespace TransformerLS.Tests;

/// <summary>The LS attention reference against finite differences and against a dense, explicitly masked version.</summary>
public class LsAttentionTests
{
    static double[] Mask(int b, int n, params int[] pads)
    {
        var m = Enumerable.Repeat(1.0, b * n).ToArray();
        foreach (var p in pads) m[p] = 0;
        return m;
    }

    [Theory]
    [InlineData(2, 1, 7, 4, 2, 3, true)]
    [InlineData(1, 2, 5, 3, 1, 2, false)]
    [InlineData(1, 1, 6, 2, 4, 1, true)]
    public void Backward_matches_finite_differences(int B, int H, int n, int d, int w, int r, bool masked)
    {
        var g = new LsAttentionGeometry(B, H, n, d, w, r, Math.Max(w / 2, 1), 1f / MathF.Sqrt(d));
        var rng = new Random(7);
        int seq = B * H * n * d, lm = B * H * r * d;
        double[][] x = [Rand(rng, seq), Rand(rng, seq), Rand(rng, seq), Rand(rng, lm), Rand(rng, lm)];
        var mask = masked ? Mask(B, n, 1, B * n - 1) : [];
        var dout = Rand(rng, seq);
        double[] F(double[][] i)
        {
            double[] o = new double[seq], lse = new double[B * H * n];
            LsAttention.Forward(g, i[0], i[1], i[2], i[3], i[4], mask, o, lse);
            return o;
        }
        double[] o = new double[seq], lse = new double[B * H * n];
        LsAttention.Forward(g, x[0], x[1], x[2], x[3], x[4], mask, o, lse);
        double[][] grads = [new double[seq], new double[seq], new double[seq], new double[lm], new double[lm]];
        LsAttention.Backward(g, x[0], x[1], x[2], x[3], x[4], mask, o, lse, dout, grads[0], grads[1], grads[2], grads[3], grads[4]);
        string[] names = ["dq", "dk", "dv", "dkbar", "dvbar"];
        for (var which = 0; which < 5; which++) Check(() => Dot(dout, F(x)), x[which], grads[which], names[which]);
    }

    /// <summary>
    /// Section 9 written densely: every query row gets the full key list [r landmarks ; all n positions] with −inf
    /// where a position is outside its segment window (s·w − e ≤ j &lt; (s+1)·w + e) or padded, then one softmax.
    /// </summary>
    [Theory]
    [InlineData(2, 2, 13, 4, 4, 3)]
    [InlineData(1, 1, 9, 8, 1, 2)]
    [InlineData(1, 2, 10, 4, 3, 1)]
    public void Forward_equals_dense_masked_attention(int B, int H, int n, int d, int w, int r)
    {
        var rng = new Random(11);
        int seq = B * H * n * d, lm = B * H * r * d, e = Math.Max(w / 2, 1);
        double[] q = Rand(rng, seq), k = Rand(rng, seq), v = Rand(rng, seq), kb = Rand(rng, lm), vb = Rand(rng, lm);
        var mask = Mask(B, n, 2, B * n - 1);
        var g = new LsAttentionGeometry(B, H, n, d, w, r, e, 1f / MathF.Sqrt(d));
        double[] o = new double[seq], lse = new double[B * H * n];
        LsAttention.Forward(g, q, k, v, kb, vb, mask, o, lse);
        var scale = (double)g.Scale; // 1/√d as a float, as the kernels use it
        for (var b = 0; b < B; b++)
            for (var h = 0; h < H; h++)
                for (var i = 0; i < n; i++)
                {
                    var bh = b * H + h;
                    var logits = new double[r + n];
                    for (var t = 0; t < r + n; t++)
                    {
                        var landmark = t < r;
                        var j = t - r;
                        var s = i / w;
                        var allowed = landmark || (j >= s * w - e && j < (s + 1) * w + e && mask[b * n + j] != 0);
                        double dot = 0;
                        for (var c = 0; c < d; c++)
                            dot += q[(bh * n + i) * d + c] * scale * (landmark ? kb[(bh * r + t) * d + c] : k[(bh * n + j) * d + c]);
                        logits[t] = allowed ? dot : double.NegativeInfinity;
                    }
                    var max = logits.Max();
                    var z = logits.Sum(x => Math.Exp(x - max));
                    for (var c = 0; c < d; c++)
                    {
                        double want = 0;
                        if (mask[b * n + i] != 0)
                            for (var t = 0; t < r + n; t++)
                                want += Math.Exp(logits[t] - max) / z * (t < r ? vb[(bh * r + t) * d + c] : v[(bh * n + t - r) * d + c]);
                        Assert.Equal(want, o[(bh * n + i) * d + c], 1e-12);
                    }
                }
    }

    [Fact]
    public void Bad_configs_and_shapes_are_named()
    {
        var be = CpuBackend.Instance;
        using var s = new TensorScope();
        Tensor T(params int[] dims) => be.Empty(new Shape(dims), DType.Float32);
        var q = T(1, 2, 8, 4);
        var lse = T(1, 2, 8);
        Assert.Contains("window w must be >= 1", Assert.Throws<ArgumentOutOfRangeException>(() =>
            LsAttention.Forward(be, new LsAttentionConfig(0, 2), q, q, q, T(1, 2, 2, 4), T(1, 2, 2, 4), null, q, lse)).Message);
        Assert.Contains("kbar has shape [1, 2, 3, 4]; expected [1, 2, 2, 4] (r = 2)", Assert.Throws<ArgumentException>(() =>
            LsAttention.Forward(be, new LsAttentionConfig(4, 2), q, q, q, T(1, 2, 3, 4), T(1, 2, 2, 4), null, q, lse)).Message);
        Assert.Contains("mask has shape [2, 8]; expected [1, 8]", Assert.Throws<ArgumentException>(() =>
            LsAttention.Forward(be, new LsAttentionConfig(4, 2), q, q, q, T(1, 2, 2, 4), T(1, 2, 2, 4), T(2, 8), q, lse)).Message);
        Assert.Contains("q has shape [2, 8, 4]; expected [1, 2, 8, 4] or [1, 8, 8] for k of shape [1, 2, 8, 4]", Assert.Throws<ArgumentException>(() =>
            LsAttention.Forward(be, new LsAttentionConfig(4, 2), T(2, 8, 4), q, q, T(1, 2, 2, 4), T(1, 2, 2, 4), null, q, lse)).Message);
        Assert.Contains("k has shape [2, 8, 4]; expected [B, H, n, d]", Assert.Throws<ArgumentException>(() =>
            LsAttention.Forward(be, new LsAttentionConfig(4, 2), q, T(2, 8, 4), q, T(1, 2, 2, 4), T(1, 2, 2, 4), null, q, lse)).Message);
        // Token-major q [B, n, H·d] with an output of another shape: o is named.
        Assert.Equal("o", Assert.Throws<ArgumentException>(() =>
            LsAttention.Forward(be, new LsAttentionConfig(4, 2), T(1, 8, 8), q, q, T(1, 2, 2, 4), T(1, 2, 2, 4), null, q, lse)).ParamName);
    }

    [Fact]
    public void Gpu_refuses_a_head_dim_whose_tile_does_not_fit_by_name()
    {
        var gpu = TestEnv.RequireGpu();
        using var s = new TensorScope();
        Tensor T(params int[] dims) => gpu.Empty(new Shape(dims), DType.Float32);
        var q = T(1, 1, 8, 512);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            LsAttention.Forward(gpu, new LsAttentionConfig(4, 2), q, q, q, T(1, 1, 2, 512), T(1, 1, 2, 512), null, q, T(1, 1, 8)));
        Assert.Equal("q", e.ParamName);
        Assert.Contains("head dim 512 needs", e.Message);
        Assert.Contains("so head dims up to", e.Message);
    }
}

/// <summary>The projection reference: finite differences, and zero landmarks (not NaN) where a column has no token.</summary>
public class LsProjectionTests
{
    [Theory]
    [InlineData(2, 2, 5, 3, 2, true)]
    [InlineData(1, 1, 4, 2, 3, false)]
    public void Backward_matches_finite_differences(int B, int H, int n, int d, int r, bool masked)
    {
        var g = new Ops.LsProjectionGeometry(B, H, n, d, r);
        var rng = new Random(13);
        int seq = B * H * n * d, lm = B * H * r * d;
        double[][] x = [Rand(rng, B * n * H * r, 2), Rand(rng, seq), Rand(rng, seq)];
        var mask = masked ? Enumerable.Range(0, B * n).Select(i => i == 1 || i == B * n - 1 ? 0.0 : 1.0).ToArray() : [];
        double[] dkb = Rand(rng, lm), dvb = Rand(rng, lm);
        double Loss(double[][] i)
        {
            double[] kb = new double[lm], vb = new double[lm];
            Ops.LsProjection.Forward(g, i[0], i[1], i[2], mask, kb, vb);
            return Dot(kb, dkb) + Dot(vb, dvb);
        }
        double[][] grads = [new double[x[0].Length], new double[seq], new double[seq]];
        Ops.LsProjection.Backward(g, x[0], x[1], x[2], mask, dkb, dvb, grads[0], grads[1], grads[2]);
        string[] names = ["dscores", "dk", "dv"];
        for (var which = 0; which < 3; which++) Check(() => Loss(x), x[which], grads[which], names[which]);
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda")]
    public void All_padding_rows_give_zero_landmarks_not_nan(string backend)
    {
        IBackend be = backend == "cpu" ? CpuBackend.Instance : TestEnv.RequireGpu();
        using var s = new TensorScope();
        Tensor T(DType dt, params int[] dims) { var t = be.Empty(new Shape(dims), dt); be.Fill(t, 0.5f); return t; }
        var mask = be.Empty(new Shape(2, 6), DType.Float32);
        mask.CopyFrom([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // batch 1 is all padding
        var kb = be.Empty(new Shape(2, 1, 2, 32), DType.Float32);
        var vb = be.Empty(new Shape(2, 1, 2, 32), DType.Float32);
        LsProjection.Forward(be, T(DType.Float32, 2, 6, 2), T(DType.Float32, 2, 1, 6, 32), T(DType.Float32, 2, 1, 6, 32), mask, kb, vb,
            T(DType.Float32, 2, 2), T(DType.Float32, 2, 2));
        var k = kb.ToArray();
        Assert.All(k[..64], x => Assert.Equal(0.5f, x, 1e-6f));   // batch 0: uniform weights over three 0.5s
        Assert.All(k[64..], x => Assert.Equal(0f, x));            // batch 1: no token, zero landmarks
    }
}
