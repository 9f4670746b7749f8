namespace TransformerLS.Data;

/// <summary>
/// A byte-level corpus from any file, split into train / valid / test: enwik8 (exactly 100,000,000 bytes) gets
/// the usual 90M / 5M / 5M, any other file the same proportions (90% / 5% / 5%, the remainder to train).
/// </summary>
public sealed class ByteCorpus
{
    public const long Enwik8Bytes = 100_000_000;

    public ReadOnlyMemory<byte> Train { get; }
    public ReadOnlyMemory<byte> Valid { get; }
    public ReadOnlyMemory<byte> Test { get; }

    ByteCorpus(byte[] all)
    {
        var (train, valid) = Split(all.LongLength);
        Train = all.AsMemory(0, (int)train);
        Valid = all.AsMemory((int)train, (int)valid);
        Test = all.AsMemory((int)(train + valid));
    }

    /// <summary>Train and valid lengths for a corpus of <paramref name="length"/> bytes; test is the rest.</summary>
    public static (long Train, long Valid) Split(long length)
    {
        if (length == Enwik8Bytes) return (90_000_000, 5_000_000);
        var held = length / 20;
        return (length - 2 * held, held);
    }

    public static ByteCorpus Load(string path, int minimumBytes = 1024)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"corpus file '{path}' does not exist", path);
        var length = new FileInfo(path).Length;
        if (length < minimumBytes)
            throw new ArgumentException($"corpus file '{path}' has {length} bytes; at least {minimumBytes} are needed for train/valid/test splits", nameof(path));
        if (length > int.MaxValue) throw new ArgumentException($"corpus file '{path}' has {length} bytes; at most {int.MaxValue} are supported", nameof(path));
        return new ByteCorpus(File.ReadAllBytes(path));
    }

    public static ByteCorpus FromBytes(byte[] all) => new(all);
}

/// <summary>
/// Truncated-BPTT batches over one split: the split is cut into <c>batch</c> contiguous streams and each step
/// takes the next <c>length</c> bytes of every stream, so row b of step s + 1 continues row b of step s (what
/// carrying the attention memory across steps needs). Targets are the inputs shifted by one byte.
/// </summary>
public sealed class BpttBatches
{
    readonly ReadOnlyMemory<byte> _data;
    readonly long _streamLength;

    public int Batch { get; }
    public int Length { get; }
    /// <summary>Full steps per pass over the split.</summary>
    public long Steps { get; }

    public BpttBatches(ReadOnlyMemory<byte> split, int batch, int length)
    {
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), batch, "expected >= 1");
        if (length < 1) throw new ArgumentOutOfRangeException(nameof(length), length, "expected >= 1");
        _streamLength = split.Length / batch;
        if (_streamLength < length + 1)
            throw new ArgumentException($"a split of {split.Length} bytes gives {batch} streams of {_streamLength} bytes; " +
                $"a step of {length} needs at least {length + 1}", nameof(split));
        _data = split; Batch = batch; Length = length;
        Steps = (_streamLength - 1) / length;
    }

    /// <summary>Writes step <paramref name="step"/>'s inputs and targets, [batch, length] row-major, as byte values.</summary>
    public void Fill(long step, Span<int> inputs, Span<int> targets)
    {
        if (step < 0 || step >= Steps) throw new ArgumentOutOfRangeException(nameof(step), step, $"expected 0 <= step < {Steps}");
        if (inputs.Length != Batch * Length || targets.Length != Batch * Length)
            throw new ArgumentException($"inputs and targets need {Batch * Length} entries; got {inputs.Length} and {targets.Length}", nameof(inputs));
        var data = _data.Span;
        for (var b = 0; b < Batch; b++)
        {
            var start = b * _streamLength + step * Length;
            for (var t = 0; t < Length; t++)
            {
                inputs[b * Length + t] = data[(int)(start + t)];
                targets[b * Length + t] = data[(int)(start + t + 1)];
            }
        }
    }
}
