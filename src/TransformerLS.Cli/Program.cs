using System.CommandLine;
using TransformerLS.Cli;

var defaults = new TransformerLS.Training.TrainConfig(); // the help shows the config's own defaults
var device = new Option<string>("--device") { Description = "auto | cpu | cuda | cuda:N", DefaultValueFactory = _ => "auto" };
var seed = new Option<int?>("--seed") { Description = $"check: seed of the random inputs (default: a fresh one each run); train: seed of the weights, data and dropout (default {defaults.Seed}); generate: sampling seed (default: a fresh one)" };
var filter = new Option<string?>("--filter") { Description = "run only cases whose name contains this text" };

var info = new Command("info", "Devices, driver, NVRTC and cuBLAS versions, kernel compile status");
info.SetAction(_ => InfoCommand.Run());

var check = new Command("check", "Everything `info` prints, then the op conformance table on every available backend") { device, seed, filter };
check.SetAction(r => CheckCommand.Run(r.GetValue(device)!, r.GetValue(seed), r.GetValue(filter)));

var config = new Option<string?>("--config") { Description = "JSON training config (camelCase fields of TrainConfig; flags override it)" };
var task = new Option<string?>("--task") { Description = $"listops | lm (default {defaults.Task})" };
var data = new Option<string?>("--data") { Description = "byte file for the lm task (enwik8 gets its 90M/5M/5M split)" };
var steps = new Option<int?>("--steps") { Description = $"optimizer steps (default {defaults.Steps})" };
var batch = new Option<int?>("--batch") { Description = $"sequences per micro-batch (default {defaults.Batch})" };
var lr = new Option<float?>("--lr") { Description = $"peak learning rate (default {defaults.Lr})" };
var dtype = new Option<string?>("--dtype") { Description = $"float32 | bfloat16 (bf16 weights with fp32 masters; default {defaults.DType})" };
var recompute = new Option<bool?>("--recompute") { Description = "recompute each layer's activations in the backward" };
var accumulate = new Option<int?>("--accumulate") { Description = $"micro-batches per optimizer step (default {defaults.Accumulate})" };
var cudaGraph = new Option<bool?>("--cuda-graph") { Description = "replay each training and evaluation run from a CUDA graph (GPU only)" };
var save = new Option<string?>("--checkpoint") { Description = "write model + optimizer state here (safetensors) at the end; its folder is checked before the first step" };
var warmup = new Option<int?>("--warmup") { Description = "warm-up steps (default: 20, or steps - 1 for shorter runs)" };
var saveEvery = new Option<int>("--save-every") { Description = "with --checkpoint: also save every N steps (0: only at the end; Ctrl+C and SIGTERM always save before exit)" };
var evalEvery = new Option<int>("--eval-every") { Description = "also evaluate on held-out data every N steps and print the metric (0: only before and after)" };
var changedData = new Option<bool>("--changed-data") { Description = "with --resume: continue an lm run even though its byte file changed since the checkpoint" };
var printConfig = new Option<bool>("--print-config") { Description = "print the effective config (file, defaults and flags merged) as JSON and exit" };
var resume = new Option<string?>("--resume") { Description = "continue from a checkpoint written by train, with its config (only --steps and the run options may change)" };
var train = new Command("train", "Train the LRA classifier on generated ListOps or the causal LM on a byte file")
    { config, task, data, steps, batch, lr, dtype, seed, recompute, accumulate, cudaGraph, device, save, resume, warmup, printConfig, saveEvery, evalEvery, changedData };
train.SetAction(r => TrainCommand.Train(r.GetValue(config), new TrainCommand.Overrides(r.GetValue(task), r.GetValue(data), r.GetValue(steps),
    r.GetValue(batch), r.GetValue(lr), r.GetValue(dtype), r.GetValue(seed), r.GetValue(recompute), r.GetValue(accumulate),
    r.GetValue(cudaGraph), r.GetValue(warmup)), r.GetValue(device)!, r.GetValue(save), r.GetValue(resume), r.GetValue(printConfig), r.GetValue(saveEvery), changedData: r.GetValue(changedData), evalEvery: r.GetValue(evalEvery)));

