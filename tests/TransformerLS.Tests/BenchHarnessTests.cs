using System.Xml.Linq;
using TransformerLS.Backends;
using TransformerLS.Bench;
using TransformerLS.Bench.Harness;
using TransformerLS.Bench.Kernels;
using TransformerLS.Bench.Scale;
using TransformerLS.Bench.SideBySide;
using TransformerLS.Conformance;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>
/// Smoke runs of the benchmark harness on the CPU backend (tiny shapes; the numbers mean nothing, the plumbing is
/// what is checked): every kernel case launches, rates follow from the formulas and times, the exports agree,
/// the memory sweep's plan equals the allocator's peak at every length, the plots are well-formed SVG.
/// </summary>
public class BenchHarnessTests
{
    static readonly KernelShape Tiny = new(Tokens: 64, N: 32, Heads: 2, HeadDim: 8, Window: 8, Rank: 4,
        CausalLength: 16, CausalMemory: 16, CausalWindow: 8, ChunkLength: 4, CausalRank: 1);

    [Fact]
    public void The_decode_bench_measures_each_batch_and_context_and_plots_ms_per_token()
    {
        var be = CpuBackend.Instance;
        var cfg = ModelBench.Enwik8Base with { Vocab = 13, Dim = 16, Heads = 2, Hidden = 32, Layers = 1, Window = 4, ChunkLength = 2, Length = 8, Dropout = 0 };
        var rows = DecodeBench.Run(be, new DecodeBench.Options([1, 2], [8, 16], [DType.Float32], cfg, Steps: 3, Peer: false));
        Assert.Equal(4, rows.Count); // (batch, context) pairs; no eager rows and no peer on the CPU
        foreach (var r in rows)
        {
            Assert.Equal("ok", r.Status);
            Assert.True(r.MsPerToken > 0 && r.DecodeTokensPerS > 0 && r.PrefillTokensPerS > 0, DecodeBench.Format(r));
            Assert.Equal(r.Batch / (r.MsPerToken!.Value / 1000), r.DecodeTokensPerS!.Value, 6);
        }
        var svg = XDocument.Parse(DecodeBench.Plot(rows));
        var lines = svg.Descendants().Where(e => e.Name.LocalName == "polyline").ToList();
        Assert.Equal(2, lines.Count); // one line per (impl, dtype, batch), a point per context
        Assert.All(lines, l => Assert.Equal(2, l.Attribute("points")!.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length));
        Assert.Contains("tls-decode fp32 B2", svg.ToString());
    }

    [Fact]
    public void Median_and_percentiles_are_order_statistics()
    {
        Assert.Equal(new TimeStats(3, 2, 1, 3), TimeStats.Of([3, 1, 2]));
        Assert.Equal(2.5, TimeStats.Of([4, 1, 3, 2]).MedianMs);
        Assert.Equal(9, TimeStats.Of([.. Enumerable.Range(1, 10).Select(i => (double)i)]).P90Ms);
        Assert.Throws<ArgumentException>(() => TimeStats.Of([]));
    }

    [Fact]
    public void Inputs_larger_than_the_pool_tile_it_without_zeros()
    {
        using var be = new CpuBackend();
        using var t = new RandomInputs(1).Normal(be, DType.Float32, 2, 3, 1 << 20);
        var v = t.ToArray();
        Assert.DoesNotContain(0f, v);
        Assert.Equal(v[5], v[5 + (1 << 20)]);
        Assert.Equal(v[7], v[7 + (2 << 20)]);
        Assert.InRange(v.Take(1 << 20).Select(x => (double)x * x).Average(), 3.9, 4.1); // N(0, 2²)
    }

