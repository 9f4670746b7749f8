using TransformerLS.Backends;
using TransformerLS.Ops;
using TransformerLS.Tensors;

using static TransformerLS.Tests.FiniteDifferences;

namespace TransformerLS.Tests;

/// <summary>The causal LS attention reference against finite differences and against section 9 written densely.</summary>
public class LsCausalAttentionTests
{
    sealed record Problem(LsCausalGeometry G, LsCausalData<double> X, double[] Dout);

    static Problem Make(int B, int H, int L, int P, int d, int w, int l, int r, int mc, bool masked, int seed)
    {
        var rng = new Random(seed);
        var g = new LsCausalGeometry(B, H, L, P, d, w, l, r, mc, 1f / MathF.Sqrt(d));
        int keys = B * H * (P + L) * d, nc = B * H * g.Nc * d;
        var mask = masked ? Enumerable.Range(0, B * (P + L)).Select(i => i % 5 == 3 ? 0.0 : 1.0).ToArray() : [];
        var x = new LsCausalData<double>(Rand(rng, B * H * L * d), Rand(rng, keys), Rand(rng, keys), Rand(rng, H * d, 0.3), Rand(rng, H * d, 0.3),
            Rand(rng, H * w * d), Rand(rng, nc), Rand(rng, nc), Rand(rng, H * g.Nc * d), mask);
        return new Problem(g, x, Rand(rng, B * H * L * d));
    }

    static double[] Output(Problem p)
    {
        double[] o = new double[p.X.Q.Length], lse = new double[p.G.B * p.G.H * p.G.L];
        LsCausalAttention.Forward(p.G, p.X, o, lse);
        return o;
    }

    [Theory]
    [InlineData(1, 2, 6, 2, 3, 3, 2, 2, 1, true)]
    [InlineData(2, 1, 5, 0, 2, 2, 1, 1, 0, false)]
    [InlineData(1, 1, 7, 3, 2, 4, 3, 2, 2, false)]
    public void Backward_matches_finite_differences(int B, int H, int L, int P, int d, int w, int l, int r, int mc, bool masked)
    {
        var p = Make(B, H, L, P, d, w, l, r, mc, masked, 5);
        double[] o = Output(p), lse = new double[B * H * L];
        LsCausalAttention.Forward(p.G, p.X, o, lse);
        var x = p.X;
        var g = new LsCausalData<double>(new double[x.Q.Length], new double[x.K.Length], new double[x.V.Length], new double[x.U.Length],
            new double[x.VBias.Length], new double[x.Rel.Length], new double[x.KC.Length], new double[x.VC.Length], new double[x.RelC.Length], []);
        LsCausalAttention.Backward(p.G, x, o, lse, p.Dout, g);
        double Loss() => Dot(p.Dout, Output(p));
        Check(Loss, x.Q, g.Q, "dq");
        Check(Loss, x.K, g.K, "dk");
        Check(Loss, x.V, g.V, "dv");
        Check(Loss, x.U, g.U, "du");
        Check(Loss, x.VBias, g.VBias, "dvbias");
        Check(Loss, x.Rel, g.Rel, "drel");
        Check(Loss, x.KC, g.KC, "dkc");
        Check(Loss, x.VC, g.VC, "dvc");
        Check(Loss, x.RelC, g.RelC, "drelc");
    }

