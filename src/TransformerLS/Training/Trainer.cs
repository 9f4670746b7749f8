using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using TransformerLS.Backends;
using TransformerLS.Checkpoints;
using TransformerLS.Data;
using TransformerLS.Models;
using TransformerLS.Tensors;

namespace TransformerLS.Training;

/// <summary>A training run: task, model, data, optimizer and schedule. Read from JSON (<see cref="Load"/>) or built in code.</summary>
public sealed record TrainConfig
{
    /// <summary>The classifier a listops run of this config builds (ten classes, the ListOps vocabulary at least).</summary>
    public LraConfig ListOpsModel() => ListOpsTask.ModelConfig(this);

    /// <summary>"listops" (the LRA classifier on generated ListOps) or "lm" (the causal LM on a byte file).</summary>
    public string Task { get; init; } = "listops";
    /// <summary>The byte file of the lm task.</summary>
    public string? Data { get; init; }
    public string DType { get; init; } = "float32";
    public int Steps { get; init; } = 600;
    public int Batch { get; init; } = 16;
    /// <summary>Micro-batches per optimizer step (gradient accumulation).</summary>
    public int Accumulate { get; init; } = 1;
    public float Lr { get; init; } = 2e-3f;
    /// <summary>Warm-up steps; null: 20, or Steps − 1 for shorter runs (so a run of any length >= 1 validates).</summary>
    public int? Warmup { get; init; }
    public LrDecay Decay { get; init; } = LrDecay.Cosine;
    public float WeightDecay { get; init; } = 0.01f;
    /// <summary>Adam with L2 in the gradient instead of AdamW's decoupled decay.</summary>
    public bool L2 { get; init; }
    public float? ClipNorm { get; init; } = 1f;
    public int Seed { get; init; } = 1;
    public int LogEvery { get; init; } = 10;
    public int EvalBatches { get; init; } = 8;
    public bool Recompute { get; init; }
    /// <summary>Replay each training and evaluation run from a CUDA graph (GPU only; see ExecutorOptions.CaptureGraph).</summary>
    public bool CudaGraph { get; init; }
    public ListOpsConfig ListOps { get; init; } = new(MaxDepth: 3, MaxArgs: 5, MinLength: 4, MaxLength: 64);
    /// <summary>The LRA ListOps model (D 64, 2 heads, Dff 128, 2 layers, w 8) with r = 8 for these short sequences.</summary>
    public LraConfig Lra { get; init; } = new() { MaxLength = 64, Dim = 64, Heads = 2, Hidden = 128, Layers = 2, Window = 8, Rank = 8 };
    public CausalLmConfig Lm { get; init; } = new() { Dim = 64, Heads = 2, Hidden = 128, Layers = 2, Window = 32, ChunkLength = 8, Rank = 1, Dropout = 0.1f, Length = 64, Memory = 64 };


    /// <summary>The warm-up the schedule uses: <see cref="Warmup"/>, or 20 capped at Steps − 1.</summary>
    [JsonIgnore]
    public int EffectiveWarmup => Warmup ?? Math.Clamp(Steps - 1, 0, 20);

    [JsonIgnore]
    public DType ParsedDType => DType switch
    {
        "float32" or "f32" => Tensors.DType.Float32,
        "bfloat16" or "bf16" => Tensors.DType.BFloat16,
        _ => throw new ArgumentException($"dtype '{DType}' is not one of float32, bfloat16", nameof(DType)),
    };

