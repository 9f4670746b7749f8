using TransformerLS.Backends;

namespace TransformerLS.Tensors;

/// <summary>Argument checks shared by both backends; every message names the argument, its value and what was expected.</summary>
internal static class Check
{
    public static void NotDisposed(Tensor t, string name)
    {
        if (t.IsDisposed) throw new ObjectDisposedException(name, $"{name} was disposed");
    }

    public static void On(IBackend backend, Tensor t, string name)
    {
        NotDisposed(t, name);
        if (!ReferenceEquals(t.Backend, backend))
            throw new ArgumentException($"{name} is on {t.Device} ({t.Backend.GetType().Name}); this op runs on {backend.Device}", name);
    }

    public static void SameShape(Tensor t, Shape expected, string name)
    {
        if (t.Shape != expected) throw new ArgumentException($"{name} has shape {t.Shape}; expected {expected}", name);
    }

    /// <summary>Exactly these dimensions, checked without allocating (the message is built only on failure).</summary>
    public static void Dims(Tensor t, string name, params ReadOnlySpan<int> dims)
    {
        if (!t.Shape.Dims.SequenceEqual(dims))
            throw new ArgumentException($"{name} has shape {t.Shape}; expected [{string.Join(", ", dims.ToArray())}]", name);
    }

    /// <summary>
    /// Exactly <paramref name="expected"/>, except that float64 stands in for float32 (statistics, gradients, masks,
    /// indices): float64 lives only on the CPU backend, which computes every op in float64 anyway.
    /// </summary>
    public static void DTypeIs(Tensor t, DType expected, string name)
    {
        if (t.DType != expected && !(expected == DType.Float32 && t.DType == DType.Float64)) throw new ArgumentException($"{name} has dtype {t.DType.Name()}; expected {expected.Name()}", name);
    }

    public static void RankAtLeast(Tensor t, int rank, string name)
    {
        if (t.Shape.Rank < rank) throw new ArgumentException($"{name} has shape {t.Shape}; expected at least {rank} dimension(s)", name);
    }

    /// <summary>Same backend, shape and dtype as <paramref name="like"/>.</summary>
    public static void Like(IBackend backend, Tensor t, Tensor like, string name)
    {
        On(backend, t, name);
        SameShape(t, like.Shape, name);
        DTypeIs(t, like.DType, name);
    }

    /// <summary>A 1-D tensor of <paramref name="length"/> elements (checked without allocating).</summary>
    public static void Vector(IBackend backend, Tensor t, int length, DType dtype, string name)
    {
        On(backend, t, name);
        DTypeIs(t, dtype, name);
        if (t.Shape.Rank != 1 || t.Shape[0] != length)
            throw new ArgumentException($"{name} has shape {t.Shape}; expected [{length}]", name);
    }

    /// <summary>A float32 [B, n] padding mask (1 = token, 0 = padding), or null.</summary>
    public static void PaddingMask(IBackend backend, Tensor? mask, int b, int n, string name)
    {
        if (mask is null) return;
        On(backend, mask, name);
        DTypeIs(mask, DType.Float32, name);
        if (mask.Shape.Rank != 2 || mask.Shape[0] != b || mask.Shape[1] != n)
            throw new ArgumentException($"{name} has shape {mask.Shape}; expected [{b}, {n}] (1 = token, 0 = padding)", name);
    }

    public static void Positive(float v, string name)
    {
        if (!(v > 0) || float.IsInfinity(v)) throw new ArgumentOutOfRangeException(name, v, $"{name} must be a finite number > 0");
    }
}
