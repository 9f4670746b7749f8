using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// Softmax's cases (see Conformance/OpCases): the last axis, a middle axis, and an axis of one.
public static partial class Softmax
{
    internal static IEnumerable<OpCase> Cases(DType dt)
    {
        foreach (var (dims, axis) in new[] { (new[] { 4, 6, 50 }, -1), (new[] { 2, 300, 12 }, 1), (new[] { 5, 1 }, 0) })
        {
            var s = new Shape(dims);
            var shape = $"{s} axis {axis}";
            var ax = s.Axis(axis, nameof(axis));
            var geo = new SoftmaxGeometry(s.Product(0, ax), s[ax], s.Product(ax + 1, s.Rank));
            yield return Make($"{nameof(Softmax)}.{nameof(Forward)}", "softmax", dt, shape, [new("x", s, dt, Scale: 3)], [new("y", s, dt)],
                (be, i, o) => Forward(be, i[0], o[0], axis), new SoftmaxRef(geo, false), bytes: 2.0 * dt.Size() * s.Count);
            yield return Make($"{nameof(Softmax)}.{nameof(Backward)}", "softmax_backward", dt, shape, [new("y", s, dt, InputKind.SoftmaxOfNormal, 3, axis), new("dy", s, dt)], [new("dx", s, dt)],
                (be, i, o) => Backward(be, i[0], i[1], o[0], axis), new SoftmaxRef(geo, true), bytes: 3.0 * dt.Size() * s.Count);
        }
    }

    sealed record SoftmaxRef(SoftmaxGeometry G, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            if (Backward) Softmax.Backward<T>(G, i[0], i[1], y); else Forward<T>(G, i[0], y);
            return [y];
        }
    }
}
