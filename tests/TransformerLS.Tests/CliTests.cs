using TransformerLS.Cli;
using TransformerLS.Training;

namespace TransformerLS.Tests;

/// <summary>
/// Config semantics and the `tls` verbs run in-process on the CPU: exit codes and the named error each bad input
/// gets (issue 16's cases that are in place so far).
/// </summary>
[Collection(CliCollection.Name)]
public class CliTests
{
    [Fact]
    public void A_nested_config_object_overrides_only_the_fields_it_names()
    {
        var defaults = new TrainConfig();
        var cfg = TrainConfig.FromJson("""{"task":"lm","data":"x.bin","steps":20,"lm":{"layers":1}}""");
        Assert.Equal(1, cfg.Lm.Layers);
        Assert.Equal(defaults.Lm with { Layers = 1 }, cfg.Lm); // every other lm field is the CLI's small default, not the large model's
        Assert.Equal(defaults.Lra, cfg.Lra);
        Assert.Equal((20, "lm", "x.bin"), (cfg.Steps, cfg.Task, cfg.Data));
        Assert.Equal(defaults.Lr, cfg.Lr);
    }

    [Theory]
    [InlineData("""{"lm":{"layerz":1}}""", "layerz")]
    [InlineData("""{"lm":null}""", "lm is null")]
    [InlineData("""[1,2]""", "JSON object")]
    [InlineData("""{"steps":"many"}""", "steps")]
    public void Bad_config_json_is_a_named_error(string json, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => TrainConfig.FromJson(json, "config file 'run.json'"));
        Assert.Contains("run.json", e.Message);
        Assert.Contains(expected, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Lra_classes_other_than_ten_are_rejected_for_listops_not_ignored()
    {
        var cfg = TrainConfig.FromJson("""{"lra":{"classes":5}}""");
        var e = Assert.Throws<ArgumentException>(cfg.Validate);
        Assert.Contains("lra.classes is 5", e.Message);
    }

    [Fact]
    public void A_zero_chunk_length_is_a_named_error_not_a_division_by_zero()
    {
        var cfg = TrainConfig.FromJson("""{"task":"lm","data":"x.bin","lm":{"chunkLength":0}}""");
        var e = Assert.ThrowsAny<ArgumentException>(cfg.Validate);
        Assert.Contains("ChunkLength", e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(5, 4)]
    [InlineData(600, 20)]
    public void Short_runs_validate_with_the_default_warmup(int steps, int warmup)
    {
        var cfg = new TrainConfig { Steps = steps };
        cfg.Validate();
        Assert.Equal(warmup, cfg.EffectiveWarmup);
        Assert.Equal(3, (cfg with { Warmup = 3, Steps = Math.Max(3, steps) }).EffectiveWarmup);
    }

    static (int Code, string Out, string Err) Run(Func<int> verb)
    {
        var (o, e) = (Console.Out, Console.Error);
        using StringWriter so = new(), se = new();
        Console.SetOut(so); Console.SetError(se);
        // Spectre.Console keeps the writer it first saw: point it at this run's (its progress bar goes there too).
        var ansi = Spectre.Console.AnsiConsole.Console;
        Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings { Out = new Spectre.Console.AnsiConsoleOutput(so) });
        try { return (verb(), so.ToString(), se.ToString()); }
        finally { Console.SetOut(o); Console.SetError(e); Spectre.Console.AnsiConsole.Console = ansi; }
    }

    static TrainCommand.Overrides Steps(int n) => new(null, null, n, null, null, null, null, null, null, null);

    [Fact]
    public void Print_config_shows_the_effective_config_and_trains_nothing()
    {
        var (code, output, _) = Run(() => TrainCommand.Train(null, Steps(5), "cpu", null, null, printConfig: true));
        Assert.Equal(0, code);
        var shown = TrainConfig.FromJson(output);
        Assert.Equal((5, 4), (shown.Steps, shown.Warmup));
        Assert.Equal(new TrainConfig().Lra, shown.Lra);
    }

    [Fact]
    public void A_checkpoint_path_in_a_missing_folder_fails_before_the_first_step()
    {
        var path = Path.Combine(Path.GetTempPath(), $"tls-no-such-{Guid.NewGuid():N}", "x.safetensors");
        var (code, output, err) = Run(() => TrainCommand.Train(null, Steps(600), "cpu", path, null));
        Assert.Equal(2, code);
        Assert.Contains("does not exist", err);
        Assert.DoesNotContain("(Parameter", err);
        Assert.DoesNotContain("step", output); // refused before training started
    }

    [Fact]
    public void An_interrupted_run_saves_its_checkpoint_and_exits_130()
    {
        var dir = Directory.CreateTempSubdirectory("tls-cli-").FullName;
        var ckpt = Path.Combine(dir, "run.safetensors");
        try
        {
            using var stop = new CancellationTokenSource();
            stop.Cancel(); // as a Ctrl+C before the first step would
            var small = new TrainCommand.Overrides(null, null, 5, 2, null, null, null, null, null, null);
            var (code, _, err) = Run(() => TrainCommand.Train(null, small, "cpu", ckpt, null, stop: stop.Token));
            Assert.Equal(130, code);
            Assert.Contains("interrupted after step 0 of 5", err);
            Assert.Contains($"--resume {ckpt}", err);
            Assert.True(File.Exists(ckpt), "the interrupted run saved nothing");
            Assert.Empty(Directory.GetFiles(dir, "*.tmp")); // written atomically, no temp file left
            using var resumed = new Trainer(new Backends.CpuBackend(), Trainer.ConfigOf(ckpt));
            resumed.Resume(ckpt);
            Assert.Equal(0, resumed.Step);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData(-1, true, "--save-every is -1")]
    [InlineData(2, false, "--save-every needs --checkpoint")]
    public void Save_every_is_checked(int every, bool withCheckpoint, string expected)
    {
        var ckpt = withCheckpoint ? Path.Combine(Path.GetTempPath(), $"tls-{Guid.NewGuid():N}.safetensors") : null;
        var (code, _, err) = Run(() => TrainCommand.Train(null, Steps(5), "cpu", ckpt, null, saveEvery: every));
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
    }

    [Theory]
    [InlineData("""{"lra":{"dim":1073741824,"heads":2,"hidden":1073741824,"layers":1073741824}}""", "more than 9,223,372,036,854,775,807 parameters")]
    [InlineData("""{"lra":{"dim":65536,"heads":2,"hidden":65536,"layers":64}}""", "of weights, gradients and optimizer state, more than the")]
    public void A_model_too_large_to_count_or_to_fit_is_refused_before_it_is_built(string json, string expected)
    {
        var path = Path.Combine(Path.GetTempPath(), $"tls-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(path, json);
            var (code, _, err) = Run(() => TrainCommand.Train(path, Steps(1), "cpu", null, null));
            Assert.Equal(2, code);
            Assert.Contains(expected, err);
            Assert.DoesNotContain("   at ", err);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void The_size_estimate_is_the_models_parameter_count()
    {
        foreach (var cfg in new[] { new TrainConfig(), new TrainConfig { Lra = new TrainConfig().Lra with { Pooling = Models.LraPooling.Mean, Layers = 3, Rank = 5 } } })
        {
            using var task = new ListOpsTask(new Backends.CpuBackend(), cfg);
            Assert.Equal(task.Parameters.Count, TrainSize.Parameters(cfg));
        }
        var lm = new TrainConfig { Task = "lm" };
        using var model = new Models.CausalLm(new Backends.CpuBackend(), lm.Lm with { Rank = 3, Layers = 1 }, Tensors.DType.Float32, 1);
        Assert.Equal(model.Parameters.Count, Models.CausalLm.CountParameters(lm.Lm with { Rank = 3, Layers = 1 }));
        using var big = new Models.CausalLm(new Backends.CpuBackend(), new TrainConfig().Lm, Tensors.DType.BFloat16, 1);
        Assert.Equal(big.Parameters.Count, Models.CausalLm.CountParameters(new TrainConfig().Lm));
    }

    [Fact]
    public void A_diverged_run_stops_with_a_named_error_and_saves_nothing()
    {
        var ckpt = Path.Combine(Path.GetTempPath(), $"tls-{Guid.NewGuid():N}.safetensors");
        var wild = new TrainCommand.Overrides(null, null, 5, 2, 1e30f, null, null, null, null, null);
        var (code, _, err) = Run(() => TrainCommand.Train(null, wild, "cpu", ckpt, null));
        Assert.Equal(2, code);
        Assert.Contains("diverged", err);
        Assert.False(File.Exists(ckpt), "a diverged run wrote a checkpoint");
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(-1)]
    public void Generate_bytes_out_of_range_is_a_named_error(int bytes)
    {
        var (code, _, err) = Run(() => GenerateCommand.Run("unused.safetensors", "cpu", new GenerateOptions(MaxBytes: bytes, Seed: 1)));
        Assert.Equal(2, code);
        Assert.Contains($"--max-bytes is {bytes}", err);
    }

    [Fact]
    public void Generation_streams_every_byte_as_it_is_drawn()
    {
        using var model = new Models.CausalLm(new Backends.CpuBackend(), new TrainConfig().Lm, Tensors.DType.Float32, 1);
        using var sampler = new Models.LmSampler(model);
        var streamed = new List<byte>();
        var bytes = sampler.Generate("ab"u8, 5, 0.8f, 3, streamed.Add);
        Assert.Equal(5, bytes.Length);
        Assert.Equal(bytes, streamed);
    }

    [Fact]
    public void Eval_data_replaces_the_stored_path_and_is_refused_for_listops()
    {
        var dir = Directory.CreateTempSubdirectory("tls-eval-").FullName;
        try
        {
            var text = Path.Combine(dir, "a.txt");
            File.WriteAllText(text, string.Concat(Enumerable.Repeat("abcdefg", 400)));
            var lm = new TrainConfig { Task = "lm", Data = text, Steps = 2, Batch = 2, EvalBatches = 1,
                Lm = new Models.CausalLmConfig { Vocab = 256, Dim = 16, Heads = 1, Hidden = 16, Layers = 1, Window = 4, ChunkLength = 4, Rank = 1, Length = 8, Memory = 8 } };
            var ckpt = Path.Combine(dir, "lm.safetensors");
            using (var t = new Trainer(new Backends.CpuBackend(), lm)) { t.Run(cancel: TestContext.Current.CancellationToken); t.Save(ckpt); }
            var moved = Path.Combine(dir, "b.txt");
            File.Move(text, moved); // the stored path is gone: --data points at the file's new place
            Assert.Equal(2, Run(() => TrainCommand.Eval(ckpt, "cpu", 1)).Code);
            var (code, output, _) = Run(() => TrainCommand.Eval(ckpt, "cpu", 1, moved));
            Assert.Equal(0, code);
            Assert.Contains("bits/byte", output);
            File.AppendAllText(moved, "other text"); // a file named by --data is evaluated even though it differs from the trained one
            Assert.Equal(0, Run(() => TrainCommand.Eval(ckpt, "cpu", 1, moved)).Code);
            var listops = Path.Combine(dir, "lo.safetensors");
            using (var t = new Trainer(new Backends.CpuBackend(), new TrainConfig { Steps = 1, Batch = 2, EvalBatches = 1 })) t.Save(listops);
            var (c2, _, e2) = Run(() => TrainCommand.Eval(listops, "cpu", 1, moved));
            Assert.Equal(2, c2);
            Assert.Contains("--data is for lm checkpoints", e2);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Resume_takes_the_checkpoint_config_and_refuses_changes()
    {
        var dir = Directory.CreateTempSubdirectory("tls-resume-").FullName;
        try
        {
            var text = Path.Combine(dir, "a.txt");
            File.WriteAllText(text, string.Concat(Enumerable.Repeat("abcdefg", 400)));
            var json = Path.Combine(dir, "run.json");
            File.WriteAllText(json, "{\"task\":\"lm\",\"data\":" + System.Text.Json.JsonSerializer.Serialize(text) +
                ",\"steps\":2,\"batch\":2,\"evalBatches\":1,\"lm\":{\"dim\":16,\"heads\":1,\"hidden\":16,\"layers\":1,\"window\":4,\"chunkLength\":4,\"length\":8,\"memory\":8}}");
            var ckpt = Path.Combine(dir, "lm.safetensors");
            var none = new TrainCommand.Overrides(null, null, null, null, null, null, null, null, null, null);
            Assert.Equal(0, Run(() => TrainCommand.Train(json, none, "cpu", ckpt, null)).Code);
            // No --config: the checkpoint's own config, extended to 4 steps.
            Assert.Equal(0, Run(() => TrainCommand.Train(null, none with { Steps = 4 }, "cpu", ckpt, ckpt)).Code);
            Assert.Equal("4", Checkpoints.SafeTensors.Open(ckpt).Metadata["step"]);
            var (code, _, err) = Run(() => TrainCommand.Train(null, none with { Lr = 0.5f, Steps = 5 }, "cpu", ckpt, ckpt));
            Assert.Equal(2, code);
            Assert.Contains("lr (", err);
            // The byte file changed since: refused unless --changed-data.
            File.AppendAllText(text, "more");
            var changed = Run(() => TrainCommand.Train(null, none with { Steps = 5 }, "cpu", ckpt, ckpt));
            Assert.Equal(2, changed.Code);
            Assert.Contains("--changed-data", changed.Err);
            Assert.Equal(0, Run(() => TrainCommand.Train(null, none with { Steps = 5 }, "cpu", ckpt, ckpt, changedData: true)).Code);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_second_run_on_the_same_checkpoint_is_refused_and_stale_temp_files_go()
    {
        var dir = Directory.CreateTempSubdirectory("tls-lock-").FullName;
        try
        {
            var ckpt = Path.Combine(dir, "run.safetensors");
            var stale = $"{ckpt}.999999999.tmp"; // a save killed midway, by a process long gone
            File.WriteAllText(stale, "partial");
            using (CheckpointLock.Take(ckpt))
            {
                Assert.False(File.Exists(stale), "a stale temp file was left");
                var (code, _, err) = Run(() => TrainCommand.Train(null, Steps(5), "cpu", ckpt, null));
                Assert.Equal(2, code);
                Assert.Contains("being written by another run", err);
            }
            Assert.False(File.Exists(ckpt + ".lock"), "the lock outlived its run");
            using (CheckpointLock.Take(ckpt)) { } // free again
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Eval_every_reports_held_out_metrics_during_the_run_and_changes_nothing_else()
    {
        var run = new TrainCommand.Overrides(null, null, 6, 4, null, null, null, null, null, null);
        var (code, output, _) = Run(() => TrainCommand.Train(null, run, "cpu", null, null, evalEvery: 2));
        Assert.Equal(0, code);
        Assert.Contains("eval at step      2: accuracy", output);
        Assert.Contains("eval at step      4: accuracy", output);
        Assert.DoesNotContain("eval at step      6", output); // the last step has the final evaluation
        var (plainCode, plain, _) = Run(() => TrainCommand.Train(null, run, "cpu", null, null));
        Assert.Equal(0, plainCode);
        static string Final(string text) => text.Split('\n').Last(l => l.StartsWith("accuracy:", StringComparison.Ordinal)).Split("; ")[0];
        Assert.Equal(Final(plain), Final(output)); // the same run, bit for bit on the CPU: evaluating touched no training state
        var (bad, _, err) = Run(() => TrainCommand.Train(null, run, "cpu", null, null, evalEvery: -1));
        Assert.Equal(2, bad);
        Assert.Contains("--eval-every is -1", err);
    }

    [Fact]
    public void Eval_shows_its_progress()
    {
        var ckpt = Path.Combine(Path.GetTempPath(), $"tls-{Guid.NewGuid():N}.safetensors");
        try
        {
            using (var t = new Trainer(new Backends.CpuBackend(), new TrainConfig { Steps = 1, Batch = 2, EvalBatches = 1 })) t.Save(ckpt);
            var (code, output, err) = Run(() => TrainCommand.Eval(ckpt, "cpu", 3));
            Assert.Equal(0, code);
            Assert.Matches(@"evaluating: batch (\d+)/\1", err); // not a terminal here: progress lines (a terminal gets a bar)
            Assert.Contains("accuracy", output);
            Assert.Matches(@"over \d+ held-out batches", output);
        }
        finally { File.Delete(ckpt); }
    }

    [Fact]
    public void Convert_writes_a_resumable_checkpoint_from_a_reference_state_dict()
    {
        var dir = Directory.CreateTempSubdirectory("tls-convert-").FullName;
        try
        {
            var cpu = new Backends.CpuBackend();
            using var source = new Trainer(cpu, new TrainConfig { Seed = 11 });
            var reference = Path.Combine(dir, "reference.safetensors");
            var f64 = source.Task.Parameters.Tensors.ToDictionary(kv => kv.Key, kv =>
            {
                var t = cpu.Empty(kv.Value.Shape, Tensors.DType.Float64);
                t.CopyFrom(kv.Value.ToDoubles());
                return t;
            });
            SafeTensorsSave(reference, f64);
            var output = Path.Combine(dir, "model.safetensors");
            var (code, text, err) = Run(() => ConvertCommand.Run(reference, output, null, null, null, null, true, "cpu"));
            Assert.True(code == 0, err);
            Assert.Contains("parameters", text);
            using var loaded = new Trainer(cpu, new TrainConfig { Seed = 12 });
            loaded.Resume(output);
            foreach (var (name, t) in source.Task.Parameters.Tensors)
                Assert.True(t.ToArray().AsSpan().SequenceEqual(loaded.Task.Parameters[name].ToArray()), $"{name} differs after convert + resume");
            Assert.Equal(0, Run(() => TrainCommand.Eval(output, "cpu", 1)).Code);
            var (again, _, againErr) = Run(() => ConvertCommand.Run(reference, output, null, null, null, null, true, "cpu"));
            Assert.Equal(2, again);
            Assert.Contains("exists", againErr);
            // A partial state dict: refused by name in strict mode, loaded with a list of what is missing otherwise.
            var partial = Path.Combine(dir, "partial.safetensors");
            SafeTensorsSave(partial, f64.Where(kv => !kv.Key.StartsWith("seq_classifer.", StringComparison.Ordinal)).ToDictionary());
            var (strictCode, _, strictErr) = Run(() => ConvertCommand.Run(partial, Path.Combine(dir, "p.safetensors"), null, null, null, null, true, "cpu"));
            Assert.Equal(2, strictCode);
            Assert.Contains("missing [seq_classifer.", strictErr);
            var (looseCode, loose, _) = Run(() => ConvertCommand.Run(partial, Path.Combine(dir, "q.safetensors"), null, null, null, null, false, "cpu"));
            Assert.Equal(0, looseCode);
            Assert.Contains("missing (kept at their initial values): seq_classifer.", loose);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    static void SafeTensorsSave(string path, Dictionary<string, Tensors.Tensor> tensors) => Checkpoints.SafeTensors.Save(path, tensors);

    [Fact]
    public void Classify_prints_a_class_and_probability_per_expression_and_names_bad_lines()
    {
        var dir = Directory.CreateTempSubdirectory("tls-classify-").FullName;
        try
        {
            var ckpt = Path.Combine(dir, "lo.safetensors");
            using (var t = new Trainer(new Backends.CpuBackend(), new TrainConfig { Steps = 1, Batch = 2, EvalBatches = 1 })) t.Save(ckpt);
            var input = Path.Combine(dir, "in.txt");
            var examples = Data.ListOps.Generate(new TrainConfig().ListOps, 5).Take(3).ToArray();
            File.WriteAllLines(input, [Data.ListOps.ToText(examples[0].Tokens), "", Data.ListOps.ToText(examples[1].Tokens), Data.ListOps.ToText(examples[2].Tokens)]);
            var (code, output, err) = Run(() => ClassifyCommand.Run(ckpt, input, 2, "cpu"));
            Assert.True(code == 0, err);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(3, lines.Length);
            Assert.All(lines, l => Assert.Matches(@"^\d\t[01]\.\d{4}$", l));
            Assert.Contains("3 expressions", err);
            File.AppendAllLines(input, ["[MAX 2 nine ]"]);
            var (bad, _, badErr) = Run(() => ClassifyCommand.Run(ckpt, input, 2, "cpu"));
            Assert.Equal(2, bad);
            Assert.Contains("line 5", badErr);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Eval_batches_zero_is_a_named_error()
    {
        var (code, _, err) = Run(() => TrainCommand.Eval("unused.safetensors", "cpu", 0));
        Assert.Equal(2, code);
        Assert.Contains("--batches is 0", err);
        Assert.DoesNotContain("Actual value", err);
    }

    [Fact]
    public void Check_with_a_filter_that_matches_nothing_fails()
    {
        var (code, _, err) = Run(() => CheckCommand.Run("cpu", 1, "no_such_op_xyz"));
        Assert.Equal(2, code);
        Assert.Contains("matches no case", err);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CliCollection
{
    public const string Name = "cli (serial: the verbs write to Console)";
}
