namespace TransformerLS.Tensors;

/// <summary>An immutable list of dimensions, row-major.</summary>
public readonly struct Shape : IEquatable<Shape>
{
    readonly int[]? _dims;

    public Shape(params int[] dims)
    {
        foreach (var d in dims)
            if (d < 0) throw new ArgumentOutOfRangeException(nameof(dims), $"[{string.Join(", ", dims)}]", "every dimension must be >= 0");
        _dims = (int[])dims.Clone();
    }

    public int Rank => _dims?.Length ?? 0;
    public int this[int axis] => _dims![axis < 0 ? axis + Rank : axis];
    public ReadOnlySpan<int> Dims => _dims;

    public long Count
    {
        get
        {
            long n = 1;
            foreach (var d in Dims) n *= d;
            return n;
        }
    }

    /// <summary>Product of the dimensions in [from, to).</summary>
    public long Product(int from, int to)
    {
        long n = 1;
        for (var i = from; i < to; i++) n *= this[i];
        return n;
    }

    /// <summary>Normalizes a possibly negative axis, or throws naming <paramref name="argument"/>.</summary>
    public int Axis(int axis, string argument)
    {
        if (axis < -Rank || axis >= Rank)
            throw new ArgumentOutOfRangeException(argument, axis, $"axis must be in [{-Rank}, {Rank}) for a tensor of shape {this}");
        return axis < 0 ? axis + Rank : axis;
    }

    public bool Equals(Shape other) => Dims.SequenceEqual(other.Dims);
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var d in Dims) h.Add(d);
        return h.ToHashCode();
    }
    public static bool operator ==(Shape a, Shape b) => a.Equals(b);
    public static bool operator !=(Shape a, Shape b) => !a.Equals(b);
    public override string ToString() => $"[{string.Join(", ", _dims ?? [])}]";
}

public readonly record struct Device(DeviceKind Kind, int Index = 0)
{
    public static readonly Device Cpu = new(DeviceKind.Cpu);
    public static Device Cuda(int index = 0) => new(DeviceKind.Cuda, index);
    public override string ToString() => Kind == DeviceKind.Cpu ? "cpu" : $"cuda:{Index}";

    public static Device Parse(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "cpu") return Cpu;
        if (t == "cuda") return Cuda();
        if (t.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(t[5..], out var i) && i >= 0) return Cuda(i);
        throw new ArgumentException($"device '{text}' is not one of: cpu, cuda, cuda:N", nameof(text));
    }
}

public enum DeviceKind { Cpu, Cuda }
