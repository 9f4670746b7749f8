using System.Runtime.InteropServices;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TransformerLS.Tensors;

namespace TransformerLS.Checkpoints;

/// <summary>One tensor's entry in a safetensors header: byte range [Begin, End) of the data section.</summary>
public sealed record SafeTensorsEntry(string Name, string DType, int[] Shape, long Begin, long End);

/// <summary>A safetensors file was malformed, truncated, or does not match what it is loaded into.</summary>
public sealed class CheckpointException(string message) : Exception(message);

/// <summary>
/// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes of JSON
/// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}), then the data.
/// Reading validates the header the way the format's own loader does: the length fits the file, the JSON is an
/// object, every entry's byte range matches its dtype and shape, and the ranges tile the data section exactly
/// (no gap, no overlap, nothing after the last), so a truncated or spliced file is refused by name.
/// </summary>
public static class SafeTensors
{
    /// <summary>The format's own cap on the header, against a hostile length.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    static readonly Dictionary<string, int> ElementBytes = new()
    {
        ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E4M3"] = 1, ["F8_E5M2"] = 1, ["I16"] = 2, ["U16"] = 2, ["F16"] = 2,
        ["BF16"] = 2, ["I32"] = 4, ["U32"] = 4, ["F32"] = 4, ["I64"] = 8, ["U64"] = 8, ["F64"] = 8,
    };

    public static string Code(DType t) => t switch { DType.Float32 => "F32", DType.BFloat16 => "BF16", _ => "F64" };

