namespace TransformerLS.Tensors;

public enum DType { Float32, BFloat16 }

public static class DTypeExtensions
{
    public static int Size(this DType t) => t switch
    {
        DType.Float32 => 4,
        DType.BFloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown dtype"),
    };

    public static string Name(this DType t) => t == DType.Float32 ? "float32" : "bfloat16";

    /// <summary>Rounds <paramref name="v"/> to the nearest value representable in <paramref name="t"/>.</summary>
    public static float Round(this DType t, double v) => t == DType.Float32 ? (float)v : BFloat16.Round((float)v);
}

/// <summary>bfloat16 as its 16 bits: round-to-nearest-even, NaN kept, bit-identical to the kernel prelude.</summary>
public static class BFloat16
{
    public static ushort FromFloat(float f)
    {
        var u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u);
        u += 0x7fffu + ((u >> 16) & 1u);
        return (ushort)(u >> 16);
    }

    public static float ToFloat(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);

    public static float Round(float f) => ToFloat(FromFloat(f));
}
