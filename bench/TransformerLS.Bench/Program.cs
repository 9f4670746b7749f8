using System.CommandLine;
using TransformerLS.Backends;
using TransformerLS.Bench;
using TransformerLS.Tensors;

// tls-bench: kernel microbenchmarks, memory-scaling sweeps and the library's side of the peer comparison.
// Every command writes its results into --out (JSON/CSV/markdown/SVG) and prints a summary.
var device = new Option<string>("--device") { Description = "auto | cpu | cuda | cuda:N", DefaultValueFactory = _ => "auto" };
var outDir = new Option<string>("--out") { Description = "results folder", DefaultValueFactory = _ => "bench-results" };
var runs = new Option<int>("--runs") { Description = "timed runs per case (median reported)", DefaultValueFactory = _ => 30 };
var tokens = new Option<int>("--tokens") { Description = "tokens per call (B = tokens / N)", DefaultValueFactory = _ => 65536 };
var dtypes = new Option<string>("--dtype") { Description = "bf16, fp32 or both (comma-separated)", DefaultValueFactory = _ => "bf16,fp32" };

var n = new Option<string>("--n") { Description = "sequence length(s) of the bidirectional kernels, comma-separated (1024,4096,16384,65536: the same tokens per call at each)", DefaultValueFactory = _ => "4096" };
var filter = new Option<string?>("--filter") { Description = "run only kernels whose family.kernel contains one of these comma-separated texts (e.g. ls_attention,layer_norm)" };
var gemm = new Option<int>("--ceiling-gemm") { Description = "size of the square bf16 GEMM that measures the matrix ceiling", DefaultValueFactory = _ => 8192 };
var copyMib = new Option<int>("--ceiling-copy-mib") { Description = "MiB of the device-to-device copy that measures the copy ceiling", DefaultValueFactory = _ => 1024 };
var kernels = new Command("kernels", "Per-kernel device time (CUDA events, L2 flushed), TFLOP/s and GB/s against the measured ceilings")
    { device, outDir, runs, tokens, n, dtypes, filter, gemm, copyMib };
kernels.SetAction(r => Commands.Kernels(r.GetValue(device)!, r.GetValue(outDir)!, r.GetValue(runs), r.GetValue(tokens), r.GetValue(n)!,
    r.GetValue(dtypes)!, r.GetValue(filter), r.GetValue(gemm), r.GetValue(copyMib)));

var layer = new Option<string>("--layer") { Description = "ls, full or both (comma-separated)", DefaultValueFactory = _ => "ls,full" };
var start = new Option<int>("--start") { Description = "first length of the sweep", DefaultValueFactory = _ => 1024 };
var maxLength = new Option<int>("--max-length") { Description = "longest length tried", DefaultValueFactory = _ => 1 << 24 };
var timeCap = new Option<double>("--time-cap-ms") { Description = "stop once a forward + backward step takes longer", DefaultValueFactory = _ => 10_000 };
var sweepRuns = new Option<int>("--runs") { Description = "timed runs per length (median reported)", DefaultValueFactory = _ => 5 };
var dim = new Option<int>("--dim") { Description = "model width D", DefaultValueFactory = _ => 512 };
var heads = new Option<int>("--heads") { Description = "heads H", DefaultValueFactory = _ => 8 };
var window = new Option<int>("--window") { Description = "LS window w", DefaultValueFactory = _ => 128 };
var rank = new Option<int>("--rank") { Description = "LS rank r", DefaultValueFactory = _ => 64 };
var keepKeys = new Option<bool>("--keep-keys") { Description = "keep the LS layer's key path (raw keys / values, scores) through the backward instead of recomputing it there" };
var pastIndexLimit = new Option<bool>("--past-index-limit") { Description = "try lengths whose [N, D] tensors pass 2^31 elements (stopped there by default)" };
var scale = new Command("scale", "Batch-1 memory-scaling sweep of the LS layer and the full-attention baseline: CSV and log-log SVG plots")
    { device, outDir, layer, dtypes, start, maxLength, timeCap, sweepRuns, dim, heads, window, rank, keepKeys, pastIndexLimit };
scale.SetAction(r => Commands.Scale(r.GetValue(device)!, r.GetValue(outDir)!, r.GetValue(layer)!, r.GetValue(dtypes)!, r.GetValue(start),
    r.GetValue(maxLength), r.GetValue(timeCap), r.GetValue(sweepRuns), r.GetValue(dim), r.GetValue(heads), r.GetValue(window), r.GetValue(rank), !r.GetValue(keepKeys), r.GetValue(pastIndexLimit)));

var lengths = new Option<string>("--lengths") { Description = "sequence lengths, comma-separated", DefaultValueFactory = _ => "1024,4096,16384,65536" };
var layerRuns = new Option<int>("--runs") { Description = "timed runs per shape (median reported)", DefaultValueFactory = _ => 20 };
var layers = new Command("layers", "The LS and full-attention layers at a fixed token count per step, forward and forward + backward (the peers' shapes)")
    { device, outDir, layer, dtypes, tokens, lengths, layerRuns, dim, heads, window, rank };
layers.SetAction(r => Commands.Layers(r.GetValue(device)!, r.GetValue(outDir)!, r.GetValue(layer)!, r.GetValue(dtypes)!, r.GetValue(tokens),
    r.GetValue(lengths)!, r.GetValue(layerRuns), r.GetValue(dim), r.GetValue(heads), r.GetValue(window), r.GetValue(rank)));

