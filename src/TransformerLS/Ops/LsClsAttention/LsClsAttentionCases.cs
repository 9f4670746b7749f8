using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The CLS attention's cases (see Conformance/OpCases). Useful FLOPs: 4·B·H·(n + 1)·d forward, 2.5x that backward.
public static partial class LsClsAttention
{
    static string F(string method) => $"{nameof(LsClsAttention)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt)
    {
        var f = DType.Float32;
        foreach (var (B, H, n, d, masked) in new[] { (2, 2, 37, 32, true), (1, 1, 300, 64, false), (1, 3, 5, 128, true), (2, 1, 1, 48, false) })
        {
            var g = new LsClsGeometry(B, H, n, d, 1f / MathF.Sqrt(d));
            var shape = $"B{B} H{H} n{n} d{d}{(masked ? " masked" : "")}";
            double s = dt.Size(), flops = 4.0 * B * H * (n + 1) * d, c = (double)B * H * n * d, q = (double)B * H * d;
            InputSpec[] ins = [In("q", dt, 1, B, H, d), In("k", dt, 1, B, H, d), In("v", dt, 1, B, H, d), In("c", dt, 1, B, H, n, d), .. masked ? new[] { PaddingMask(B, n) } : []];
            yield return Make(F(nameof(Forward)), "ls_cls_attention", dt, shape, ins, [Out("o", dt, B, H, d), Out("lse", f, B, H)],
                (be, i, o) => Forward(be, i[0], i[1], i[2], i[3], masked ? i[4] : null, o[0], o[1]), new LsClsRef(g, masked, false), flops, s * (c + 4 * q) + 4.0 * B * H);
            // The output and log-sum-exp the backward reads come from a forward in the untimed setup.
            yield return Timed(F(nameof(Backward)), "ls_cls_attention_backward", dt, shape, [.. ins, In("dout", dt, 1, B, H, d)],
                [Out("dq", dt, B, H, d), Out("dk", dt, B, H, d), Out("dv", dt, B, H, d), Out("dc", dt, B, H, n, d)],
                (be, i, o) =>
                {
                    var mask = masked ? i[4] : null;
                    var (att, lse) = (be.Empty(new Shape(B, H, d), dt), be.Empty(new Shape(B, H), f));
                    Forward(be, i[0], i[1], i[2], i[3], mask, att, lse);
                    var dout = i[masked ? 5 : 4];
                    return () => Backward(be, i[0], i[1], i[2], i[3], mask, att, lse, dout, o[0], o[1], o[2], o[3]);
                }, new LsClsRef(g, masked, true), 2.5 * flops, s * (2 * c + 8 * q) + 4.0 * B * H);
        }
    }

    sealed record LsClsRef(LsClsGeometry G, bool Masked, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var mask = Masked ? i[4] : [];
            T[] o = new T[i[0].Length], lse = new T[G.B * G.H];
            LsClsAttention.Forward(G, i[0], i[1], i[2], i[3], mask, o, lse);
            if (!Backward) return [o, lse];
            for (var j = 0; j < o.Length; j++) o[j] = stored(o[j]);
            T[] dq = new T[o.Length], dk = new T[o.Length], dv = new T[o.Length], dc = new T[i[3].Length];
            LsClsAttention.Backward(G, i[0], i[1], i[2], i[3], mask, o, lse, i[Masked ? 5 : 4], dq, dk, dv, dc, false);
            return [dq, dk, dv, dc];
        }
    }
}
