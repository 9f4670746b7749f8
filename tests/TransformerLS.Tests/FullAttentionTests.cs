using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Layers;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>
/// The full-attention baseline (matmul and softmax nodes): forward against a naive float64 attention, every
/// gradient (parameters and input) by central differences with the summed output as the loss, and GPU against CPU.
/// </summary>
[Collection(GpuCollection.Name)]
public class FullAttentionTests
{
    /// <summary>One layer on [B, N, D] tokens with its parameters, gradients and a kept output.</summary>
    sealed class Layer : IDisposable
    {
        public readonly ParameterSet Params = new();
        public readonly Graph Graph;
        public readonly Value X, Y;
        public readonly Tensor XT;
        public readonly Dictionary<string, Tensor> Grads;
        public readonly Dictionary<string, Tensor> InputGrad = [];

        public Layer(IBackend be, DType dt, int b, int n, int dim, int heads, int seed, DType? valuesOf = null)
        {
            var round = valuesOf ?? dt;
            FullAttentionBlock.AddParameters(Params, be, "", dim, heads, dt, new Random(seed));
            var rng = new Random(seed + 1);
            foreach (var t in Params.Tensors.Values)
                t.CopyFrom([.. Enumerable.Range(0, (int)t.Count).Select(_ => round.Round(RandomDraw.Normal(rng) / Math.Sqrt(dim) * 2))]);
            Graph = new Graph(be);
            // The input is a trainable "parameter" so that its gradient is checked too.
            XT = be.Empty(new Shape(b, n, dim), dt);
            XT.CopyFrom([.. Enumerable.Range(0, (int)XT.Count).Select(_ => round.Round(RandomDraw.Normal(rng)))]);
            X = Graph.Parameter("x", XT);
            Y = FullAttentionBlock.Build(Graph, heads, new ParameterValues(Graph, Params), X);
            Grads = Params.CreateGradients(be);
            var gx = be.Empty(XT.Shape, DType.Float32);
            be.Fill(gx, 0f);
            Grads["x"] = gx;
        }

        public (float[] Y, Dictionary<string, float[]> Grads) Run()
        {
            using var run = new Executor(Graph, new ExecutorOptions { Loss = Y, SumLoss = true }, Grads);
            run.Backward(new Dictionary<Value, Tensor>(), seed: 1);
            return (run[Y].ToArray(), Grads.ToDictionary(p => p.Key, p => p.Value.ToArray()));
        }

        public void Dispose()
        {
            foreach (var g in Grads.Values) g.Dispose();
            XT.Dispose();
            Graph.Dispose();
            Params.Dispose();
        }
    }

    static double[] D(Tensor t) => [.. t.ToArray().Select(v => (double)v)];

    [Fact]
    public void Forward_matches_a_naive_float64_attention()
    {
        const int B = 2, N = 7, Dim = 12, H = 3, d = Dim / H;
        using var l = new Layer(CpuBackend.Instance, DType.Float32, B, N, Dim, H, 3);
        var (y, _) = l.Run();
        double[] W(string n) => D(l.Params[n]);
        var x = D(l.XT);
        for (var b = 0; b < B; b++)
        {
            var rows = Enumerable.Range(0, N).Select(i => DenseReference.Row(x, b * N + i, Dim)).ToArray();
            var q = DenseReference.Linear(rows, W("W_q.weight"), W("W_q.bias"), Dim);
            var k = DenseReference.Linear(rows, W("W_k.weight"), W("W_k.bias"), Dim);
            var v = DenseReference.Linear(rows, W("W_v.weight"), W("W_v.bias"), Dim);
            var merged = new double[N][];
            for (var i = 0; i < N; i++)
            {
                merged[i] = new double[Dim];
                for (var h = 0; h < H; h++)
                {
                    var logits = Enumerable.Range(0, N).Select(j => DenseReference.Dot(DenseReference.Slice(q[i], h, d), DenseReference.Slice(k[j], h, d)) / Math.Sqrt(d)).ToList();
                    var o = DenseReference.Attend(logits, [.. Enumerable.Range(0, N).Select(j => DenseReference.Slice(v[j], h, d))]);
                    o.CopyTo(merged[i], h * d);
                }
            }
            var expect = DenseReference.Linear(merged, W("W_o.weight"), W("W_o.bias"), Dim);
            for (var i = 0; i < N; i++)
                for (var c = 0; c < Dim; c++)
                {
                    var got = y[(b * N + i) * Dim + c];
                    Assert.True(Math.Abs(got - expect[i][c]) <= 1e-5 * (1 + Math.Abs(expect[i][c])), $"y[{b},{i},{c}] = {got}, expected {expect[i][c]}");
                }
        }
    }

    [Fact]
    public void Every_gradient_matches_finite_differences()
    {
        using var l = new Layer(CpuBackend.Instance, DType.Float32, 1, 5, 8, 2, 4);
        var (_, analytic) = l.Run();
        Assert.Contains(analytic.Values, g => g.Any(v => v != 0));
        var rng = new Random(9);
        const double step = 1e-2;
        double Loss() => l.Run().Y.Sum(v => (double)v);
        foreach (var (name, t) in l.Params.Tensors.Append(new("x", l.XT)))
        {
            foreach (var i in Enumerable.Range(0, 4).Select(_ => rng.Next((int)t.Count)))
            {
                var numeric = FiniteDifferences.OfElement(t, i, step, Loss);
                var a = analytic[name][i];
                Assert.True(Math.Abs(numeric - a) <= 1e-2 * Math.Abs(numeric) + 5e-4, $"d{name}[{i}]: finite difference {numeric:G6}, backward {a:G6}");
            }
        }
    }

    [Theory]
    [InlineData("float32", 1, 37, 2)]
    [InlineData("bfloat16", 2, 64, 1)]
    public void Gpu_matches_cpu(string dtype, int b, int n, int heads)
    {
        var gpu = TestEnv.RequireGpu();
        var dt = dtype == "float32" ? DType.Float32 : DType.BFloat16;
        const int Dim = 64;
        using var reference = new Layer(CpuBackend.Instance, DType.Float32, b, n, Dim, heads, 5, valuesOf: dt);
        using var same = new Layer(CpuBackend.Instance, dt, b, n, Dim, heads, 5);
        using var g = new Layer(gpu, dt, b, n, Dim, heads, 5);
        var (ry, rg) = reference.Run();
        var (sy, sg) = same.Run();
        var (gy, gg) = g.Run();
        var floor = dt == DType.Float32 ? 2e-5 : 2e-3;
        static double Err(float[] a, float[] r) => a.Zip(r, (x, y) => Math.Abs((double)x - y)).Max();
        // A key bias's gradient is zero in exact arithmetic (softmax ignores a shift shared by all keys): what remains is
        // the rounding of a sum of terms as large as the weight gradient's, so its floor scales with those.
        double Scale(string what, float[] r) => Math.Max(r.Max(Math.Abs), what.EndsWith(".bias") ? rg[what[1..].Replace(".bias", ".weight")].Max(Math.Abs) : 0);
        void Check(string what, float[] got, float[] s, float[] r)
        {
            Assert.DoesNotContain(got, float.IsNaN);
            var bound = 2 * Err(s, r) + floor * Scale(what, r) + 1e-7;
            Assert.True(Err(got, r) <= bound, $"{dtype} {what}: max error {Err(got, r):E3} > bound {bound:E3}");
        }
        Check("y", gy, sy, ry);
        foreach (var name in rg.Keys) Check($"d{name}", gg[name], sg[name], rg[name]);
    }
}
