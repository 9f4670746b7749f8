namespace TransformerLS.Tensors;

/// <summary>
/// Element types. <see cref="Float64"/> exists only on the CPU backend: it makes a whole model float64, so that
/// model-level finite differences are exact to ~1e-10 instead of float32's ~1e-7 noise.
/// </summary>
public enum DType { Float32, BFloat16, Float64 }

public static class DTypeExtensions
{
    public static int Size(this DType t) => t switch
    {
        DType.Float32 => 4,
        DType.BFloat16 => 2,
        DType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown dtype"),
    };

    public static string Name(this DType t) => t switch
    {
        DType.Float32 => "float32",
        DType.BFloat16 => "bfloat16",
        DType.Float64 => "float64",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown dtype"),
    };

    /// <summary>
    /// The dtype of what a model of dtype <paramref name="t"/> keeps wide: statistics, LayerNorm weights, losses,
    /// gradients and optimizer state. float32 for float32 and bfloat16; float64 for float64.
    /// </summary>
    public static DType Wide(this DType t) => t == DType.Float64 ? DType.Float64 : DType.Float32;

    /// <summary>Rounds <paramref name="v"/> to the nearest value representable in <paramref name="t"/>.</summary>
    public static double Round(this DType t, double v) => t switch
    {
        DType.Float32 => (float)v,
        DType.BFloat16 => BFloat16.Round((float)v),
        _ => v,
    };
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
