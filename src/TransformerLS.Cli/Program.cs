using System.CommandLine;
using TransformerLS.Cli;

var device = new Option<string>("--device") { Description = "auto | cpu | cuda | cuda:N", DefaultValueFactory = _ => "auto" };
var seed = new Option<int?>("--seed") { Description = "seed for the random inputs (default: a fresh one each run)" };
var filter = new Option<string?>("--filter") { Description = "run only cases whose name contains this text" };

var info = new Command("info", "Devices, driver, NVRTC and cuBLAS versions, kernel compile status");
info.SetAction(_ => InfoCommand.Run());

var check = new Command("check", "Everything `info` prints, then the op conformance table on every available backend") { device, seed, filter };
check.SetAction(r => CheckCommand.Run(r.GetValue(device)!, r.GetValue(seed), r.GetValue(filter)));

var tokens = new Option<int>("--tokens") { Description = "tokens per call (B = tokens / N)", DefaultValueFactory = _ => 65536 };
var runs = new Option<int>("--runs") { Description = "timed runs per shape (median reported)", DefaultValueFactory = _ => 30 };
var timeAttention = new Command("time-attention", "CUDA-event timings of the fused LS attention forward and backward, N = 1K, 4K, 16K, 64K") { tokens, runs };
timeAttention.SetAction(r => TimeAttentionCommand.Run(r.GetValue(tokens), heads: 8, headDim: 64, window: 128, rank: 64, r.GetValue(runs)));

var root = new RootCommand("TransformerLS.Native: Long-Short Transformer kernels for .NET") { info, check, timeAttention };
return root.Parse(args).Invoke();
