using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Sizes of a copy along one axis: [Outer, SrcLen | DstLen, Inner].</summary>
internal readonly record struct SliceGeometry(long Outer, long Inner, int SrcLen, int DstLen, int SrcOffset, int DstOffset, int Length);

/// <summary>Checks and CPU reference of kernels/layout/.</summary>
public static partial class Layout
{
    /// <summary>x [A, B, C, D] → y [A, C, B, D]. Returns (A, B, C, D).</summary>
    internal static (long A, int B, int C, long D) CheckSwap(IBackend be, Tensor x, Tensor y)
    {
        Check.On(be, x, nameof(x));
        if (x.Shape.Rank != 4) throw new ArgumentException($"x has shape {x.Shape}; expected 4 axes [A, B, C, D]", nameof(x));
        Check.On(be, y, nameof(y));
        Check.DTypeIs(y, x.DType, nameof(y));
        Check.Dims(y, nameof(y), x.Shape[0], x.Shape[2], x.Shape[1], x.Shape[3]);
        return (x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]);
    }

    internal static void SwapAxes12<T>(long a, int b, int c, long d, T[] x, T[] y)
    {
        for (long o = 0; o < a; o++)
            for (var i = 0; i < b; i++)
                for (var j = 0; j < c; j++)
                    Array.Copy(x, ((o * b + i) * c + j) * d, y, ((o * c + j) * b + i) * d, d);
    }

    /// <summary>dst[.., dstOffset + j, ..] (+)= src[.., srcOffset + j, ..] for j &lt; length along <paramref name="axis"/>.</summary>
    internal static SliceGeometry CheckSlice(IBackend be, Tensor src, int srcOffset, Tensor dst, int dstOffset, int axis, int length)
    {
        Check.On(be, src, nameof(src));
        Check.On(be, dst, nameof(dst));
        Check.DTypeIs(dst, src.DType, nameof(dst));
        var ax = src.Shape.Axis(axis, nameof(axis));
        var agree = dst.Shape.Rank == src.Shape.Rank;
        for (var i = 0; agree && i < src.Shape.Rank; i++) agree = i == ax || src.Shape[i] == dst.Shape[i];
        if (!agree)
            throw new ArgumentException($"dst has shape {dst.Shape}; expected src's shape {src.Shape} except along axis {ax}", nameof(dst));
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "length must be >= 0");
        if (srcOffset < 0 || srcOffset + length > src.Shape[ax])
            throw new ArgumentOutOfRangeException(nameof(srcOffset), srcOffset, $"rows [{srcOffset}, {srcOffset + length}) must lie in src's axis {ax} of {src.Shape[ax]}");
        if (dstOffset < 0 || dstOffset + length > dst.Shape[ax])
            throw new ArgumentOutOfRangeException(nameof(dstOffset), dstOffset, $"rows [{dstOffset}, {dstOffset + length}) must lie in dst's axis {ax} of {dst.Shape[ax]}");
        return new SliceGeometry(src.Shape.Product(0, ax), src.Shape.Product(ax + 1, src.Shape.Rank), src.Shape[ax], dst.Shape[ax], srcOffset, dstOffset, length);
    }

    internal static void CopySlice<T>(SliceGeometry g, T[] src, T[] dst, bool accumulate) where T : IFloatingPointIeee754<T>
    {
        for (long o = 0; o < g.Outer; o++)
            for (var j = 0; j < g.Length; j++)
                for (long c = 0; c < g.Inner; c++)
                {
                    var to = (o * g.DstLen + g.DstOffset + j) * g.Inner + c;
                    var v = src[(o * g.SrcLen + g.SrcOffset + j) * g.Inner + c];
                    dst[to] = accumulate ? dst[to] + v : v;
                }
    }

    internal static void CheckWriteRows(IBackend be, Tensor src, Tensor rows, Tensor dst)
    {
        Check.On(be, src, nameof(src));
        if (src.Shape.Rank != 4) throw new ArgumentException($"src has shape {src.Shape}; expected [B, H, n, d]", nameof(src));
        Check.On(be, dst, nameof(dst));
        Check.DTypeIs(dst, src.DType, nameof(dst));
        if (dst.Shape.Rank != 4 || dst.Shape[0] != src.Shape[0] || dst.Shape[1] != src.Shape[1] || dst.Shape[3] != src.Shape[3] || dst.Shape[2] < src.Shape[2])
            throw new ArgumentException($"dst has shape {dst.Shape}; expected [{src.Shape[0]}, {src.Shape[1]}, cap >= {src.Shape[2]}, {src.Shape[3]}]", nameof(dst));
        Check.Vector(be, rows, src.Shape[0], DType.Float32, nameof(rows));
    }

    /// <summary>dst[b, h, rows[b] + j, :] = src[b, h, j, :] (j &lt; n) for every b with rows[b] >= 0; a row past the capacity throws
    /// (the kernel would write out of range).</summary>
    internal static void WriteRows<T>(int heads, int n, int cap, int d, T[] src, T[] rows, T[] dst) where T : IFloatingPointIeee754<T>
    {
        for (var b = 0; b < rows.Length; b++)
        {
            var at = int.CreateChecked(rows[b]);
            if (at < 0) continue;
            if (at + n > cap) throw new ArgumentOutOfRangeException("rows", at, $"sequence {b}: rows [{at}, {at + n}) must lie in dst's {cap}");
            for (var h = 0; h < heads; h++)
            {
                var o = (long)b * heads + h;
                Array.Copy(src, o * n * d, dst, (o * cap + at) * d, (long)n * d);
            }
        }
    }
}
