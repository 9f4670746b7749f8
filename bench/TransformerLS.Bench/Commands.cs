using TransformerLS.Backends;
using TransformerLS.Bench.Harness;
using TransformerLS.Conformance;
using TransformerLS.Bench.Kernels;
using TransformerLS.Bench.Scale;
using TransformerLS.Bench.SideBySide;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Bench;

/// <summary>The command actions: parse, run, write the files, print where they went. Errors are one line and exit code 2.</summary>
public static class Commands
{
    static int Guard(string command, Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (e is ArgumentException or IOException or CudaException or CudaLibraryNotFoundException or FormatException or System.Text.Json.JsonException)
        {
            Console.Error.WriteLine($"tls-bench {command}: {e.Message}");
            return 2;
        }
    }

    static string[] Items(string text) => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static IReadOnlyList<DType> ParseDTypes(string text) => [.. Items(text).Select(s => s switch
    {
        "bf16" or "bfloat16" => DType.BFloat16,
        "fp32" or "float32" => DType.Float32,
        _ => throw new ArgumentException($"--dtype: '{s}' is not bf16 or fp32", "dtype"),
    })];

    static IReadOnlyList<LayerKind> ParseLayers(string text) => [.. Items(text).Select(s => s switch
    {
        "ls" => LayerKind.Ls,
        "full" => LayerKind.Full,
        _ => throw new ArgumentException($"--layer: '{s}' is not ls or full", "layer"),
    })];

    static IReadOnlyList<int> ParseLengths(string text, string option = "--lengths") => [.. Items(text).Select(s =>
        int.TryParse(s, out var v) && v > 0 ? v : throw new ArgumentException($"{option}: '{s}' is not a positive length", option.TrimStart('-')))];

    static void Positive(int value, string name)
    {
        if (value < 1) throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least 1");
    }

    public static int Kernels(string device, string outDir, int runs, int tokens, string n, string dtypes, string? filter, int gemm, int copyMib) => Guard("kernels", () =>
    {
        Positive(runs, "--runs"); Positive(tokens, "--tokens"); Positive(gemm, "--ceiling-gemm"); Positive(copyMib, "--ceiling-copy-mib");
        using var be = BackendFactory.Open(device);
        var report = KernelBench.Run(be, new KernelBench.Options([.. ParseLengths(n, "--n").Select(v => new KernelShape(tokens, v))], ParseDTypes(dtypes), runs, Filter: filter,
            CeilingGemm: gemm, CeilingCopyBytes: (long)copyMib << 20), Console.Out);
        report.Save(outDir, "kernels");
        Console.WriteLine($"wrote {Path.Combine(outDir, "kernels")}.json/.csv/.md ({report.Rows.Count} kernels)");
        return 0;
    });

    static IEnumerable<LayerSpec> Specs(string layer, string dtypes, int dim, int heads, int window, int rank, bool recomputeKeys = false) =>
        from dt in ParseDTypes(dtypes) from kind in ParseLayers(layer) select new LayerSpec(kind, dt, dim, heads, window, rank, recomputeKeys && kind == LayerKind.Ls);

