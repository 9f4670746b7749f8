using System.Runtime.InteropServices;

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

    /// <summary>Stores <paramref name="values"/> as <paramref name="t"/> elements in <paramref name="bytes"/>, each rounded once.</summary>
    public static void Encode(this DType t, ReadOnlySpan<double> values, Span<byte> bytes)
    {
        switch (t)
        {
            case DType.Float32:
                var f = MemoryMarshal.Cast<byte, float>(bytes);
                for (var i = 0; i < values.Length; i++) f[i] = (float)values[i];
                break;
            case DType.BFloat16:
                var h = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (var i = 0; i < values.Length; i++) h[i] = BFloat16.FromFloat((float)values[i]);
                break;
            default:
                values.CopyTo(MemoryMarshal.Cast<byte, double>(bytes));
                break;
        }
    }

    /// <summary>Reads <paramref name="values"/>.Length <paramref name="t"/> elements from <paramref name="bytes"/>, widened exactly.</summary>
    public static void Decode(this DType t, ReadOnlySpan<byte> bytes, Span<double> values)
    {
        switch (t)
        {
            case DType.Float32:
                var f = MemoryMarshal.Cast<byte, float>(bytes);
                for (var i = 0; i < values.Length; i++) values[i] = f[i];
                break;
            case DType.BFloat16:
                var h = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (var i = 0; i < values.Length; i++) values[i] = BFloat16.ToFloat(h[i]);
                break;
            default:
                MemoryMarshal.Cast<byte, double>(bytes)[..values.Length].CopyTo(values);
                break;
        }
    }

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
