using TransformerLS.Backends;
using TransformerLS.Checkpoints;
using TransformerLS.Graphs;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>
/// State dicts as the official code writes them (issue 15, item 4): names, shapes and dtypes of the reference
/// (transformer-ls.md sections 1.9 and 3.7), exported to safetensors, load into the library's models.
/// </summary>
public class ReferenceCheckpointTests
{
    /// <summary>The model's parameters as the reference stores them: float64, under fairseq's wrapper for the LM, the
    /// relative biases in their 5-D / 4-D shapes, the sinusoid buffer and the tied output embedding written out.</summary>
    static string Export(ModelHarness h, string model, bool wrap = true)
    {
        var cpu = CpuBackend.Instance;
        var tensors = new Dictionary<string, Tensor>();
        var prefix = model == "lm" && wrap ? "decoder.model." : "";
        foreach (var (name, t) in h.Parameters.Tensors)
        {
            var shape = name.EndsWith("r_w_bias", StringComparison.Ordinal) ? new Shape(1, t.Shape[0], 1, 1, t.Shape[1])
                : name.EndsWith("r_r_bias", StringComparison.Ordinal) ? new Shape(1, t.Shape[0], 1, t.Shape[1]) : t.Shape;
            var f64 = cpu.Empty(shape, DType.Float64);
            f64.CopyFrom(t.ToDoubles());
            tensors[prefix + name] = f64;
        }
        if (model == "lm")
        {
            var inv = cpu.Empty(new Shape(8), DType.Float64);
            inv.CopyFrom([.. Enumerable.Range(0, 8).Select(i => Math.Pow(10000, -2.0 * i / 16))]);
            tensors[prefix + "pos_emb.inv_freq"] = inv;
            var tied = cpu.Empty(h.Parameters["in_emb.weight"].Shape, DType.Float64);
            tied.CopyFrom(h.Parameters["in_emb.weight"].ToDoubles());
            tensors[prefix + "out_emb.weight"] = tied;
        }
        var path = Path.Combine(Path.GetTempPath(), $"tls-ref-{Guid.NewGuid():N}.safetensors");
        SafeTensors.Save(path, tensors);
        foreach (var t in tensors.Values) t.Dispose();
        return path;
    }

    static float[] Logits(ModelHarness h)
    {
        using var run = h.Executor(false, h.Logits);
        run.Forward(h.Feeds);
        return run[h.Logits].ToArray();
    }