var shapes = new Option<string>("--shapes") { Description = "LENGTHxBATCH list (memory M = L unless --memory)", DefaultValueFactory = _ => "2048x4,8192x1,32768x1" };
var modelLayers = new Option<int>("--layers") { Description = "layers", DefaultValueFactory = _ => 12 };
var hidden = new Option<int>("--hidden") { Description = "feed-forward width", DefaultValueFactory = _ => 2048 };
var lmWindow = new Option<int>("--window") { Description = "causal window w", DefaultValueFactory = _ => 512 };
var chunk = new Option<int>("--chunk") { Description = "chunk length l", DefaultValueFactory = _ => 16 };
var lmRank = new Option<int>("--rank") { Description = "rank r per chunk", DefaultValueFactory = _ => 1 };
var memory = new Option<int?>("--memory") { Description = "remembered states M per layer (default: L)" };
var modelRuns = new Option<int>("--runs") { Description = "timed steps (median reported)", DefaultValueFactory = _ => 10 };
var modelWarmup = new Option<int>("--warmup") { Description = "untimed steps first", DefaultValueFactory = _ => 3 };
var graphs = new Option<bool>("--cuda-graph") { Description = "replay each step from a CUDA graph" };
var model = new Command("model", "The causal LM's whole training step (enwik8-base by default) at several lengths: model.rows.json and model.md")
    { device, outDir, shapes, dtypes, modelLayers, dim, heads, hidden, lmWindow, chunk, lmRank, memory, modelRuns, modelWarmup, graphs };
model.SetAction(r => Commands.Model(r.GetValue(device)!, r.GetValue(outDir)!, r.GetValue(shapes)!, r.GetValue(dtypes)!, r.GetValue(modelLayers),
    r.GetValue(dim), r.GetValue(heads), r.GetValue(hidden), r.GetValue(lmWindow), r.GetValue(chunk), r.GetValue(lmRank), r.GetValue(memory),
    r.GetValue(modelRuns), r.GetValue(modelWarmup), r.GetValue(graphs)));

var exportBatch = new Option<int>("--batch") { Description = "batch", DefaultValueFactory = _ => 2 };
var exportN = new Option<int>("--n") { Description = "sequence length (a multiple of --window)", DefaultValueFactory = _ => 256 };
var exportDim = new Option<int>("--dim") { Description = "model width D", DefaultValueFactory = _ => 64 };
var exportHeads = new Option<int>("--heads") { Description = "heads H", DefaultValueFactory = _ => 4 };
var exportWindow = new Option<int>("--window") { Description = "LS window w", DefaultValueFactory = _ => 32 };
var exportRank = new Option<int>("--rank") { Description = "LS rank r", DefaultValueFactory = _ => 8 };
var batches = new Option<string>("--batches") { Description = "decode batch sizes, comma-separated", DefaultValueFactory = _ => "1,64" };
var contexts = new Option<string>("--contexts") { Description = "context lengths before the timed decode steps, comma-separated (M is raised to the longest)", DefaultValueFactory = _ => "1024,2048" };
var decodeSteps = new Option<int>("--steps") { Description = "timed decode steps (median reported)", DefaultValueFactory = _ => 32 };
var noPeer = new Option<bool>("--no-peer") { Description = "skip the block-recompute sampler's rows" };
var profileSteps = new Option<bool>("--profile") { Description = "bracket the timed decode steps with cuProfilerStart/Stop (for ncu --profile-from-start off)" };
var profilePrefill = new Option<bool>("--profile-prefill") { Description = "bracket the warm block prefills with cuProfilerStart/Stop instead" };
var decode = new Command("decode", "Generation with the causal LM (enwik8-base by default): prefill and decode tokens/s, ms/token vs context; decode.rows.json and decode.md")
    { device, outDir, batches, contexts, dtypes, modelLayers, dim, heads, hidden, lmWindow, chunk, lmRank, decodeSteps, noPeer, profileSteps, profilePrefill };
decode.SetAction(r => Commands.Decode(r.GetValue(device)!, r.GetValue(outDir)!, r.GetValue(batches)!, r.GetValue(contexts)!, r.GetValue(dtypes)!, r.GetValue(modelLayers),
    r.GetValue(dim), r.GetValue(heads), r.GetValue(hidden), r.GetValue(lmWindow), r.GetValue(chunk), r.GetValue(lmRank), r.GetValue(decodeSteps), !r.GetValue(noPeer), r.GetValue(profileSteps), r.GetValue(profilePrefill)));

var exportLayer = new Command("export-layer", "The LS layer's weights, an input and the library's output (CPU) for bench/peers/check_ls_layer.py")
    { outDir, exportBatch, exportN, exportDim, exportHeads, exportWindow, exportRank };
exportLayer.SetAction(r => Commands.ExportLayer(r.GetValue(outDir)!, r.GetValue(exportBatch), r.GetValue(exportN), r.GetValue(exportDim),
    r.GetValue(exportHeads), r.GetValue(exportWindow), r.GetValue(exportRank)));

var exportCausal = new Command("export-causal", "A tiny causal LM's weights, a two-block byte stream and the library's logits (CPU, float64) for bench/peers/check_causal_lm.py")
    { outDir };
exportCausal.SetAction(r => Commands.ExportCausal(r.GetValue(outDir)!));

var dir = new Argument<string>("results") { Description = "a results folder holding *.rows.json (this program's and bench/peers')" };
var table = new Command("table", "Merges every *.rows.json of a results folder into one markdown/CSV table and sweep plots") { dir };
table.SetAction(r => Commands.Table(r.GetValue(dir)!));

var root = new RootCommand("tls-bench: TransformerLS.Native microbenchmarks, memory-scaling studies and side-by-side runs") { kernels, scale, layers, model, decode, exportLayer, exportCausal, table };
return root.Parse(args).Invoke();