    /// <summary>
    /// Writes <paramref name="tensors"/> (in name order, so equal models give equal files) and the metadata to
    /// <paramref name="path"/> through a temporary file, so a crash never leaves a half-written checkpoint.
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToArray();
        foreach (var n in names)
            if (n == "__metadata__" || n.Length == 0) throw new ArgumentException($"tensor name '{n}' is reserved or empty", nameof(tensors));
        if (metadata?.Keys.FirstOrDefault(k => k.StartsWith(ChecksumPrefix, StringComparison.Ordinal)) is { } taken)
            throw new ArgumentException($"metadata key '{taken}' is reserved: '{ChecksumPrefix}<tensor>' holds each tensor's checksum", nameof(metadata));
        // Every tensor's bytes, read once: checked for NaN / infinity and hashed into the metadata before the header is written.
        var data = new byte[names.Length][];
        var withSums = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>());
        for (var k = 0; k < names.Length; k++)
        {
            var t = tensors[names[k]];
            data[k] = new byte[t.Bytes];
            t.Backend.CopyToHost(t, data[k]);
            if (FirstNonFinite(t.DType, data[k]) is { } at)
                throw new CheckpointException($"not saved to '{path}': tensor '{names[k]}' holds a non-finite value (NaN or infinity) at element {at}; the run diverged");
            withSums[ChecksumPrefix + names[k]] = Checksum(data[k]);
        }
        metadata = withSums;
        using var header = new MemoryStream();
        using (var w = new Utf8JsonWriter(header))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var n in names)
            {
                var t = tensors[n];
                w.WriteStartObject(n);
                w.WriteString("dtype", Code(t.DType));
                w.WriteStartArray("shape");
                foreach (var d in t.Shape.Dims) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Bytes;
            }
            w.WriteEndObject();
        }
        // Spaces pad the header to a multiple of 8 bytes, so the data section starts aligned (the format allows it).
        var pad = (int)((8 - header.Length % 8) % 8);
        var tmp = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            using (var f = File.Create(tmp))
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)(header.Length + pad));
                f.Write(len);
                header.Position = 0;
                header.CopyTo(f);
                for (var i = 0; i < pad; i++) f.WriteByte((byte)' ');
                foreach (var bytes in data) f.Write(bytes);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            File.Delete(tmp); // nothing half-written is left, and an earlier checkpoint at the path stays as it was
            throw;
        }
    }

    /// <summary>Metadata key prefix of the per-tensor checksums (the file stays plain safetensors).</summary>
    public const string ChecksumPrefix = "sha256.";

    /// <summary>The first 16 bytes of SHA-256 over a tensor's bytes, in hex.</summary>
    internal static string Checksum(ReadOnlySpan<byte> bytes) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes))[..32].ToLowerInvariant();

    /// <summary>The index of the first NaN or infinity in <paramref name="bytes"/> of <paramref name="dtype"/>, or null.</summary>
    internal static long? FirstNonFinite(DType dtype, ReadOnlySpan<byte> bytes)
    {
        switch (dtype)
        {
            case DType.Float32:
                var f = MemoryMarshal.Cast<byte, float>(bytes);
                for (var i = 0; i < f.Length; i++) if (!float.IsFinite(f[i])) return i;
                return null;
            case DType.BFloat16:
                var h = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (var i = 0; i < h.Length; i++) if ((h[i] & 0x7F80) == 0x7F80) return i; // exponent all ones
                return null;
            default:
                var d = MemoryMarshal.Cast<byte, double>(bytes);
                for (var i = 0; i < d.Length; i++) if (!double.IsFinite(d[i])) return i;
                return null;
        }
    }

    /// <summary>Reads and validates the header of <paramref name="path"/>; tensors are read on demand.</summary>
    public static SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint '{path}' does not exist", path);
        var fileLength = new FileInfo(path).Length;
        using var f = File.OpenRead(path);
        if (fileLength < 8) throw Bad(path, $"is {fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> len = stackalloc byte[8];
        f.ReadExactly(len);
        var n = BinaryPrimitives.ReadUInt64LittleEndian(len);
        if (n > MaxHeaderBytes) throw Bad(path, $"declares a {n}-byte header; the format allows at most {MaxHeaderBytes}");
        if ((long)n > fileLength - 8) throw Bad(path, $"declares a {n}-byte header but only {fileLength - 8} bytes follow the length (truncated?)");
        var json = new byte[n];
        f.ReadExactly(json);
        var dataBytes = fileLength - 8 - (long)n;
        return new SafeTensorsFile(path, 8 + (long)n, ParseHeader(path, json, dataBytes, out var meta), meta);
    }

    static List<SafeTensorsEntry> ParseHeader(string path, byte[] json, long dataBytes, out Dictionary<string, string> metadata)
    {
        metadata = [];
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw Bad(path, $"has a header that is not valid JSON: {e.Message}"); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, $"has a {doc.RootElement.ValueKind} header; expected a JSON object");
        var entries = new List<SafeTensorsEntry>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (!seen.Add(prop.Name)) throw Bad(path, $"names tensor '{prop.Name}' twice");
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object) throw Bad(path, "has a __metadata__ that is not an object");
                foreach (var m in prop.Value.EnumerateObject())
                    metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()!
                        : throw Bad(path, $"has metadata '{m.Name}' that is not a string");
                continue;
            }
            entries.Add(ParseEntry(path, prop));
        }
        // The ranges must tile [0, dataBytes): sorted by begin, each starts where the previous ended.
        long at = 0;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin != at) throw Bad(path, $"tensor '{e.Name}' starts at byte {e.Begin} of the data, expected {at} (a gap or an overlap)");
            at = e.End;
        }
        if (at != dataBytes)
            throw Bad(path, $"has {dataBytes} data bytes but its tensors cover {at}{(dataBytes < at ? " (truncated?)" : " (trailing bytes)")}");
        return entries;
    }

    static SafeTensorsEntry ParseEntry(string path, JsonProperty prop)
    {
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object
            || !v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String
            || !v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array
            || !v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad(path, $"tensor '{prop.Name}' needs dtype (string), shape (array) and data_offsets ([begin, end])");
        var dtype = dt.GetString()!;
        if (!ElementBytes.TryGetValue(dtype, out var size)) throw Bad(path, $"tensor '{prop.Name}' has unknown dtype '{dtype}'");
        var shape = new int[sh.GetArrayLength()];
        long count = 1;
        var i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out var x) || x < 0)
                throw Bad(path, $"tensor '{prop.Name}' has shape entry {d}; expected a non-negative 32-bit integer");
            shape[i++] = x;
            if (x != 0 && count > long.MaxValue / x) throw Bad(path, $"tensor '{prop.Name}' has shape [{string.Join(", ", sh.EnumerateArray())}], whose element count overflows 64 bits");
            count *= x;
        }
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number
            || !off[0].TryGetInt64(out var begin) || !off[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw Bad(path, $"tensor '{prop.Name}' has data_offsets {off}; expected 0 <= begin <= end");
        if (count > long.MaxValue / size || end - begin != count * size)
            throw Bad(path, $"tensor '{prop.Name}' spans {end - begin} bytes but {dtype} [{string.Join(", ", shape)}] needs {count * size}");
        return new SafeTensorsEntry(prop.Name, dtype, shape, begin, end);
    }

    internal static CheckpointException Bad(string path, string what) => new($"checkpoint '{path}' {what}");
}