var checkpointArg = new Argument<string>("checkpoint") { Description = "a checkpoint written by tls train" };
var evalBatches = new Option<int?>("--batches") { Description = "held-out batches (default: the config's evalBatches)" };
var evalData = new Option<string?>("--data") { Description = "the lm byte file to evaluate on (default: the path stored in the checkpoint)" };
var eval = new Command("eval", "Held-out accuracy (listops) or bits per byte (lm) of a checkpoint") { checkpointArg, device, evalBatches, evalData };
eval.SetAction(r => TrainCommand.Eval(r.GetValue(checkpointArg)!, r.GetValue(device)!, r.GetValue(evalBatches), r.GetValue(evalData)));

var prompt = new Option<string>("--prompt") { Description = "text to continue", DefaultValueFactory = _ => "" };
var count = new Option<int>("--max-bytes", "--bytes") { Description = "most bytes to generate per prompt", DefaultValueFactory = _ => 200 };
var temperature = new Option<float>("--temperature") { Description = "sampling temperature (0: greedy)", DefaultValueFactory = _ => 0.8f };
var topK = new Option<int>("--top-k") { Description = "sample among the k most likely bytes only (0: all)", DefaultValueFactory = _ => 0 };
var topP = new Option<float>("--top-p") { Description = "sample among the most likely bytes whose mass reaches p (1: all)", DefaultValueFactory = _ => 1f };
var stop = new Option<string?>("--stop") { Description = "stop a sequence once its output ends with this text" };
var promptsFile = new Option<string?>("--prompts") { Description = "a file of prompts, one per line, generated as one batch (instead of --prompt)" };
var generate = new Command("generate", "Sample bytes from a causal LM checkpoint (incremental decoding)") { checkpointArg, prompt, promptsFile, count, temperature, topK, topP, stop, seed, device };
generate.SetAction(r => GenerateCommand.Run(r.GetValue(checkpointArg)!, r.GetValue(device)!, new GenerateOptions(r.GetValue(prompt)!, r.GetValue(count),
    r.GetValue(temperature), r.GetValue(seed), r.GetValue(topK), r.GetValue(topP), r.GetValue(stop), r.GetValue(promptsFile))));

var referenceArg = new Argument<string>("reference") { Description = "a state_dict of the official code, exported to safetensors (README)" };
var convertOut = new Option<string>("--out") { Description = "the library checkpoint to write (never overwritten)", Required = true };
var notStrict = new Option<bool>("--not-strict") { Description = "load what matches and list the missing and unexpected keys instead of refusing" };
var convert = new Command("convert", "Write a library checkpoint from a reference state_dict (the model's config from --config and the flags)")
    { referenceArg, convertOut, config, task, data, dtype, notStrict, device };
convert.SetAction(r => ConvertCommand.Run(r.GetValue(referenceArg)!, r.GetValue(convertOut)!, r.GetValue(config), r.GetValue(task), r.GetValue(data),
    r.GetValue(dtype), !r.GetValue(notStrict), r.GetValue(device)!));

var classifyInput = new Option<string>("--input") { Description = "a file of ListOps expressions, one per line (LRA's text form)", Required = true };
var classifyBatch = new Option<int>("--batch") { Description = "sequences per run", DefaultValueFactory = _ => 64 };
var classify = new Command("classify", "The class and its probability for each expression of a file, from a listops checkpoint")
    { checkpointArg, classifyInput, classifyBatch, device };
classify.SetAction(r => ClassifyCommand.Run(r.GetValue(checkpointArg)!, r.GetValue(classifyInput)!, r.GetValue(classifyBatch), r.GetValue(device)!));

var root = new RootCommand("TransformerLS.Native: Long-Short Transformer kernels for .NET") { info, check, train, eval, generate, convert, classify };
return root.Parse(args).Invoke();