    public void Validate()
    {
        if (Task is not ("listops" or "lm")) throw new ArgumentException($"task '{Task}' is not one of listops, lm", nameof(Task));
        _ = ParsedDType;
        foreach (var (v, name) in new[] { (Steps, nameof(Steps)), (Batch, nameof(Batch)), (Accumulate, nameof(Accumulate)), (LogEvery, nameof(LogEvery)), (EvalBatches, nameof(EvalBatches)) })
            LraConfig.Positive(v, name);
        new LrSchedule(Lr, EffectiveWarmup, Steps, Decay).Validate();
        if (Task == "listops")
        {
            if (Lra.Classes != ListOpsClasses)
                throw new ArgumentException($"lra.classes is {Lra.Classes}; the listops task has {ListOpsClasses} classes (the values 0-9), so leave it out or set {ListOpsClasses}", nameof(Lra));
            ListOps.Validate();
            Lra.Validate();
            if (Lra.MaxLength < ListOps.MaxLength)
                throw new ArgumentException($"lra.maxLength {Lra.MaxLength} is shorter than listOps.maxLength {ListOps.MaxLength}", nameof(Lra));
        }
        else Lm.Validate();
    }

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true, Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) }, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    const int ListOpsClasses = 10;

    /// <summary>Reads a JSON config (camelCase names, unknown names rejected); see <see cref="FromJson"/>.</summary>
    public static TrainConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config file '{path}' does not exist", path);
        return FromJson(File.ReadAllText(path), $"config file '{path}'");
    }

    /// <summary>
    /// A config from JSON laid over the defaults: every field the JSON names replaces the default's, and a nested object
    /// (lm, lra, listOps) replaces only the fields it names, so {"lm": {"layers": 1}} changes the layer count alone.
    /// Unknown names and nulls where an object or value is expected are rejected, naming <paramref name="source"/>.
    /// </summary>
    public static TrainConfig FromJson(string json, string source = "config")
    {
        try
        {
            if (JsonNode.Parse(json) is not JsonObject given) throw new JsonException("expected a JSON object { ... } at the top");
            var merged = JsonSerializer.SerializeToNode(new TrainConfig(), Json)!.AsObject();
            Merge(merged, given, "");
            return merged.Deserialize<TrainConfig>(Json) ?? throw new JsonException("the config is null");
        }
        catch (JsonException e) { throw new ArgumentException($"{source}: {e.Message}", nameof(json), e); }
    }

    static void Merge(JsonObject into, JsonObject from, string path)
    {
        foreach (var (key, value) in from.ToArray())
        {
            var name = into.Select(p => p.Key).FirstOrDefault(k => string.Equals(k, key, StringComparison.OrdinalIgnoreCase)) ?? key;
            var at = path.Length == 0 ? key : $"{path}.{key}";
            var current = into[name];
            if (value is null && current is not null)
                throw new JsonException($"{at} is null; expected {(current is JsonObject ? "an object" : "a value")} (leave it out for the default)");
            if (current is JsonObject inner && value is JsonObject nested) { Merge(inner, nested, at); continue; }
            into.Remove(name);
            into[name] = value?.DeepClone();
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}

/// <summary>A logged training loss was NaN or infinite: the run stops there, and no checkpoint of it is written.</summary>
/// <summary>What a config will allocate before a step runs, from the config alone (no model built).</summary>
public static class TrainSize
{
    /// <summary>The model's parameter count; a config whose sizes overflow it is a named error.</summary>
    public static long Parameters(TrainConfig cfg)
    {
        try
        {
            return cfg.Task == "listops" ? LraClassifier.CountParameters(ListOpsTask.ModelConfig(cfg)) : CausalLm.CountParameters(cfg.Lm);
        }
        catch (OverflowException)
        {
            var section = cfg.Task == "listops" ? "lra" : "lm";
            throw new ArgumentOutOfRangeException(section, $"the {section} sizes in the config give more than {long.MaxValue:N0} parameters; " +
                "check dim, hidden, layers, vocab and maxLength");
        }
    }

    /// <summary>
    /// Bytes of parameters, gradients and Adam state: the weights in the model's dtype, a float32 gradient and two float32
    /// moments each, and a float32 master copy for bf16 weights.
    /// </summary>
    public static long StateBytes(TrainConfig cfg)
    {
        var n = Parameters(cfg);
        var perParameter = cfg.ParsedDType.Size() + 4 + 8 + (cfg.ParsedDType == DType.BFloat16 ? 4 : 0);
        try { return checked(n * perParameter); }
        catch (OverflowException) { throw new ArgumentOutOfRangeException("config", $"{n:N0} parameters need more than {long.MaxValue:N0} bytes"); }
    }
}

public sealed class NonFiniteLossException(string message) : Exception(message);

/// <summary>Where a run stands, for progress displays.</summary>
public readonly record struct TrainProgress(int Step, int Steps, float Loss, float Lr, double TokensPerSecond, TimeSpan Elapsed);

/// <summary>The outcome of <see cref="Trainer.Run"/>.</summary>
public sealed record TrainResult(string Metric, double Before, double After, double Chance, double LossBefore, double LossAfter, double TokensPerSecond,
    long PlannedPeakBytes, long MeasuredPeakBytes, IReadOnlyList<(int Step, float Loss)> Losses);

/// <summary>
/// The training loop: micro-batches through the executor (forward + backward, gradients accumulated), one
/// AdamW/Adam step with on-device clipping, the learning-rate schedule, held-out evaluation before and after,
/// checkpoints in safetensors (model, optimizer state, config and step in the metadata).
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly ITrainingTask _task;
    readonly AdamOptimizer _optimizer;
    readonly IBackend _be;

    public Trainer(IBackend be, TrainConfig cfg)
    {
        cfg.Validate();
        (_be, Config) = (be, cfg);
        _task = cfg.Task == "listops" ? new ListOpsTask(be, cfg) : new ByteLmTask(be, cfg);
        _optimizer = new AdamOptimizer(be, _task.Parameters.Tensors)
        {
            WeightDecay = cfg.WeightDecay, Decoupled = !cfg.L2, ClipNorm = cfg.ClipNorm, Eps = cfg.Task == "listops" ? 1e-6f : 1e-8f,
        };
        _update = () => _optimizer.EnqueueUpdate(_task.Gradients);
    }

    readonly Action _update; // the optimizer's update, queued after the backward (inside the step's CUDA graph when one is recorded)

    public TrainConfig Config { get; }
    public ITrainingTask Task => _task;
    public int Step => _optimizer.Steps;

    /// <param name="afterStep">Called after every optimizer step with the step count (periodic checkpoints).</param>
    public TrainResult Run(Action<TrainProgress>? progress = null, CancellationToken cancel = default, Action<int>? afterStep = null)
    {
        var cfg = Config;
        var schedule = new LrSchedule(cfg.Lr, cfg.EffectiveWarmup, cfg.Steps, cfg.Decay);
        var (metric, before, lossBefore) = _task.Evaluate(cfg.EvalBatches);
        var losses = new List<(int, float)>();
        var clock = Stopwatch.StartNew();
        long tokens = 0, measured = 0;
        while (_optimizer.Steps < cfg.Steps && !cancel.IsCancellationRequested)
        {
            var step = _optimizer.Steps;
            var lr = schedule.At(step + 1);
            // Replayed from CUDA graphs, a step of one micro-batch is one graph: forward, backward and the update, its
            // learning rate and step number written to device memory first (BeginStep). Otherwise the update follows the
            // last micro-batch.
            var wholeStep = cfg.CudaGraph && cfg.Accumulate == 1;
            if (wholeStep) _optimizer.BeginStep(lr);
            for (var m = 0; m < cfg.Accumulate; m++)
            {
                _task.Load((long)step * cfg.Accumulate + m);
                _task.Executor.Backward(_task.Feeds, seed: (ulong)(cfg.Seed * 1_000_003L + step * cfg.Accumulate + m), 1f / cfg.Accumulate, accumulate: m > 0,
                    then: wholeStep ? _update : null);
                _task.AfterRun();
                measured = Math.Max(measured, _task.Executor.MeasuredPeakBytes);
                tokens += _task.TokensPerBatch;
            }
            if (!wholeStep) _optimizer.Step(_task.Gradients, lr);
            afterStep?.Invoke(_optimizer.Steps);
            if (_optimizer.Steps % cfg.LogEvery == 0 || _optimizer.Steps == cfg.Steps)
            {
                var loss = _task.Executor[_task.Loss].ToArray()[0]; // the one host read of a logged step (it waits for the step)
                ThrowIfDiverged(lr);
                if (!float.IsFinite(loss))
                    throw new NonFiniteLossException($"the training loss is {loss} at step {_optimizer.Steps} (lr {lr:E2}): the run diverged; " +
                        "nothing was saved; try a lower learning rate (--lr) or a longer warm-up (--warmup)");
                losses.Add((_optimizer.Steps, loss));
                progress?.Invoke(new TrainProgress(_optimizer.Steps, cfg.Steps, loss, lr, tokens / clock.Elapsed.TotalSeconds, clock.Elapsed));
            }
        }
        _be.Synchronize();
        var rate = tokens / clock.Elapsed.TotalSeconds;
        var (_, after, lossAfter) = _task.Evaluate(cfg.EvalBatches);
        return new TrainResult(metric, before, after, _task.Chance, lossBefore, lossAfter, rate, _task.Executor.TrainingPlan.PeakBytes, measured, losses);
    }

    /// <summary>
    /// Throws <see cref="NonFiniteLossException"/> when a step's gradient norm was not finite (checked on the device every
    /// step; that step and the later ones changed nothing, so there is nothing trustworthy to continue or save).
    /// </summary>
    void ThrowIfDiverged(float? lr)
    {
        if (_optimizer.FirstNonFiniteStep() is { } bad)
            throw new NonFiniteLossException($"the gradient norm is not finite at step {bad}{(lr is { } r ? $" (lr now {r:E2})" : "")}: the run diverged; the weights stopped " +
                $"changing at step {bad - 1} and nothing was saved; try a lower learning rate (--lr) or a longer warm-up (--warmup)");
    }

    /// <summary>Model, optimizer state and the task's run state (the LM's memories) in one safetensors file; the config and step go in its metadata.
    /// Refused (<see cref="NonFiniteLossException"/>) after a step with a non-finite gradient norm.</summary>
    public void Save(string path)
    {
        ThrowIfDiverged(null);
        var all = new Dictionary<string, Tensor>(_task.Parameters.Tensors);
        foreach (var (name, t) in _optimizer.State()) all[$"optimizer.{name}"] = t;
        foreach (var (name, t) in _task.State) all[$"task.{name}"] = t;
        var meta = new Dictionary<string, string> { ["config"] = Config.ToJson(), ["step"] = _optimizer.Steps.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (DataFingerprint() is { } data) meta["data"] = data;
        SafeTensors.Save(path, all, meta);
    }

    /// <summary>The lm task's byte file as "size:sha256 prefix" (so a resumed run can tell it is the same data), or null for listops.</summary>
    string? DataFingerprint()
    {
        if (Config.Task != "lm" || Config.Data is null) return null;
        if (_dataFingerprint is null)
        {
            using var f = File.OpenRead(Config.Data);
            _dataFingerprint = $"{f.Length}:{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(f))[..16].ToLowerInvariant()}";
        }
        return _dataFingerprint;
    }

    string? _dataFingerprint; // read once a run: periodic saves do not re-hash the corpus

    /// <summary>
    /// Loads a checkpoint written by <see cref="Save"/> into this trainer (same config), resuming at its step. An lm
    /// checkpoint whose byte file has since changed (size or hash) is refused unless <paramref name="changedData"/>.
    /// </summary>
    public void Resume(string path, bool changedData = false)
    {
        var file = SafeTensors.Open(path);
        if (!changedData && file.Metadata.TryGetValue("data", out var was) && DataFingerprint() is { } now && now != was)
            throw new CheckpointException($"{path} was trained on '{Config.Data}' as {was} (bytes:hash), but that file is now {now}; " +
                "continue on the new contents anyway with tls train --changed-data, or evaluate a file you name with tls eval --data");
        var targets = new Dictionary<string, Tensor>(_task.Parameters.Tensors);
        foreach (var (name, t) in _optimizer.State()) targets[$"optimizer.{name}"] = t;
        // Checkpoints from before the run state was saved hold none: they resume with fresh memories, as they always did.
        if (file.Entries.Any(e => e.Name.StartsWith("task.", StringComparison.Ordinal)))
            foreach (var (name, t) in _task.State) targets[$"task.{name}"] = t;
        file.LoadInto(targets);
        if (!file.Metadata.TryGetValue("step", out var s) || !int.TryParse(s, System.Globalization.CultureInfo.InvariantCulture, out var step))
            throw new CheckpointException($"{path}: no step in the metadata; not a training checkpoint");
        _optimizer.Resume(step);
    }

    /// <summary>
    /// Loads a state_dict of the official code (<see cref="StateDict"/>) into the model and starts the optimizer over from
    /// those weights (masters recast, moments zeroed, step 0), so a run or a save continues from them.
    /// </summary>
    public StateDictReport LoadStateDict(string path, bool strict = true)
    {
        var report = StateDict.Load(_task.Parameters, path, strict);
        _optimizer.ResetFromParameters();
        return report;
    }

    /// <summary>The config stored in a checkpoint's metadata.</summary>
    public static TrainConfig ConfigOf(string path)
    {
        var file = SafeTensors.Open(path);
        if (!file.Metadata.TryGetValue("config", out var json))
            throw new CheckpointException($"{path}: no config in the metadata; not a checkpoint written by tls train");
        try { return JsonSerializer.Deserialize<TrainConfig>(json, TrainConfig.Json) ?? throw new CheckpointException($"{path}: the stored config is null"); }
        catch (JsonException e) { throw new CheckpointException($"{path}: the stored config is not a valid tls train config: {e.Message}"); }
    }

    public void Dispose()
    {
        _optimizer.Dispose();
        _task.Dispose();
    }
}
