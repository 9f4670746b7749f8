using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>A tensor seen as [outer, dim, inner] around the softmax axis.</summary>
internal readonly record struct SoftmaxGeometry(long Outer, int Dim, long Inner);

/// <summary>Checks and CPU reference of kernels/softmax/.</summary>
public static partial class Softmax
{
    internal static SoftmaxGeometry CheckShapes(IBackend be, Tensor x, Tensor y, int axis, Tensor? dy = null)
    {
        Check.On(be, x, nameof(x));
        Check.RankAtLeast(x, 1, nameof(x));
        var ax = x.Shape.Axis(axis, nameof(axis));
        Check.Like(be, y, x, dy is null ? "y" : "dx");
        if (dy is not null) Check.Like(be, dy, x, nameof(dy));
        return new SoftmaxGeometry(x.Shape.Product(0, ax), x.Shape[ax], x.Shape.Product(ax + 1, x.Shape.Rank));
    }

    internal static void Forward<T>(SoftmaxGeometry g, ReadOnlySpan<T> x, Span<T> y) where T : IFloatingPointIeee754<T>
    {
        for (long o = 0; o < g.Outer; o++)
            for (long i = 0; i < g.Inner; i++)
            {
                var b = (int)(o * g.Dim * g.Inner + i);
                var m = T.NegativeInfinity;
                for (var j = 0; j < g.Dim; j++) m = T.Max(m, x[b + j * (int)g.Inner]);
                var s = T.Zero;
                for (var j = 0; j < g.Dim; j++) s += T.Exp(x[b + j * (int)g.Inner] - m);
                for (var j = 0; j < g.Dim; j++) y[b + j * (int)g.Inner] = T.Exp(x[b + j * (int)g.Inner] - m) / s;
            }
    }

    internal static void Backward<T>(SoftmaxGeometry g, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) where T : IFloatingPointIeee754<T>
    {
        for (long o = 0; o < g.Outer; o++)
            for (long i = 0; i < g.Inner; i++)
            {
                var b = (int)(o * g.Dim * g.Inner + i);
                var s = T.Zero;
                for (var j = 0; j < g.Dim; j++) s += y[b + j * (int)g.Inner] * dy[b + j * (int)g.Inner];
                for (var j = 0; j < g.Dim; j++)
                {
                    var k = b + j * (int)g.Inner;
                    dx[k] = y[k] * (dy[k] - s);
                }
            }
    }
}
