using TransformerLS.Backends;
using TransformerLS.Graphs;
using TransformerLS.Models;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>The inference session: inputs and outputs by name over one graph, run again and again.</summary>
public class InferenceSessionTests
{
    static readonly LraConfig Cfg = new() { Vocab = 16, MaxLength = 32, Dim = 16, Heads = 2, Hidden = 32, Layers = 2, Window = 4, Rank = 2, Classes = 3, Pooling = LraPooling.Mean };

    static (float[] Tokens, float[] Mask) Batch(Random rng, int batch, int length) =>
        ([.. Enumerable.Range(0, batch * length).Select(_ => (float)rng.Next(Cfg.Vocab))],
         [.. Enumerable.Range(0, batch * length).Select(i => i % length < length - i / length ? 1f : 0f)]);

    [Fact]
    public void A_session_gives_the_logits_of_a_fresh_graph_run_on_every_call()
    {
        var be = new CpuBackend();
        using var model = new LraClassifier(be, Cfg, DType.Float32, 5);
        using var session = model.CreateSession(3, 12);
        Assert.Equal(["labels", "mask", "tokens"], session.InputNames.Order().ToArray());
        Assert.Equal(["logits"], session.OutputNames.ToArray());
        Assert.Equal(new Shape(3, 12), session.InputShape("tokens"));
        var rng = new Random(4);
        for (var call = 0; call < 2; call++) // the second call's inputs differ: its outputs must be its own
        {
            var (tokens, mask) = Batch(rng, 3, 12);
            session.SetInput("tokens", tokens);
            session.SetInput("mask", mask);
            session.Run();
            var mine = session.Output("logits");

            using var g = model.BuildGraph(3, 12);
            using var scope = new TensorScope();
            var feeds = new Dictionary<Value, Tensor>();
            foreach (var (v, data) in new[] { (g.Tokens, tokens), (g.Mask, mask), (g.Labels, new float[3]) })
            {
                var t = be.Empty(v.Shape, v.DType);
                t.CopyFrom(data);
                feeds[v] = t;
            }
            using var expected = Executor.ForwardOnce(g.Graph, g.Logits, feeds);
            Assert.Equal(expected.ToArray(), mine);
        }
    }

    [Fact]
    public void Bad_names_counts_and_order_are_named()
    {
        var be = new CpuBackend();
        using var model = new LraClassifier(be, Cfg, DType.Float32, 5);
        using var session = model.CreateSession(2, 8);
        Assert.Contains("no input named 'token'; the graph takes", Assert.Throws<ArgumentException>(() => session.SetInput("token", new float[16])).Message);
        Assert.Contains("input 'mask' is [2, 8] (16 values); got 15", Assert.Throws<ArgumentException>(() => session.SetInput("mask", new float[15])).Message);
        Assert.Contains("before the session has run", Assert.Throws<InvalidOperationException>(() => session.Output("logits")).Message);
        session.Run();
        Assert.Contains("no output named 'loss'; the session keeps 'logits'", Assert.Throws<ArgumentException>(() => session.Output("loss")).Message);
        Assert.Equal("batch", Assert.Throws<ArgumentOutOfRangeException>(() => model.CreateSession(0, 8)).ParamName);
    }

    [Fact]
    public void A_disposed_session_leaves_nothing_allocated()
    {
        var be = new CpuBackend();
        using var model = new LraClassifier(be, Cfg, DType.Float32, 5);
        var live = be.MemoryStats.LiveBytes;
        using (var session = model.CreateSession(2, 8))
        {
            session.Run();
            session.Run();
            Assert.Equal(6, session.Output("logits").Length);
        }
        Assert.Equal(live, be.MemoryStats.LiveBytes);
    }
}