    public static int Scale(string device, string outDir, string layer, string dtypes, int start, int maxLength, double timeCap, int runs,
        int dim, int heads, int window, int rank, bool recomputeKeys = true, bool pastIndexLimit = false) => Guard("scale", () =>
    {
        Positive(start, "--start"); Positive(maxLength, "--max-length"); Positive(runs, "--runs");
        using var be = BackendFactory.Open(device);
        var env = BenchEnvironment.Of(be);
        var all = new List<ScaleRow>();
        var shared = new List<StepRow>();
        foreach (var spec in Specs(layer, dtypes, dim, heads, window, rank, recomputeKeys))
        {
            Console.WriteLine($"sweep: {spec.Describe}, batch 1, from N = {start}");
            var rows = ScaleSweep.Run(be, spec, new ScaleSweep.Options(start, maxLength, timeCap, runs, PastIndexLimit: pastIndexLimit), Console.Out);
            all.AddRange(rows);
            shared.AddRange(LayerBench.FromSweep(spec, rows));
        }
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "scale.csv"), ScaleSweep.ToCsv(all, env));
        File.WriteAllText(Path.Combine(outDir, "scale.rows.json"), StepRow.ToJson(shared));
        var (memory, time) = ScaleSweep.Plots(all, $"D={dim} H={heads} w={window} r={rank}");
        File.WriteAllText(Path.Combine(outDir, "scale-memory.svg"), memory);
        File.WriteAllText(Path.Combine(outDir, "scale-time.svg"), time);
        foreach (var (impl, dtype, best, stop) in SideBySideTable.Longest(shared))
            Console.WriteLine($"{impl} {dtype}: longest N that fit {best?.N.ToString() ?? "none"} (stopped by {stop})");
        Console.WriteLine($"wrote scale.csv, scale.rows.json, scale-memory.svg, scale-time.svg in {outDir}");
        return 0;
    });

    public static int Layers(string device, string outDir, string layer, string dtypes, int tokens, string lengths, int runs,
        int dim, int heads, int window, int rank) => Guard("layers", () =>
    {
        Positive(tokens, "--tokens"); Positive(runs, "--runs");
        using var be = BackendFactory.Open(device);
        var rows = LayerBench.Run(be, Specs(layer, dtypes, dim, heads, window, rank), tokens, ParseLengths(lengths), runs, Console.Out);
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "layers.rows.json"), StepRow.ToJson(rows));
        Console.WriteLine($"wrote {Path.Combine(outDir, "layers.rows.json")}");
        return 0;
    });

    public static int Table(string dir) => Guard("table", () =>
    {
        if (!Directory.Exists(dir)) throw new ArgumentException($"results folder '{dir}' does not exist", "results");
        var rows = StepRow.Load(dir);
        if (rows.Count == 0) throw new ArgumentException($"'{dir}' holds no *.rows.json", "results");
        var kernels = Path.Combine(dir, "kernels.md"); // its first line names the device, versions and commit
        var md = SideBySideTable.Markdown(rows, File.Exists(kernels) ? File.ReadLines(kernels).First() : "");
        File.WriteAllText(Path.Combine(dir, "side-by-side.md"), md);
        var (memory, time) = SideBySideTable.Plots(rows);
        File.WriteAllText(Path.Combine(dir, "sweep-memory.svg"), memory);
        File.WriteAllText(Path.Combine(dir, "sweep-time.svg"), time);
        Console.WriteLine(md);
        Console.WriteLine($"wrote side-by-side.md, sweep-memory.svg, sweep-time.svg in {dir}");
        return 0;
    });

    static IReadOnlyList<(int Length, int Batch)> ParseShapes(string text) => [.. Items(text).Select(s =>
    {
        var parts = s.Split('x');
        return parts.Length == 2 && int.TryParse(parts[0], out var l) && int.TryParse(parts[1], out var b) && l > 0 && b > 0 ? (l, b)
            : throw new ArgumentException($"--shapes: '{s}' is not LENGTHxBATCH (e.g. 2048x4)", "shapes");
    })];

    public static int Model(string device, string outDir, string shapes, string dtypes, int layers, int dim, int heads, int hidden, int window,
        int chunk, int rank, int? memory, int runs, int warmup, bool cudaGraph) => Guard("model", () =>
    {
        Positive(runs, "--runs"); Positive(layers, "--layers");
        if (warmup < 1) throw new ArgumentOutOfRangeException("warmup", warmup, "--warmup must be at least 1 (the first step compiles and plans)");
        using var be = BackendFactory.Open(device);
        var env = BenchEnvironment.Of(be);
        var model = ModelBench.Enwik8Base with { Layers = layers, Dim = dim, Heads = heads, Hidden = hidden, Window = window, ChunkLength = chunk, Rank = rank };
        var rows = ModelBench.Run(be, new ModelBench.Options(ParseShapes(shapes), ParseDTypes(dtypes), model, runs, warmup, cudaGraph, memory), Console.Out);
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "model.rows.json"), ModelRow.ToJson(rows));
        File.WriteAllText(Path.Combine(outDir, "model.md"), ModelBench.Markdown(rows, env.Header));
        Console.WriteLine($"wrote model.rows.json, model.md in {outDir}");
        return 0;
    });

    public static int Decode(string device, string outDir, string batches, string contexts, string dtypes, int layers, int dim, int heads, int hidden,
        int window, int chunk, int rank, int steps, bool peer, bool profile, bool profilePrefill) => Guard("decode", () =>
    {
        if (steps < 2) throw new ArgumentOutOfRangeException("steps", steps, "--steps must be at least 2");
        Positive(layers, "--layers");
        using var be = BackendFactory.Open(device);
        var env = BenchEnvironment.Of(be);
        var model = ModelBench.Enwik8Base with { Layers = layers, Dim = dim, Heads = heads, Hidden = hidden, Window = window, ChunkLength = chunk, Rank = rank, Dropout = 0 };
        var rows = DecodeBench.Run(be, new DecodeBench.Options(ParseLengths(batches, "--batches"), ParseLengths(contexts, "--contexts"), ParseDTypes(dtypes), model, steps, peer, profile, profilePrefill), Console.Out);
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "decode.rows.json"), DecodeRow.ToJson(rows));
        File.WriteAllText(Path.Combine(outDir, "decode.md"), DecodeBench.Markdown(rows, env.Header));
        File.WriteAllText(Path.Combine(outDir, "decode.svg"), DecodeBench.Plot(rows));
        Console.WriteLine($"wrote decode.rows.json, decode.md, decode.svg in {outDir}");
        return 0;
    });

    /// <summary>
    /// The LS layer at a small shape on the CPU backend (float64 math, float32 storage): its parameters under the
    /// state_dict names bench/peers/ls_layers.py uses, a random input x and the library's output y, in one safetensors
    /// file, so bench/peers/check_ls_layer.py can run the PyTorch peer on the same weights and input and compare.
    /// </summary>
    public static int ExportLayer(string outDir, int batch, int n, int dim, int heads, int window, int rank) => Guard("export-layer", () =>
    {
        Positive(batch, "--batch"); Positive(n, "--n");
        if (n % window != 0) throw new ArgumentException($"--n {n} must be a multiple of --window {window} (the peer's segments)", "n");
        var be = CpuBackend.Instance;
        using var module = new Layers.LsAttentionModule(be, new Layers.LsAttentionModuleConfig(dim, heads, window, rank), DType.Float32, new Random(3));
        using var x = new RandomInputs(4).Normal(be, DType.Float32, 1, batch, n, dim);
        using var y = module.Forward(x, null);
        var tensors = new Dictionary<string, Tensor>(module.Parameters.Tensors) { ["x"] = x, ["y"] = y };
        Directory.CreateDirectory(outDir);
        var path = Path.Combine(outDir, "layer.safetensors");
        Checkpoints.SafeTensors.Save(path, tensors, new Dictionary<string, string>
        {
            ["config"] = $"{{\"dim\": {dim}, \"heads\": {heads}, \"window\": {window}, \"rank\": {rank}}}",
        });
        Console.WriteLine($"wrote {path}: the LS layer at B={batch} N={n} D={dim} H={heads} w={window} r={rank}, its input and output");
        return 0;
    });

    /// <summary>
    /// A tiny causal LM (float64, CPU) and its logits over two blocks of a random byte stream (the second block reads the
    /// first's memories), for bench/peers/check_causal_lm.py: the PyTorch causal peer must compute the same function.
    /// </summary>
    public static int ExportCausal(string outDir) => Guard("export-causal", () =>
    {
        var be = CpuBackend.Instance;
        var cfg = new Models.CausalLmConfig { Vocab = 32, Dim = 32, Heads = 2, Hidden = 64, Layers = 2, Window = 8, ChunkLength = 4, Rank = 2, Length = 16, Memory = 16, Dropout = 0 };
        const int batch = 2, blocks = 2;
        using var model = new Models.CausalLm(be, cfg, DType.Float64, 5);
        using var scope = new TensorScope();
        using var g = model.BuildGraph(batch);
        using var run = new Graphs.Executor(g.Graph, new Graphs.ExecutorOptions { Keep = [.. g.NextMemories, g.Logits] });
        var feeds = new Dictionary<Graphs.Value, Tensor>();
        foreach (var v in g.Memories.Append(g.Tokens).Append(g.Targets))
        {
            var t = be.Empty(v.Shape, v.DType);
            be.Fill(t, v == g.Targets ? -1f : 0f);
            feeds[v] = t;
        }
        var rng = new Random(6);
        var stream = new double[batch * blocks * cfg.Length];
        for (var i = 0; i < stream.Length; i++) stream[i] = rng.Next(cfg.Vocab);
        var logits = new double[batch * blocks * cfg.Length * cfg.Vocab];
        for (var k = 0; k < blocks; k++)
        {
            var tokens = new double[batch * cfg.Length];
            for (var b = 0; b < batch; b++)
                for (var i = 0; i < cfg.Length; i++) tokens[b * cfg.Length + i] = stream[(b * blocks + k) * cfg.Length + i];
            feeds[g.Tokens].CopyFrom(tokens);
            run.Forward(feeds);
            var y = run[g.Logits].ToDoubles();
            for (var b = 0; b < batch; b++)
                Array.Copy(y, b * cfg.Length * cfg.Vocab, logits, (b * blocks + k) * cfg.Length * cfg.Vocab, cfg.Length * cfg.Vocab);
            for (var i = 0; i < g.Memories.Length; i++) Ops.Elementwise.Cast(be, run[g.NextMemories[i]], feeds[g.Memories[i]]);
            run.ReleaseOutputs();
        }
        var tStream = be.Empty(new Shape(batch, blocks * cfg.Length), DType.Float64);
        tStream.CopyFrom(stream);
        var tLogits = be.Empty(new Shape(batch, blocks * cfg.Length, cfg.Vocab), DType.Float64);
        tLogits.CopyFrom(logits);
        var tensors = new Dictionary<string, Tensor>(model.Parameters.Tensors) { ["tokens"] = tStream, ["logits"] = tLogits };
        Directory.CreateDirectory(outDir);
        var path = Path.Combine(outDir, "causal_lm.safetensors");
        Checkpoints.SafeTensors.Save(path, tensors, new Dictionary<string, string>
        {
            ["config"] = $"{{\"vocab\": {cfg.Vocab}, \"dim\": {cfg.Dim}, \"heads\": {cfg.Heads}, \"hidden\": {cfg.Hidden}, \"layers\": {cfg.Layers}, " +
                $"\"window\": {cfg.Window}, \"chunk\": {cfg.ChunkLength}, \"rank\": {cfg.Rank}, \"length\": {cfg.Length}, \"memory\": {cfg.Memory}, \"blocks\": {blocks}}}",
        });
        Console.WriteLine($"wrote {path}: a {cfg.Layers}-layer causal LM (D={cfg.Dim} H={cfg.Heads} w={cfg.Window} l={cfg.ChunkLength} r={cfg.Rank} L=M={cfg.Length}), " +
            $"{batch} streams of {blocks} blocks and their logits (float64, CPU)");
        return 0;
    });
}