    [Fact]
    public void Kernel_filter_takes_comma_separated_texts()
    {
        Assert.True(KernelBench.Matches("ls_attention.forward", null));
        Assert.True(KernelBench.Matches("ls_attention.forward", " "));
        Assert.True(KernelBench.Matches("ls_attention.forward", "LS_ATTENTION"));
        Assert.True(KernelBench.Matches("layer_norm.backward", "ls_attention, layer_norm"));
        Assert.True(KernelBench.Matches("dual_layer_norm.backward", "ls_attention,layer_norm"));
        Assert.False(KernelBench.Matches("linear.forward", "ls_attention,layer_norm"));
        Assert.False(KernelBench.Matches("linear.forward", "ls_attention,,"));
        Assert.False(KernelBench.Matches("ls_attention.forward", "ls_attention.backward"));
        // Through Run: only the selected families' rows come back.
        using var be = new CpuBackend();
        var report = KernelBench.Run(be, new KernelBench.Options([Tiny], [DType.Float32], Runs: 1, Warmup: 0, Filter: "layer_norm.backward,linear.forward",
            CeilingGemm: 32, CeilingCopyBytes: 1 << 16));
        Assert.Equal(["dual_layer_norm.backward", "layer_norm.backward", "linear.forward"],
            report.Rows.Select(r => $"{r.Family}.{r.Kernel}").Order(StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public void Every_kernel_case_runs_and_the_exports_agree()
    {
        using var be = new CpuBackend();
        var report = KernelBench.Run(be, new KernelBench.Options([Tiny], [DType.BFloat16, DType.Float32], Runs: 3, Warmup: 1, CeilingGemm: 32, CeilingCopyBytes: 1 << 16));
        var cases = OpCases.Perf(Tiny, [DType.BFloat16, DType.Float32]).ToList();
        Assert.Equal(cases.Count, report.Rows.Count);
        Assert.Equal(23, cases.Count / 2); // 9 families (the LS attention also token-major) x forward/backward, DecodeLinear at batch 1, 8 and 64, the decode attention at batch 1 and 64, per dtype
        foreach (var (r, c) in report.Rows.Zip(cases))
        {
            Assert.Equal((c.Stem, c.Direction), (r.Family, r.Kernel));
            Assert.True(r.Time.MedianMs > 0 && r.Time.MinMs <= r.Time.MedianMs && r.Time.MedianMs <= r.Time.P90Ms, $"{r.Family}.{r.Kernel}: {r.Time}");
            Assert.True(c.Bytes > 0, $"{r.Family}.{r.Kernel} moves no bytes");
            Assert.Equal(c.Bytes / (r.Time.MedianMs * 1e6), r.GBps, 9);
            Assert.Equal(100 * r.GBps / report.Ceilings.CopyGBps, r.PctCopy, 9);
            if (c.Flops > 0) Assert.Equal(c.Flops / (r.Time.MedianMs * 1e9), r.Tflops, 9); else Assert.True(double.IsNaN(r.Tflops));
        }
        // The backward of the fused attention counts 2.5x the forward's FLOPs and the projection's 2x (bench/README.md).
        double F(string family, string kernel) => cases.First(c => c.Stem == family && c.Direction == kernel).Flops;
        Assert.Equal(2.5 * F("ls_attention", "forward"), F("ls_attention", "backward"));
        Assert.Equal(2 * F("ls_projection", "forward"), F("ls_projection", "backward"));
        // The forward FLOPs of the fused attention: 4·B·H·N·(2e + w + r)·d.
        Assert.Equal(4.0 * 2 * 2 * 32 * (8 + 8 + 4) * 8, F("ls_attention", "forward"));

        var back = KernelReport.FromJson(report.ToJson());
        Assert.Equal(report.Rows.Count, back.Rows.Count);
        Assert.Equal(report.Rows[0].Time, back.Rows[0].Time);
        Assert.Equal(report.Environment, back.Environment);
        var csv = report.ToCsv().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(report.Rows.Count + 1, csv.Count(l => !l.StartsWith('#')));
        Assert.Contains(csv, l => l.StartsWith("# commit: "));
        Assert.Equal(report.Rows.Count, report.ToMarkdown().Split('\n').Count(l => l.StartsWith("| ls_") || l.StartsWith("| layer_norm") || l.StartsWith("| gelu")
            || l.StartsWith("| linear") || l.StartsWith("| dual_") || l.StartsWith("| decode_linear")));
    }

    [Theory]
    [InlineData(LayerKind.Ls)]
    [InlineData(LayerKind.Full)]
    public void The_sweep_doubles_to_the_cap_and_its_plan_equals_the_measured_peak(LayerKind kind)
    {
        using var be = new CpuBackend();
        var spec = new LayerSpec(kind, DType.Float32, Dim: 16, Heads: 2, Window: 4, Rank: 3);
        var rows = ScaleSweep.Run(be, spec, new ScaleSweep.Options(Start: 8, MaxLength: 40, Runs: 1));
        Assert.Equal([8, 16, 32, 64], rows.Select(r => r.Length));
        Assert.All(rows.Take(3), r =>
        {
            Assert.Equal("ok", r.Status);
            Assert.Equal(r.PlannedTrainBytes, r.PeakTrainBytes);
            Assert.True(r.PeakForwardBytes < r.PeakTrainBytes);
            Assert.True(r.ForwardMs > 0 && r.TrainMs > 0);
        });
        Assert.Equal("length-cap", rows[^1].Status);
        Assert.Equal(0, be.MemoryStats.LiveBytes); // every length's tensors were freed
        var (memory, time) = ScaleSweep.Plots(rows, "test");
        Assert.Single(XDocument.Parse(memory).Descendants(XName.Get("polyline", "http://www.w3.org/2000/svg")));
        Assert.Equal(2, XDocument.Parse(time).Descendants(XName.Get("polyline", "http://www.w3.org/2000/svg")).Count());
        var csv = ScaleSweep.ToCsv(rows, BenchEnvironment.Of(be)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(rows.Count + 1, csv.Count(l => !l.StartsWith('#')));
    }

    [Fact]
    public void Full_attention_memory_grows_faster_than_ls()
    {
        using var be = new CpuBackend();
        ScaleRow At(LayerKind kind, int n) => ScaleSweep.Run(be, new LayerSpec(kind, DType.Float32, Dim: 16, Heads: 2, Window: 4, Rank: 3),
            new ScaleSweep.Options(Start: n, MaxLength: n, Runs: 1))[0];
        double Growth(LayerKind kind) => (double)At(kind, 256).PeakTrainBytes / At(kind, 64).PeakTrainBytes;
        Assert.True(Growth(LayerKind.Full) > 8, $"full attention grew {Growth(LayerKind.Full):F1}x for 4x the length");
        Assert.True(Growth(LayerKind.Ls) < 4.5, $"LS attention grew {Growth(LayerKind.Ls):F1}x for 4x the length");
    }

    [Fact]
    public void Side_by_side_table_merges_steps_and_sweeps()
    {
        List<StepRow> rows =
        [
            new("tls-ls", "bf16", "step", 1024, 64, "ok", 1.0, 3.0, 1 << 30),
            new("torch-sdpa", "bf16", "step", 1024, 64, "ok", 2.0, 5.0, 2L << 30),
            new("tls-ls", "bf16", "sweep", 1024, 1, "ok", 0.1, 0.3, 1 << 20),
            new("tls-ls", "bf16", "sweep", 2048, 1, "ok", 0.2, 0.5, 2 << 20),
            new("tls-ls", "bf16", "sweep", 4096, 1, "oom", null, null, null),
        ];
        var dir = Directory.CreateTempSubdirectory("tls-bench-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "a.rows.json"), StepRow.ToJson(rows.Take(2)));
            File.WriteAllText(Path.Combine(dir.FullName, "b.rows.json"), StepRow.ToJson(rows.Skip(2)));
            var loaded = StepRow.Load(dir.FullName);
            Assert.Equal(rows, loaded);
            var md = SideBySideTable.Markdown(loaded, "header");
            Assert.Contains("| bf16 | 1024 | 64 | tls-ls | 1.000 | 3.000 | 21.85 | 1024 | ok |", md);
            Assert.Contains("| tls-ls | bf16 | 2048 | 2 | 1024 | 0.500 | oom |", md);
            Assert.Equal(0, Commands.Table(dir.FullName));
            Assert.True(File.Exists(Path.Combine(dir.FullName, "sweep-memory.svg")));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Bad_arguments_are_named()
    {
        Assert.Contains("'fp16'", Assert.Throws<ArgumentException>(() => Commands.ParseDTypes("bf16,fp16")).Message);
        Assert.Equal(2, Commands.Table("/nonexistent/tls-results"));
        using var be = new CpuBackend();
        Assert.Throws<ArgumentOutOfRangeException>(() => ScaleSweep.Run(be, new LayerSpec(LayerKind.Ls, DType.Float32), new ScaleSweep.Options(Start: 0)));
    }

    [Fact]
    public void The_model_bench_times_whole_training_steps_and_writes_the_issue_14_rows()
    {
        using var be = new CpuBackend();
        var tiny = ModelBench.Enwik8Base with { Layers = 1, Dim = 16, Heads = 2, Hidden = 32, Window = 8, ChunkLength = 4 };
        var rows = ModelBench.Run(be, new ModelBench.Options([(16, 2), (32, 1)], [DType.Float32, DType.BFloat16], tiny, Runs: 2, Warmup: 1));
        Assert.Equal(4, rows.Count);
        Assert.All(rows, r =>
        {
            Assert.Equal("ok", r.Status);
            Assert.True(r.StepMs > 0 && r.PeakBytes > 0, $"{r}");
            Assert.True(r.HostMs > 0 && r.HostMs <= r.StepMs, $"the host's share of a step: {r}"); // on the CPU backend the host does everything
            Assert.Equal(r.Batch * r.Length / (r.StepMs!.Value / 1000), r.TokensPerS!.Value, 6);
            Assert.Equal(r.Length, r.Memory);
        });
        var json = ModelRow.ToJson(rows);
        foreach (var key in new[] { "impl", "dtype", "layers", "length", "memory", "batch", "step_ms", "tokens_per_s", "peak_bytes", "status", "host_ms" })
            Assert.Contains($"\"{key}\"", json);
        Assert.Equal(rows, ModelRow.FromJson(json));
        Assert.Contains("| tls | bf16 | 1 | 32 | 32 | 1 |", ModelBench.Markdown(rows, "header"));
    }

    /// <summary>The model bench's random text holds its steps and one held-out evaluation batch at issue 14's longest block
    /// (L = M = 131072 at batch 1: the held-out twentieth must hold 131,073 bytes; the step count alone asked for too few).</summary>
    [Theory, InlineData(1, 131072, 2), InlineData(4, 2048, 12), InlineData(1, 8192, 7), InlineData(2, 16, 3)]
    public void The_model_bench_text_holds_its_steps_and_a_held_out_batch(int batch, int length, int steps)
    {
        var bytes = ModelBench.TextBytes(batch, length, steps);
        var (train, valid) = TransformerLS.Data.ByteCorpus.Split(bytes);
        Assert.True(valid >= (long)batch * (length + 1), $"held-out {valid} bytes for {batch} x {length + 1}");
        Assert.True(train / batch >= (long)(length + 1) * steps, $"training text {train} bytes for {steps} steps of {batch} x {length}");
    }

    [Fact]
    public void Export_layer_writes_the_peer_check_file_with_the_state_dict_names_of_ls_layers_py()
    {
        var dir = Directory.CreateTempSubdirectory("tls-export-").FullName;
        try
        {
            Assert.Equal(0, Commands.ExportLayer(dir, 1, 64, 32, 2, 16, 4));
            var file = Checkpoints.SafeTensors.Open(Path.Combine(dir, "layer.safetensors"));
            var names = file.Entries.Select(e => e.Name).Order(StringComparer.Ordinal).ToArray();
            string[] want = ["W_k.bias", "W_k.weight", "W_o.bias", "W_o.weight", "W_q.bias", "W_q.weight", "W_v.bias", "W_v.weight",
                "dconv_fc.bias", "dconv_fc.weight", "dual_ln_l.bias", "dual_ln_l.weight", "dual_ln_s.bias", "dual_ln_s.weight", "x", "y"];
            Assert.Equal(want, names);
            Assert.Equal([1, 64, 32], file.Entries.Single(e => e.Name == "y").Shape);
            Assert.Equal("""{"dim": 32, "heads": 2, "window": 16, "rank": 4}""", file.Metadata["config"]);
            Assert.Equal(2, Commands.ExportLayer(dir, 1, 60, 32, 2, 16, 4)); // the peer needs whole segments
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>
    /// export-causal writes what check_causal_lm.py reads: every parameter under the names causal_lm.py declares, the
    /// streams and the logits, and logits that are the block forward's (the second block's depend on the first's memories).
    /// </summary>
    [Fact]
    public void Export_causal_writes_the_causal_peer_check_file()
    {
        var dir = Directory.CreateTempSubdirectory("tls-export-").FullName;
        try
        {
            Assert.Equal(0, Commands.ExportCausal(dir));
            var file = Checkpoints.SafeTensors.Open(Path.Combine(dir, "causal_lm.safetensors"));
            var names = file.Entries.Select(e => e.Name).ToHashSet();
            foreach (var n in new[] { "in_emb.weight", "out_emb.bias", "tokens", "logits", "layers.1.attn.r_w_bias", "layers.1.attn.r_net_chunk.bias",
                "layers.0.attn.dual_ln_dproj.weight", "layers.0.attn.dconv_1.bias", "layers.1.ff.fc2.weight", "layers.1.norm2.bias" })
                Assert.Contains(n, names);
            Assert.Equal(4 + 2 * 23, names.Count); // tokens, logits, in_emb, out_emb.bias; per layer 6 + 1 + 2 + 2 + 8 + 4 = 23, as causal_lm.py declares
            Assert.Equal([2, 16], file.Entries.Single(e => e.Name == "layers.0.attn.r_r_bias").Shape);
            Assert.Equal([2, 32, 32], file.Entries.Single(e => e.Name == "logits").Shape);
            Assert.Equal([2, 32], file.Entries.Single(e => e.Name == "tokens").Shape);
            Assert.Contains("\"blocks\": 2", file.Metadata["config"]);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