    /// <summary>
    /// Section 9's causal line, densely: every query gets all Nc compressed rows and all P + L positions, with −inf
    /// where chunk c ≥ C(i), position j ∉ [i−w+1, i], or j is padding; the chunk term is indexed by
    /// (C(i) − c)·r − 1 − k with c, k taken apart from the row index.
    /// </summary>
    [Theory]
    [InlineData(2, 2, 12, 4, 4, 4, 4, 2, 2)]
    [InlineData(1, 1, 9, 0, 8, 1, 3, 1, 0)]
    [InlineData(1, 2, 10, 6, 4, 6, 5, 3, 1)]
    public void Forward_equals_dense_masked_attention(int B, int H, int L, int P, int d, int w, int l, int r, int mc)
    {
        var p = Make(B, H, L, P, d, w, l, r, mc, true, 9);
        var (g, x) = (p.G, p.X);
        var o = Output(p);
        var sc = (double)g.Scale;
        for (var b = 0; b < B; b++)
            for (var h = 0; h < H; h++)
                for (var i = 0; i < L; i++)
                {
                    var bh = b * H + h;
                    var at = (bh * L + i) * d;
                    if (x.Mask[b * (P + L) + P + i] == 0)
                    {
                        for (var c = 0; c < d; c++) Assert.Equal(0.0, o[at + c]);
                        continue;
                    }
                    var q = Enumerable.Range(0, d).Select(c => x.Q[at + c] * sc).ToArray();
                    var ci = mc + i / l;
                    var logits = new double[g.Nc + P + L];
                    for (var t = 0; t < logits.Length; t++)
                    {
                        double s = 0;
                        if (t < g.Nc)
                        {
                            int chunk = t / r, k = t % r, delta = (ci - chunk) * r - 1 - k;
                            for (var c = 0; c < d; c++) s += q[c] * x.KC[(bh * g.Nc + t) * d + c] + (delta >= 0 ? q[c] * x.RelC[(h * g.Nc + delta) * d + c] : 0);
                            logits[t] = chunk < ci ? s : double.NegativeInfinity;
                        }
                        else
                        {
                            int row = t - g.Nc, j = row - P;
                            var inBand = j <= i && j > i - w && x.Mask[b * (P + L) + row] != 0;
                            for (var c = 0; c < d && inBand; c++)
                                s += (q[c] + x.U[h * d + c]) * x.K[(bh * (P + L) + row) * d + c] + (q[c] + x.VBias[h * d + c]) * x.Rel[(h * w + i - j) * d + c];
                            logits[t] = inBand ? s : double.NegativeInfinity;
                        }
                    }
                    var max = logits.Max();
                    var e = logits.Select(z => Math.Exp(z - max)).ToArray();
                    var sum = e.Sum();
                    for (var c = 0; c < d; c++)
                    {
                        double y = 0;
                        for (var t = 0; t < logits.Length; t++)
                            y += e[t] / sum * (t < g.Nc ? x.VC[(bh * g.Nc + t) * d + c] : x.V[(bh * (P + L) + t - g.Nc) * d + c]);
                        Assert.Equal(y, o[at + c], 1e-12);
                    }
                }
    }

    [Fact]
    public void Bad_shapes_and_configs_are_named()
    {
        var be = CpuBackend.Instance;
        using var scope = new TensorScope();
        Tensor T(params int[] s) => be.Empty(new Shape(s), DType.Float32);
        var cfg = new LsCausalConfig(4, 2, 1);
        var x = new LsCausalInputs(T(1, 2, 6, 8), T(1, 2, 8, 8), T(1, 2, 8, 8), T(2, 8), T(2, 8), T(2, 4, 8), T(1, 2, 3, 8), T(1, 2, 3, 8), T(2, 3, 8), null);
        LsCausalAttention.Forward(be, cfg, x, T(1, 2, 6, 8), T(1, 2, 6)); // valid: P = 2, Mc = 0
        var e = Assert.Throws<ArgumentException>(() => LsCausalAttention.Forward(be, cfg, x with { K = T(1, 2, 5, 8), V = T(1, 2, 5, 8) }, T(1, 2, 6, 8), T(1, 2, 6)));
        Assert.Equal("k", e.ParamName);
        e = Assert.Throws<ArgumentException>(() => LsCausalAttention.Forward(be, cfg, x with { KC = T(1, 2, 2, 8), VC = T(1, 2, 2, 8) }, T(1, 2, 6, 8), T(1, 2, 6)));
        Assert.Equal("kc", e.ParamName);
        Assert.Contains("block chunks", e.Message);
        e = Assert.Throws<ArgumentException>(() => LsCausalAttention.Forward(be, cfg, x with { Rel = T(2, 3, 8) }, T(1, 2, 6, 8), T(1, 2, 6)));
        Assert.Equal("rel", e.ParamName);
        var bad = Assert.Throws<ArgumentOutOfRangeException>(() => LsCausalAttention.Forward(be, cfg with { ChunkLength = 0 }, x, T(1, 2, 6, 8), T(1, 2, 6)));
        Assert.Equal("ChunkLength", bad.ParamName);
    }
}
