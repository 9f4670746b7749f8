using System.Buffers.Binary;
using System.Text;
using TransformerLS.Backends;
using TransformerLS.Checkpoints;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

public sealed class CheckpointTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("tls-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string PathOf(string name) => Path.Combine(_dir, name);

    static Dictionary<string, Tensor> Model(IBackend be, int seed)
    {
        var rng = new Random(seed);
        Tensor Make(Shape s, DType dt)
        {
            var t = be.Empty(s, dt);
            t.CopyFrom([.. Enumerable.Range(0, (int)s.Count).Select(_ => (float)RandomDraw.Normal(rng))]);
            return t;
        }
        return new()
        {
            ["layers.0.attn.to_q.weight"] = Make(new Shape(6, 4), DType.BFloat16),
            ["layers.0.norm.weight"] = Make(new Shape(4), DType.Float32),
            ["embed.weight"] = Make(new Shape(3, 5, 2), DType.Float32),
            ["empty"] = Make(new Shape(0, 3), DType.Float32),
        };
    }

    static byte[] Bytes(Tensor t)
    {
        var b = new byte[t.Bytes];
        t.Backend.CopyToHost(t, b);
        return b;
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda")]
    public void Round_trip_is_bit_exact_with_metadata(string device)
    {
        IBackend be = device == "cpu" ? CpuBackend.Instance : TestEnv.RequireGpu();
        using var scope = new TensorScope();
        var saved = Model(be, 1);
        var path = PathOf("a.safetensors");
        SafeTensors.Save(path, saved, new Dictionary<string, string> { ["step"] = "42", ["format"] = "pt" });
        var loaded = Model(be, 2);
        var file = SafeTensors.Open(path);
        file.LoadInto(loaded);
        Assert.Equal("42", file.Metadata["step"]);
        foreach (var (name, t) in saved) Assert.Equal(Bytes(t), Bytes(loaded[name]));
        // The same model saves to the same bytes: names in order, no timestamps.
        var again = PathOf("b.safetensors");
        SafeTensors.Save(again, saved, new Dictionary<string, string> { ["format"] = "pt", ["step"] = "42" });
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(again));
    }

    /// <summary>A file built by hand from the format's description (not by our writer) reads back.</summary>
    [Fact]
    public void Reads_a_file_written_from_the_format_description()
    {
        var header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[8,12]}}";
        var data = new byte[12];
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(0), 1.5f);
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4), -2f);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(8), BFloat16.FromFloat(3f));
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(10), BFloat16.FromFloat(-0.25f));
        var path = Write("hand.safetensors", header, data);
        using var scope = new TensorScope();
        var w = CpuBackend.Instance.Empty(new Shape(2), DType.Float32);
        var b = CpuBackend.Instance.Empty(new Shape(1, 2), DType.BFloat16);
        SafeTensors.Open(path).LoadInto(new Dictionary<string, Tensor> { ["w"] = w, ["b"] = b });
        Assert.Equal([1.5f, -2f], w.ToArray());
        Assert.Equal([3f, -0.25f], b.ToArray());
    }

    string Write(string name, string header, byte[] data, long? declared = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(declared ?? h.Length));
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        File.WriteAllBytes(PathOf(name), bytes);
        return PathOf(name);
    }

    [Fact]
    public void Truncated_checkpoint_is_refused_by_name()
    {
        using var scope = new TensorScope();
        var path = PathOf("t.safetensors");
        SafeTensors.Save(path, Model(CpuBackend.Instance, 3));
        var all = File.ReadAllBytes(path);
        File.WriteAllBytes(path, all[..^5]);
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Open(path));
        Assert.Contains("truncated", e.Message);
        File.WriteAllBytes(path, all[..20]);
        e = Assert.Throws<CheckpointException>(() => SafeTensors.Open(path));
        Assert.Contains("header", e.Message);
        File.WriteAllBytes(path, all[..5]);
        Assert.Throws<CheckpointException>(() => SafeTensors.Open(path));
    }

    [Theory]
    [InlineData("[1, 2]", "expected a JSON object")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "not valid JSON")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "needs 12")]
    [InlineData("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", "unknown dtype 'Q4'")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "non-negative")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", "data_offsets")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "overlap")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "gap")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "trailing")]
    [InlineData("{\"__metadata__\":{\"step\":3},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "not a string")]
    public void Malformed_headers_are_refused_with_the_reason(string header, string reason)
    {
        var path = Write("bad.safetensors", header, new byte[8]);
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Open(path));
        Assert.Contains(reason, e.Message);
        Assert.Contains("bad.safetensors", e.Message);
    }

    [Fact]
    public void Header_length_beyond_the_file_or_the_cap_is_refused()
    {
        var path = Write("long.safetensors", "{}", [], declared: 1000);
        Assert.Contains("truncated", Assert.Throws<CheckpointException>(() => SafeTensors.Open(path)).Message);
        path = Write("huge.safetensors", "{}", [], declared: long.MaxValue);
        Assert.Contains("at most", Assert.Throws<CheckpointException>(() => SafeTensors.Open(path)).Message);
    }

    [Fact]
    public void Mismatched_model_is_refused_before_anything_is_read()
    {
        using var scope = new TensorScope();
        var be = CpuBackend.Instance;
        var path = PathOf("m.safetensors");
        SafeTensors.Save(path, Model(be, 4));
        var target = Model(be, 5);
        var before = Bytes(target["embed.weight"]);

        var wrongShape = new Dictionary<string, Tensor>(target) { ["layers.0.norm.weight"] = be.Empty(new Shape(5), DType.Float32) };
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Open(path).LoadInto(wrongShape));
        Assert.Contains("'layers.0.norm.weight' is F32 [4]; the model expects F32 [5]", e.Message);
        Assert.Equal(before, Bytes(target["embed.weight"]));

        var wrongDtype = new Dictionary<string, Tensor>(target) { ["layers.0.norm.weight"] = be.Empty(new Shape(4), DType.BFloat16) };
        Assert.Contains("expects BF16", Assert.Throws<CheckpointException>(() => SafeTensors.Open(path).LoadInto(wrongDtype)).Message);

        var missing = new Dictionary<string, Tensor>(target) { ["head.bias"] = be.Empty(new Shape(2), DType.Float32) };
        missing.Remove("empty");
        e = Assert.Throws<CheckpointException>(() => SafeTensors.Open(path).LoadInto(missing));
        Assert.Contains("missing [head.bias]", e.Message);
        Assert.Contains("unexpected [empty]", e.Message);

        Assert.Contains("no tensor 'nope'", Assert.Throws<CheckpointException>(() => SafeTensors.Open(path).ReadInto("nope", target["empty"])).Message);
        Assert.Throws<FileNotFoundException>(() => SafeTensors.Open(PathOf("absent.safetensors")));
    }

    [Theory]
    [InlineData(DType.Float32, float.NaN)]
    [InlineData(DType.BFloat16, float.PositiveInfinity)]
    public void A_non_finite_tensor_is_neither_saved_nor_loaded(DType dtype, float bad)
    {
        var be = CpuBackend.Instance;
        var path = PathOf("good.safetensors");
        var model = Model(be, 1);
        SafeTensors.Save(path, model);
        var before = File.ReadAllBytes(path);
        using var broken = be.Empty(new Shape(3), dtype);
        broken.CopyFrom([1f, bad, 2f]);
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Save(path, new Dictionary<string, Tensor>(model) { ["w"] = broken }));
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains("element 1", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));           // the earlier checkpoint at the path is untouched
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));         // and no temp file is left

        // A file whose tensor bytes hold the value (written by something else) is refused at load, naming the tensor.
        var raw = PathOf("nan.safetensors");
        var code = dtype == DType.Float32 ? "F32" : "BF16";
        var header = Encoding.UTF8.GetBytes("{\"w\":{\"dtype\":\"" + code + "\",\"shape\":[3],\"data_offsets\":[0," + 3 * dtype.Size() + "]}}");
        var data = new byte[3 * dtype.Size()];
        broken.Backend.CopyToHost(broken, data);
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        File.WriteAllBytes(raw, file);
        using var target = be.Empty(new Shape(3), dtype);
        var load = Assert.Throws<CheckpointException>(() => SafeTensors.Open(raw).LoadInto(new Dictionary<string, Tensor> { ["w"] = target }));
        Assert.Contains("'w'", load.Message);
        Assert.Contains("non-finite", load.Message);
    }

    [Fact]
    public void Each_tensor_carries_a_checksum_that_loading_verifies()
    {
        var be = CpuBackend.Instance;
        var path = PathOf("sum.safetensors");
        var model = Model(be, 2);
        SafeTensors.Save(path, model, new Dictionary<string, string> { ["step"] = "1" });
        var file = SafeTensors.Open(path);
        Assert.All(model.Keys, n => Assert.True(file.Metadata.ContainsKey(SafeTensors.ChecksumPrefix + n), $"no checksum for {n}"));
        Assert.Equal("1", file.Metadata["step"]);
        // One flipped bit in the last tensor's bytes (the file's last byte) is caught by name.
        var bytes = File.ReadAllBytes(path);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(path, bytes);
        var last = file.Entries.MaxBy(e => e.End)!.Name;
        var targets = model.ToDictionary(kv => kv.Key, kv => be.Empty(kv.Value.Shape, kv.Value.DType));
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Open(path).LoadInto(targets));
        Assert.Contains($"'{last}'", e.Message);
        Assert.Contains("checksum", e.Message);
        Assert.Throws<ArgumentException>(() => SafeTensors.Save(PathOf("x.safetensors"), model, new Dictionary<string, string> { [SafeTensors.ChecksumPrefix + "a"] = "0" }));
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}}""", "data_offsets")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,8]}}""", "overflows")]
    public void Odd_headers_are_named_errors_not_crashes(string header, string expected)
    {
        var path = PathOf("odd.safetensors");
        var h = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + h.Length + 8];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)h.Length);
        h.CopyTo(file, 8);
        File.WriteAllBytes(path, file);
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Open(path));
        Assert.Contains(expected, e.Message);
    }
}
