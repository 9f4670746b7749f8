using System.Buffers.Binary;
using TransformerLS.Layers;

namespace TransformerLS.Checkpoints;

/// <summary>What <see cref="StateDict.Load"/> did: model tensors the file lacked, file tensors the model has no use for,
/// and file tensors it set aside on purpose (known buffers, the tied output embedding), each sorted.</summary>
public sealed record StateDictReport(IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Ignored);

/// <summary>
/// Loads a state_dict exported from the official PyTorch code (to safetensors) into a model's parameters, as
/// torch's <c>load_state_dict(strict)</c> does, with the reference's differences mapped
/// (../shared/reference/transformer-ls.md, sections 1.9 and 3.7):
/// <list type="bullet">
/// <item>wrappers stripped: fairseq's <c>decoder.model.</c>, DataParallel's <c>module.</c>;</item>
/// <item>dtypes F64, F32, F16 and BF16, each value rounded once to the parameter's dtype;</item>
/// <item>shapes that differ only by axes of size 1: <c>r_w_bias [1,H,1,1,d]</c> and <c>r_r_bias [1,H,1,d]</c> into [H, d];</item>
/// <item>the buffer <c>pos_emb.inv_freq</c> set aside (the library computes the sinusoid itself);</item>
/// <item>the tied <c>out_emb.weight</c> set aside when it equals <c>in_emb.weight</c> (the library ties them), refused when not.</item>
/// </list>
/// Every name is checked before anything is read: a mis-shaped or non-numeric tensor is always an error; with
/// <c>strict</c>, so is any missing or unexpected name, and the error lists them all.
/// </summary>
public static class StateDict
{
    static readonly string[] Wrappers = ["decoder.model.", "module."];
    static readonly string[] Buffers = ["pos_emb.inv_freq"];
    const string TiedOutput = "out_emb.weight", TiedInput = "in_emb.weight";

    public static StateDictReport Load(ParameterSet target, string path, bool strict = true)
    {
        var file = SafeTensors.Open(path);
        var byName = new Dictionary<string, SafeTensorsEntry>(StringComparer.Ordinal);
        foreach (var e in file.Entries)
        {
            var name = Unwrap(e.Name);
            if (!byName.TryAdd(name, e))
                throw new CheckpointException($"checkpoint '{path}' holds '{byName[name].Name}' and '{e.Name}', both '{name}' once unwrapped");
        }
        var ignored = new List<string>();
        var unexpected = new List<string>();
        var misShaped = new List<string>();
        foreach (var (name, e) in byName)
        {
            if (target.Tensors.ContainsKey(name)) continue;
            if (Buffers.Any(b => name == b || name.EndsWith("." + b, StringComparison.Ordinal))) ignored.Add(e.Name);
            else if (name == TiedOutput && !target.Tensors.ContainsKey(TiedOutput) && byName.ContainsKey(TiedInput)) ignored.Add(e.Name);
            else unexpected.Add(e.Name);
        }
        var missing = target.Tensors.Keys.Where(n => !byName.ContainsKey(n)).Order(StringComparer.Ordinal).ToList();
        foreach (var (name, t) in target.Tensors)
        {
            if (!byName.TryGetValue(name, out var e)) continue;
            if (!Numeric(e.DType)) misShaped.Add($"{e.Name} is {e.DType}; expected F64, F32, F16 or BF16");
            else if (!SameUpToUnitAxes(e.Shape, t.Shape.Dims))
                misShaped.Add($"{e.Name} is [{string.Join(", ", e.Shape)}]; the model's {name} is [{string.Join(", ", t.Shape.Dims.ToArray())}]");
        }
        unexpected.Sort(StringComparer.Ordinal);
        ignored.Sort(StringComparer.Ordinal);
        if (misShaped.Count > 0 || (strict && (missing.Count > 0 || unexpected.Count > 0)))
            throw new CheckpointException($"checkpoint '{path}' does not fit the model: " + string.Join("; ", new[]
            {
                misShaped.Count > 0 ? $"mis-shaped [{string.Join("; ", misShaped)}]" : null,
                missing.Count > 0 ? $"missing [{string.Join(", ", missing)}]" : null,
                unexpected.Count > 0 ? $"unexpected [{string.Join(", ", unexpected)}]" : null,
            }.Where(s => s is not null)));
        // The tied input embedding is read once: for the comparison and then for the load.
        double[]? tiedInput = null;
        if (ignored.Contains(byName.GetValueOrDefault(TiedOutput)?.Name ?? ""))
        {
            tiedInput = Read(file, byName[TiedInput]);
            if (!Read(file, byName[TiedOutput]).AsSpan().SequenceEqual(tiedInput))
                throw new CheckpointException($"checkpoint '{path}' has an {TiedOutput} that differs from its {TiedInput}; the library ties the two " +
                    "(the reference's tie_weight), so it cannot hold both");
        }
        foreach (var (name, t) in target.Tensors)
            if (byName.TryGetValue(name, out var e)) t.CopyFrom(name == TiedInput && tiedInput is not null ? tiedInput : Read(file, e));
        return new StateDictReport(missing, unexpected, ignored);
    }

    static string Unwrap(string name)
    {
        foreach (var w in Wrappers)
            if (name.StartsWith(w, StringComparison.Ordinal)) return name[w.Length..];
        return name;
    }

    static bool Numeric(string dtype) => dtype is "F64" or "F32" or "F16" or "BF16";

    static bool SameUpToUnitAxes(int[] stored, ReadOnlySpan<int> model)
    {
        if (stored.AsSpan().SequenceEqual(model)) return true;
        var a = stored.Where(x => x != 1).ToArray();
        var b = model.ToArray().Where(x => x != 1).ToArray();
        return a.AsSpan().SequenceEqual(b);
    }

    /// <summary>The tensor's values widened exactly to float64 (checksum and finiteness checked as for any load).</summary>
    static double[] Read(SafeTensorsFile file, SafeTensorsEntry e)
    {
        var bytes = file.ReadBytes(e.Name).AsSpan();
        var size = e.DType == "F64" ? 8 : e.DType == "F32" ? 4 : 2;
        var values = new double[bytes.Length / size];
        // One loop per dtype: the element loop does not test the dtype name.
        switch (e.DType)
        {
            case "F64": for (var i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadDoubleLittleEndian(bytes[(i * 8)..]); break;
            case "F32": for (var i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]); break;
            case "F16": for (var i = 0; i < values.Length; i++) values[i] = (double)BinaryPrimitives.ReadHalfLittleEndian(bytes[(i * 2)..]); break;
            default: for (var i = 0; i < values.Length; i++) values[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(i * 2)..]) << 16); break;
        }
        for (var i = 0; i < values.Length; i++)
            if (!double.IsFinite(values[i]))
                throw new CheckpointException($"checkpoint '{file.Path}' tensor '{e.Name}' holds a non-finite value (NaN or infinity) at element {i}; refusing to load it");
        return values;
    }
}
