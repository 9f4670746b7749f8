using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// DualLN's cases (see Conformance/OpCases): token-major and head-split inputs, K alone or K and V; perf mode the
// window keys and values of the bench, token-major in, head-split out (bandwidth-bound: bytes only).
public static partial class DualLayerNorm
{
    static string F(string method) => $"{nameof(DualLayerNorm)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt) => new[] { (2, 4, 5, 16, true, true), (1, 3, 7, 32, false, false), (3, 2, 1, 8, true, false), (2, 8, 40, 64, true, true), (1, 6, 300, 48, false, true), (2, 2, 9, 12, true, true) }
        .SelectMany(s => CasesAt(dt, s.Item1, s.Item2, s.Item3, s.Item4, s.Item5, s.Item6, 3));

    internal static IEnumerable<OpCase> PerfCases(KernelShape k, DType dt) => CasesAt(dt, k.Batch, k.Heads, k.N, k.HeadDim, true, true, 1);

    static IEnumerable<OpCase> CasesAt(DType dt, int B, int H, int T, int d, bool tokenMajor, bool both, double scale)
    {
        var f = DType.Float32;
        var shape = $"B{B} H{H} T{T} d{d} {(tokenMajor ? "token-major" : "head-split")}{(both ? " K+V" : "")}";
        var g = new DualLayerNormGeometry(both ? 2 : 1, B, H, T, d, tokenMajor);
        int[] xs = tokenMajor ? [B, T, H * d] : [B, H, T, d];
        double s = dt.Size(), x = (double)g.S * B * T * H * d, stats = 8.0 * g.S * B * T, D = H * d;
        InputSpec[] ins = [Case.In("xk", dt, scale, xs), .. both ? new[] { Case.In("xv", dt, 2, xs) } : [], Case.In("gamma", f, 1, H * d), Case.In("beta", f, 1, H * d)];
        var at = both ? 2 : 1;
        yield return Make(F(nameof(Forward)), "dual_layer_norm", dt, shape, ins,
            [Out("yk", dt, B, H, T, d), .. both ? new[] { Out("yv", dt, B, H, T, d) } : [], Out("mean", f, g.S, B, T), Out("rstd", f, g.S, B, T)],
            (be, i, o) => Forward(be, i[0], both ? i[1] : null, i[at], i[at + 1], o[0], both ? o[1] : null, o[at], o[at + 1], 1e-5f),
            new DualLayerNormRef(g, false), bytes: s * 2 * x + stats + 8 * D);
        // The statistics come from a forward in the untimed setup.
        yield return Timed(F(nameof(Backward)), "dual_layer_norm_backward", dt, shape, [.. ins, Case.In("dyk", dt, 1, B, H, T, d), .. both ? new[] { Case.In("dyv", dt, 1, B, H, T, d) } : []],
            [Out("dxk", dt, xs), .. both ? new[] { Out("dxv", dt, xs) } : [], Out("dgamma", f, H * d), Out("dbeta", f, H * d)],
            (be, i, o) =>
            {
                var (xv, dyv, dxv) = both ? (i[1], i[at + 3], o[1]) : (null, null, null);
                var yk = be.Empty(new Shape(B, H, T, d), dt);
                var yv = both ? be.Empty(new Shape(B, H, T, d), dt) : null;
                var (mean, rstd) = (be.Empty(new Shape(g.S, B, T), f), be.Empty(new Shape(g.S, B, T), f));
                Forward(be, i[0], xv, i[at], i[at + 1], yk, yv, mean, rstd, 1e-5f);
                return () => Backward(be, i[at + 2], dyv, i[0], xv, i[at], mean, rstd, o[0], dxv, o[at], o[at + 1]);
            }, new DualLayerNormRef(g, true), bytes: s * 3 * x + stats + 12 * D);
    }

    sealed record DualLayerNormRef(DualLayerNormGeometry G, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var at = G.S;
            var eps = T.CreateChecked(1e-5f);
            T[] mean = new T[G.S * G.Rows], rstd = new T[G.S * G.Rows];
            var ys = new List<T[]>();
            for (var s = 0; s < G.S; s++)
            {
                var y = new T[i[0].Length];
                DualLayerNorm.Forward(G, i[s], i[at], i[at + 1], y, mean.AsSpan(s * G.Rows, G.Rows), rstd.AsSpan(s * G.Rows, G.Rows), eps);
                ys.Add(y);
            }
            if (!Backward) return [.. ys, mean, rstd];
            T[] dg = new T[G.Channels], db = new T[G.Channels];
            var dxs = new List<T[]>();
            for (var s = 0; s < G.S; s++)
            {
                var dx = new T[i[0].Length];
                DualLayerNorm.Backward(G, i[at + 2 + s], i[s], i[at], mean.AsSpan(s * G.Rows, G.Rows), rstd.AsSpan(s * G.Rows, G.Rows), dx, dg, db);
                dxs.Add(dx);
            }
            return [.. dxs, dg, db];
        }
    }
}