    [Theory]
    [InlineData("lra")]
    [InlineData("lm")]
    public void A_reference_state_dict_loads_and_gives_the_same_logits(string model)
    {
        var be = CpuBackend.Instance;
        using var source = ModelHarness.Create(be, model, DType.Float32, 3);
        var path = Export(source, model);
        try
        {
            using var loaded = ModelHarness.Create(be, model, DType.Float32, 3); // the same inputs ...
            foreach (var t in loaded.Parameters.Tensors.Values) be.Fill(t, 0);   // ... and no weights of its own
            var report = StateDict.Load(loaded.Parameters, path, strict: true);
            Assert.Empty(report.Missing);
            Assert.Empty(report.Unexpected);
            Assert.Equal(model == "lm" ? ["decoder.model.out_emb.weight", "decoder.model.pos_emb.inv_freq"] : [], report.Ignored);
            foreach (var (name, t) in source.Parameters.Tensors)
                Assert.True(t.ToArray().AsSpan().SequenceEqual(loaded.Parameters[name].ToArray()), $"{name} differs after the load");
            // The float64 CPU run of the loaded model gives the source model's logits, bit for bit.
            Assert.Equal(Logits(source), Logits(loaded));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Bf16_models_round_each_float64_value_once()
    {
        var be = CpuBackend.Instance;
        using var source = ModelHarness.Create(be, "lra", DType.Float32, 4);
        var path = Export(source, "lra");
        try
        {
            using var bf = ModelHarness.Create(be, "lra", DType.BFloat16, 4);
            StateDict.Load(bf.Parameters, path);
            foreach (var (name, t) in bf.Parameters.Tensors)
            {
                var want = source.Parameters[name].ToDoubles().Select(v => (float)t.DType.Round(v)).ToArray();
                Assert.True(want.AsSpan().SequenceEqual(t.ToArray()), $"{name} is not the once-rounded float64 value");
            }
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Strict_mode_names_every_missing_unexpected_and_mis_shaped_key()
    {
        var be = CpuBackend.Instance;
        using var h = ModelHarness.Create(be, "lra", DType.Float32, 5);
        var cpu = CpuBackend.Instance;
        var all = h.Parameters.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value);
        var dropped = all.Keys.First(k => k.EndsWith("norm1.weight", StringComparison.Ordinal));
        all.Remove(dropped);
        using var extra = cpu.Empty(new Shape(3), DType.Float32);
        all["model.unused.weight"] = extra;
        var wrongName = all.Keys.First(k => k.EndsWith("W_q.weight", StringComparison.Ordinal));
        using var wrong = cpu.Empty(new Shape(3, 5), DType.Float32);
        cpu.Fill(wrong, 0);
        all[wrongName] = wrong;
        var path = Path.Combine(Path.GetTempPath(), $"tls-ref-{Guid.NewGuid():N}.safetensors");
        SafeTensors.Save(path, all);
        try
        {
            var e = Assert.Throws<CheckpointException>(() => StateDict.Load(h.Parameters, path, strict: true));
            Assert.Contains($"missing [{dropped}]", e.Message);
            Assert.Contains("unexpected [model.unused.weight]", e.Message);
            Assert.Contains($"{wrongName} is [3, 5]", e.Message);
            // Not strict: still refused, because a mis-shaped tensor cannot be loaded at all.
            Assert.Throws<CheckpointException>(() => StateDict.Load(h.Parameters, path, strict: false));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Not_strict_reports_what_it_could_not_match_and_loads_the_rest()
    {
        var be = CpuBackend.Instance;
        using var source = ModelHarness.Create(be, "lra", DType.Float32, 6);
        var all = source.Parameters.Tensors.Where(kv => !kv.Key.StartsWith("seq_classifer.", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        var path = Path.Combine(Path.GetTempPath(), $"tls-ref-{Guid.NewGuid():N}.safetensors");
        SafeTensors.Save(path, all);
        try
        {
            using var target = ModelHarness.Create(be, "lra", DType.Float32, 7);
            var report = StateDict.Load(target.Parameters, path, strict: false);
            Assert.Equal(4, report.Missing.Count);
            Assert.All(report.Missing, m => Assert.StartsWith("seq_classifer.", m));
            Assert.Empty(report.Unexpected);
            var name = all.Keys.First();
            Assert.Equal(source.Parameters[name].ToArray(), target.Parameters[name].ToArray());
            Assert.Contains("missing [seq_classifer.", Assert.Throws<CheckpointException>(() => StateDict.Load(target.Parameters, path, strict: true)).Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void An_untied_output_embedding_is_refused_by_name()
    {
        var be = CpuBackend.Instance;
        using var h = ModelHarness.Create(be, "lm", DType.Float32, 8);
        var all = h.Parameters.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value);
        using var other = be.Empty(h.Parameters["in_emb.weight"].Shape, DType.Float32);
        be.Fill(other, 0.5f);
        all["out_emb.weight"] = other;
        var path = Path.Combine(Path.GetTempPath(), $"tls-ref-{Guid.NewGuid():N}.safetensors");
        SafeTensors.Save(path, all);
        try
        {
            var e = Assert.Throws<CheckpointException>(() => StateDict.Load(h.Parameters, path));
            Assert.Contains("out_emb.weight that differs from its in_emb.weight", e.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void A_saved_model_loads_back_strictly_through_the_front_door()
    {
        var be = CpuBackend.Instance;
        using Models.ILsModel a = new Models.CausalLm(be, ModelHarness.Lm(), DType.BFloat16, 1), b = new Models.CausalLm(be, ModelHarness.Lm(), DType.BFloat16, 2);
        var path = Path.Combine(Path.GetTempPath(), $"tls-sd-{Guid.NewGuid():N}.safetensors");
        try
        {
            a.Save(path);
            var report = b.LoadStateDict(path);
            Assert.Empty(report.Missing);
            Assert.Empty(report.Unexpected);
            foreach (var (name, t) in a.Parameters.Tensors)
                Assert.True(t.ToArray().AsSpan().SequenceEqual(b.Parameters[name].ToArray()), $"{name} differs after save + load");
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Classify_gives_each_sequence_its_own_probabilities_whatever_else_is_in_the_batch()
    {
        var be = CpuBackend.Instance;
        using var model = new Models.LraClassifier(be, ModelHarness.Lra(), DType.Float32, 9);
        var rng = new Random(4);
        int[] Seq(int n) => [.. Enumerable.Range(0, n).Select(_ => rng.Next(1, model.Config.Vocab))];
        var (a, b, shortOne) = (Seq(10), Seq(10), Seq(6));
        var both = model.Classify([a, b]);
        Assert.All(both, row => Assert.Equal(1.0, row.Sum(), 5));
        var alone = model.Classify([a]);
        for (var c = 0; c < alone[0].Length; c++) Assert.Equal(alone[0][c], both[0][c], 5);
        // A padded, masked sequence in a batch of longer ones scores as it does alone (CLS pooling ignores padding).
        var mixed = model.Classify([a, shortOne]);
        var single = model.Classify([shortOne]);
        for (var c = 0; c < single[0].Length; c++) Assert.Equal(single[0][c], mixed[1][c], 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Classify([[model.Config.Vocab]]));
        Assert.Throws<ArgumentException>(() => model.Classify([[]]));
    }
}
