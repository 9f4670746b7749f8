// A two-layer Long-Short encoder (the LRA classifier with mean pooling, reference sections 1.2-1.8) built by hand from
// the functional calls: embeddings, then per layer x += LSAttention(LN1(x)), x += W2·GELU(W1·LN2(x)), then the final
// LayerNorm, the masked mean and the ReLU MLP head. It runs on the library's own LraClassifier parameters and checks
// the class probabilities against LraClassifier.Classify (one graph run) on the same padded batch.
//   dotnet run --project src/TransformerLS.Examples [-- cpu|cuda]
using TransformerLS;
using TransformerLS.Backends;
using TransformerLS.Models;
using TransformerLS.Ops;
using TransformerLS.Tensors;

var be = BackendFactory.Open(args.Length > 0 ? args[0] : "cpu");
var cfg = new LraConfig { Vocab = 32, MaxLength = 64, Dim = 64, Heads = 2, Hidden = 64, Layers = 2, Window = 4, Rank = 4, Classes = 3, Pooling = LraPooling.Mean };
using var model = new LraClassifier(be, cfg, DType.Float32, seed: 7);
var rng = new Random(3);
// Parameters drawn at a scale where every term shows in the output (the init's 0.02 leaves nearly uniform probabilities).
foreach (var t in model.Parameters.Tensors.Values)
    t.CopyFrom([.. Enumerable.Range(0, (int)t.Count).Select(_ => (float)(rng.NextDouble() - 0.5))]);
int[][] sequences = [.. new[] { 24, 17, 9 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.Next(1, cfg.Vocab)).ToArray())];

float[][] Encode()
{
    using var scope = new TensorScope();
    int B = sequences.Length, N = sequences.Max(s => s.Length), H = cfg.Heads;
    var p = model.Parameters.Tensors;
    Tensor Host(float[] values, params int[] dims) { var t = be.Empty(new Shape(dims), DType.Float32); t.CopyFrom(values); return t; }
    var tokens = Host([.. sequences.SelectMany(s => s.Concat(Enumerable.Repeat(0, N - s.Length)).Select(t => (float)t))], B, N);
    var mask = Host([.. sequences.SelectMany(s => Enumerable.Range(0, N).Select(i => i < s.Length ? 1f : 0f))], B, N);
    var positions = Host([.. Enumerable.Range(0, B * N).Select(i => (float)(i % N))], B, N);
    Tensor Linear(Tensor x, string name) => Functional.Linear(x, p[name + ".weight"], p[name + ".bias"]);
    Tensor Norm(Tensor x, string name) => Functional.LayerNorm(x, p[name + ".weight"], p[name + ".bias"]);

    var x = Functional.Add(Functional.Embedding(p["model.embeddings.word_embeddings.weight"], tokens),
        Functional.Embedding(p["model.embeddings.position_embeddings.weight"], positions));
    for (var i = 0; i < cfg.Layers; i++)
    {
        var b = $"model.transformer_{i}.";
        // The LS attention module: queries per head; keys and values through LN_A (DualLN); r dynamic projections of
        // the keys and values (softmax over positions, padding excluded) through LN_B; one softmax over window and landmarks.
        var h = Norm(x, b + "norm1");
        var a = b + "mha.";
        var q = Functional.SplitHeads(Linear(h, a + "W_q"), H);
        var (k, v) = Functional.DualLayerNorm(Linear(h, a + "W_k"), Linear(h, a + "W_v"), p[a + "dual_ln_l.weight"], p[a + "dual_ln_l.bias"], H);
        var (kbar, vbar) = Functional.LsProjection(Linear(h, a + "dconv_fc"), k, v, mask, cfg.Rank);
        var (kn, vn) = Functional.DualLayerNorm(kbar, vbar, p[a + "dual_ln_s.weight"], p[a + "dual_ln_s.bias"], H);
        var attention = Functional.LsAttention(new LsAttentionConfig(cfg.Window, cfg.Rank), q, k, v, kn, vn, mask);
        x = Functional.Add(x, Linear(Functional.MergeHeads(attention), a + "W_o"));
        x = Functional.Add(x, Linear(Functional.Gelu(Linear(Norm(x, b + "norm2"), b + "mlpblock.0")), b + "mlpblock.3"));
    }
    var feature = Functional.MaskedMean(Norm(x, "model.norm"), mask);
    var logits = Linear(Functional.Relu(Linear(feature, "seq_classifer.mlpblock.0")), "seq_classifer.mlpblock.2").ToArray();
    return [.. Enumerable.Range(0, B).Select(r =>
    {
        var row = logits.AsSpan(r * cfg.Classes, cfg.Classes).ToArray().Select(v => (double)v).ToArray();
        var max = row.Max();
        var e = row.Select(v => Math.Exp(v - max)).ToArray();
        var sum = e.Sum();
        return e.Select(v => (float)(v / sum)).ToArray();
    })];
}

var mine = Encode();
var theirs = model.Classify(sequences);
var diff = mine.Zip(theirs, (a, b) => a.Zip(b, (u, v) => Math.Abs(u - v)).Max()).Max();
for (var s = 0; s < sequences.Length; s++)
    Console.WriteLine($"sequence of {sequences[s].Length,2} tokens: by hand [{string.Join(", ", mine[s].Select(v => v.ToString("F6")))}]  " +
                      $"LraClassifier [{string.Join(", ", theirs[s].Select(v => v.ToString("F6")))}]");
Console.WriteLine($"max |difference| {diff:E2} on {be.Device}");
// Same ops on the same backend, but the graph may fuse a bias into its GEMM or a GELU into its bias add: fp32 rounding apart.
if (diff > 1e-5f) { Console.Error.WriteLine("the hand-built encoder differs from LraClassifier"); return 1; }
Console.WriteLine("example: ok");
return 0;
