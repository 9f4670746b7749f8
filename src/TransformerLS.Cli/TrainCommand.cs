using System.Runtime.InteropServices;
using Spectre.Console;
using TransformerLS.Backends;
using TransformerLS.Checkpoints;
using TransformerLS.Cuda;
using TransformerLS.Tensors;
using TransformerLS.Training;

namespace TransformerLS.Cli;

/// <summary>`tls train` and `tls eval`: a run from a JSON config and flags, with a progress bar and a result line.</summary>
static class TrainCommand
{
    /// <summary>Flags that override the config file (null: keep the file's or the default value).</summary>
    public sealed record Overrides(string? Task, string? Data, int? Steps, int? Batch, float? Lr, string? DType, int? Seed, bool? Recompute, int? Accumulate,
        bool? CudaGraph, int? Warmup = null);

    /// <param name="saveEvery">With a checkpoint path: also save every this many steps (0: only at the end).</param>
    /// <param name="stop">Cancels the run as SIGINT / SIGTERM do (tests).</param>
    /// <param name="changedData">Resume an lm run even though its byte file changed since the checkpoint.</param>
    public static int Train(string? configPath, Overrides o, string device, string? checkpoint, string? resume, bool printConfig = false,
        int saveEvery = 0, CancellationToken stop = default, bool changedData = false, int evalEvery = 0)
    {
        // Ctrl+C and SIGTERM stop the run at the next step boundary; the checkpoint is then written before exit.
        using var interrupt = CancellationTokenSource.CreateLinkedTokenSource(stop);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; interrupt.Cancel(); };
        Console.CancelKeyPress += onCancel;
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; interrupt.Cancel(); });
        try
        {
            if (saveEvery < 0) throw new ArgumentOutOfRangeException("save-every", saveEvery, $"--save-every is {saveEvery}; expected 0 (only at the end) or a step count");
            if (saveEvery > 0 && checkpoint is null) throw new ArgumentException("--save-every needs --checkpoint: the path to save to", "save-every");
            if (evalEvery < 0) throw new ArgumentOutOfRangeException("eval-every", evalEvery, $"--eval-every is {evalEvery}; expected 0 (only before and after) or a step count");
            // A resumed run without --config takes its config from the checkpoint.
            var stored = resume is null ? null : Trainer.ConfigOf(resume);
            var cfg = configPath is not null ? TrainConfig.Load(configPath) : stored ?? new TrainConfig();
            cfg = cfg with
            {
                Task = o.Task ?? cfg.Task, Data = o.Data ?? cfg.Data, Steps = o.Steps ?? cfg.Steps, Batch = o.Batch ?? cfg.Batch, Lr = o.Lr ?? cfg.Lr,
                DType = o.DType ?? cfg.DType, Seed = o.Seed ?? cfg.Seed, Recompute = o.Recompute ?? cfg.Recompute, Accumulate = o.Accumulate ?? cfg.Accumulate,
                CudaGraph = o.CudaGraph ?? cfg.CudaGraph, Warmup = o.Warmup ?? cfg.Warmup,
            };
            cfg.Validate();
            if (stored is not null) RefuseChanges(stored, cfg, resume!);
            if (printConfig) { Console.WriteLine((cfg with { Warmup = cfg.EffectiveWarmup }).ToJson()); return 0; }
            if (checkpoint is not null) CheckWritable(checkpoint);
            using var hold = checkpoint is null ? null : CheckpointLock.Take(checkpoint);
            using var be = BackendFactory.Open(device);
            // Sized from the config before anything is allocated: a model too large for the device is refused by name,
            // and a large one is announced before it takes its time to build.
            var (parameters, state, available) = (TrainSize.Parameters(cfg), TrainSize.StateBytes(cfg), AvailableBytes(be));
            if (state > available)
                throw new InsufficientMemoryException($"the {cfg.Task} model has {parameters:N0} parameters: {Mib(state)} of weights, gradients and " +
                    $"optimizer state, more than the {Mib(available)} available on {be.Device}; choose smaller sizes in the config");
            Console.WriteLine($"tls train: building {parameters:N0} parameters ({Mib(state)} with gradients and optimizer state) on {be.Device}");
            using var trainer = new Trainer(be, cfg);
            if (resume is not null) trainer.Resume(resume, changedData);
            var plan = trainer.Task.Executor.TrainingPlan;
            Console.WriteLine($"tls train: task {cfg.Task}, {cfg.DType}, {trainer.Task.Parameters.Count:N0} parameters, on {be.Device}; " +
                $"{cfg.Steps} steps of {cfg.Accumulate} x {trainer.Task.TokensPerBatch:N0} tokens; planned activation peak {Mib(plan.PeakBytes)} " +
                $"(without reuse {Mib(plan.NoReuseBytes)}{(cfg.Recompute ? ", recomputing each layer" : "")})" +
                (cfg.CudaGraph ? be is CudaBackend ? "; runs replayed from CUDA graphs" : "; --cuda-graph has no effect on the CPU" : ""));
            TrainResult result = null!;
            var evals = new List<string>();
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var bar = ctx.AddTask("training", maxValue: cfg.Steps);
                    bar.Value = trainer.Step;
                    result = trainer.Run(p =>
                    {
                        bar.Value = p.Step;
                        bar.Description = $"step {p.Step}/{p.Steps} loss {p.Loss:F4} lr {p.Lr:E2} {p.TokensPerSecond:N0} tok/s";
                    }, interrupt.Token, step =>
                    {
                        if (saveEvery > 0 && step % saveEvery == 0 && step < cfg.Steps) trainer.Save(checkpoint!);
                        if (evalEvery > 0 && step % evalEvery == 0 && step < cfg.Steps)
                        {
                            // Separate executors and held-out data: the training run's state is untouched.
                            var (metric, value, loss) = trainer.Task.Evaluate(cfg.EvalBatches);
                            evals.Add($"  eval at step {step,6}: {metric} {value:F4}, held-out loss {loss:F4}");
                        }
                    });
                });
            foreach (var line in evals) Console.WriteLine(line);
            foreach (var (step, loss) in result.Losses.Where((_, i) => i % Math.Max(1, result.Losses.Count / 10) == 0 || i == result.Losses.Count - 1))
                Console.WriteLine($"  step {step,6}  loss {loss:F4}");
            Console.WriteLine($"{result.Metric}: {result.Before:F4} before, {result.After:F4} after, chance {result.Chance:F4} (held-out loss {result.LossBefore:F4} -> {result.LossAfter:F4}); " +
                $"{result.TokensPerSecond:N0} tokens/s; activation peak planned {Mib(result.PlannedPeakBytes)}, measured {Mib(result.MeasuredPeakBytes)}");
            if (checkpoint is not null)
            {
                trainer.Save(checkpoint);
                Console.WriteLine($"checkpoint: {checkpoint}");
            }
            if (interrupt.IsCancellationRequested && trainer.Step < cfg.Steps)
            {
                Console.Error.WriteLine($"tls train: interrupted after step {trainer.Step} of {cfg.Steps}" + (checkpoint is null
                    ? " (no --checkpoint: nothing saved)" : $"; saved to {checkpoint}, continue with --resume {checkpoint} and the same config"));
                return 130;
            }
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or CheckpointException or CudaException or CudaLibraryNotFoundException
            or UnauthorizedAccessException or NonFiniteLossException or InsufficientMemoryException)
        {
            Console.Error.WriteLine($"tls train: {CliErrors.Message(e)}");
            return 2;
        }
        catch (OutOfMemoryException)
        {
            Console.Error.WriteLine($"tls train: out of memory on the CPU ({Mib(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes)} available to this process); " +
                "use smaller sizes, a smaller batch (--batch) or --recompute");
            return 2;
        }
        finally { Console.CancelKeyPress -= onCancel; }
    }

    /// <summary>Bytes a new allocation can still get: the device's free memory, or the memory the GC may still use.</summary>
    static long AvailableBytes(IBackend be) => be is CudaBackend cuda
        ? cuda.Context.MemoryInfo().Free
        : Math.Max(0, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes - GC.GetTotalMemory(false));

    /// <param name="data">The lm task's byte file, instead of the path stored in the checkpoint (which is relative to where training ran).</param>
    public static int Eval(string checkpoint, string device, int? batches, string? data = null)
    {
        try
        {
            if (batches is < 1) throw new ArgumentOutOfRangeException("batches", batches, $"--batches is {batches}; expected at least 1 held-out batch");
            var cfg = Trainer.ConfigOf(checkpoint);
            if (data is not null)
            {
                if (cfg.Task != "lm") throw new ArgumentException($"--data is for lm checkpoints; {checkpoint} holds a {cfg.Task} model", "data");
                cfg = cfg with { Data = data };
            }
            using var be = BackendFactory.Open(device);
            using var trainer = new Trainer(be, cfg);
            trainer.Resume(checkpoint, changedData: data is not null); // a file named by --data is the one to evaluate, whatever the checkpoint saw
            (string Metric, double Value, double Loss) r = default;
            var (wanted, evaluated) = (batches ?? cfg.EvalBatches, 0);
            if (AnsiConsole.Profile.Capabilities.Interactive)
                AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var bar = ctx.AddTask("evaluating", maxValue: Math.Max(1, wanted));
                        r = trainer.Task.Evaluate(wanted, (done, total) =>
                        {
                            evaluated = done;
                            bar.MaxValue = Math.Max(1, total);
                            bar.Value = done;
                            bar.Description = $"evaluating: batch {done}/{total}";
                        });
                    });
            else // a log, not a terminal: a line at every tenth of the batches
                r = trainer.Task.Evaluate(wanted, (done, total) =>
                {
                    evaluated = done;
                    if (done == total || done % Math.Max(1, total / 10) == 0) Console.Error.WriteLine($"tls eval: evaluating: batch {done}/{total}");
                });
            var (metric, value, loss) = r;
            Console.WriteLine($"{checkpoint} (task {cfg.Task}, step {trainer.Step}): {metric} {value:F4}, held-out loss {loss:F4} " +
                $"over {evaluated} held-out batches{(evaluated < wanted ? $" (of {wanted} asked: the held-out set has no more)" : "")}");
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or CheckpointException or CudaException or CudaLibraryNotFoundException)
        {
            Console.Error.WriteLine($"tls eval: {CliErrors.Message(e)}");
            return 2;
        }
    }

    /// <summary>
    /// A resumed run continues the stored one: only the step count (to extend it), logging, evaluation size, recomputation
    /// and CUDA graphs may differ; any other change (data, lr, seed, model, ...) is refused, naming the fields.
    /// </summary>
    static void RefuseChanges(TrainConfig stored, TrainConfig cfg, string resume)
    {
        var safe = cfg with { Steps = stored.Steps, LogEvery = stored.LogEvery, EvalBatches = stored.EvalBatches, Recompute = stored.Recompute, CudaGraph = stored.CudaGraph };
        var (a, b) = (System.Text.Json.JsonSerializer.SerializeToNode(stored, TrainConfig.Json)!.AsObject(), System.Text.Json.JsonSerializer.SerializeToNode(safe, TrainConfig.Json)!.AsObject());
        var changed = a.Where(p => !System.Text.Json.Nodes.JsonNode.DeepEquals(p.Value, b[p.Key])).Select(p => $"{p.Key} ({p.Value?.ToJsonString()} -> {b[p.Key]?.ToJsonString()})").ToArray();
        if (changed.Length > 0)
            throw new ArgumentException($"--resume {resume}: a resumed run keeps the checkpoint's config, but this one changes {string.Join(", ", changed)}; " +
                "only steps, logEvery, evalBatches, recompute and cudaGraph may change (start a new run without --resume to change the rest)", "resume");
    }

    /// <summary>
    /// Fails before the first step (not after the run) when the checkpoint path is a folder or its folder is missing;
    /// taking the <see cref="CheckpointLock"/> next is the write test of the folder.
    /// </summary>
    internal static void CheckWritable(string checkpoint)
    {
        var full = Path.GetFullPath(checkpoint);
        var dir = Path.GetDirectoryName(full)!;
        if (Directory.Exists(full)) throw new ArgumentException($"--checkpoint '{checkpoint}' is a folder; expected a file path such as {Path.Combine(checkpoint, "run.safetensors")}", "checkpoint");
        if (!Directory.Exists(dir)) throw new ArgumentException($"--checkpoint '{checkpoint}': the folder '{dir}' does not exist; create it first or choose another path", "checkpoint");
    }

    static string Mib(long bytes) => $"{bytes / 1048576.0:F1} MiB";
}