/// <summary>An opened, validated safetensors file: its entries and metadata; tensor bytes are read on demand.</summary>
public sealed class SafeTensorsFile
{
    readonly Dictionary<string, SafeTensorsEntry> _entries;
    readonly long _dataStart;

    internal SafeTensorsFile(string path, long dataStart, List<SafeTensorsEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path; _dataStart = dataStart; Metadata = metadata;
        _entries = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyCollection<SafeTensorsEntry> Entries => _entries.Values;
    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>Copies tensor <paramref name="name"/> into <paramref name="target"/>, whose shape and dtype must match.</summary>
    public void ReadInto(string name, Tensor target)
    {
        if (!_entries.TryGetValue(name, out var e))
            throw new CheckpointException($"checkpoint '{Path}' has no tensor '{name}'");
        CheckMatch(e, target);
        using var f = File.OpenRead(Path);
        Read(f, e, target);
    }

    /// <summary>
    /// Copies each tensor of <paramref name="targets"/> from the file by its name (the file may hold more, such as a
    /// training checkpoint's optimizer state), every shape and dtype checked before anything is read; one open for all.
    /// </summary>
    public void ReadEach(IReadOnlyDictionary<string, Tensor> targets)
    {
        foreach (var (name, t) in targets)
        {
            if (!_entries.TryGetValue(name, out var e)) throw new CheckpointException($"checkpoint '{Path}' has no tensor '{name}'");
            CheckMatch(e, t);
        }
        using var f = File.OpenRead(Path);
        foreach (var (name, t) in targets) Read(f, _entries[name], t);
    }

    /// <summary>The raw bytes of tensor <paramref name="name"/>, checked against its checksum when the file carries one.</summary>
    public byte[] ReadBytes(string name)
    {
        if (!_entries.TryGetValue(name, out var e))
            throw new CheckpointException($"checkpoint '{Path}' has no tensor '{name}'");
        using var f = File.OpenRead(Path);
        return Bytes(f, e);
    }

    byte[] Bytes(FileStream f, SafeTensorsEntry e)
    {
        var bytes = new byte[e.End - e.Begin];
        f.Position = _dataStart + e.Begin;
        f.ReadExactly(bytes);
        if (Metadata.TryGetValue(SafeTensors.ChecksumPrefix + e.Name, out var sum) && SafeTensors.Checksum(bytes) != sum)
            throw new CheckpointException($"checkpoint '{Path}' tensor '{e.Name}' does not match its checksum: the file was changed or corrupted after it was written");
        return bytes;
    }

    void Read(FileStream f, SafeTensorsEntry e, Tensor target)
    {
        var bytes = Bytes(f, e);
        if (SafeTensors.FirstNonFinite(target.DType, bytes) is { } at)
            throw new CheckpointException($"checkpoint '{Path}' tensor '{e.Name}' holds a non-finite value (NaN or infinity) at element {at}; refusing to load it");
        target.Backend.CopyFromHost(target, bytes);
    }

    /// <summary>
    /// Loads every tensor of <paramref name="targets"/>; the names must match exactly (a missing or an unexpected
    /// tensor is an error listing both sets), so a checkpoint of another model is refused before anything is read.
    /// </summary>
    public void LoadInto(IReadOnlyDictionary<string, Tensor> targets)
    {
        var missing = targets.Keys.Where(n => !_entries.ContainsKey(n)).Order(StringComparer.Ordinal).ToArray();
        var extra = _entries.Keys.Where(n => !targets.ContainsKey(n)).Order(StringComparer.Ordinal).ToArray();
        if (missing.Length > 0 || extra.Length > 0)
            throw new CheckpointException($"checkpoint '{Path}' does not match the model: missing [{string.Join(", ", missing)}], " +
                $"unexpected [{string.Join(", ", extra)}]");
        ReadEach(targets);
    }

    void CheckMatch(SafeTensorsEntry e, Tensor t)
    {
        if (e.DType != SafeTensors.Code(t.DType) || !e.Shape.AsSpan().SequenceEqual(t.Shape.Dims))
            throw new CheckpointException($"checkpoint '{Path}' tensor '{e.Name}' is {e.DType} [{string.Join(", ", e.Shape)}]; " +
                $"the model expects {SafeTensors.Code(t.DType)} [{string.Join(", ", t.Shape.Dims.ToArray())}]");
    }
}
