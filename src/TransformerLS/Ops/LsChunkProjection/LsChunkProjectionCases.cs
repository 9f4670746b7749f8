using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The chunked projection's cases (see Conformance/OpCases); perf mode the memory + block keys of the enwik8 shape
// (T = M + L). Useful FLOPs: r rows of P·x per chunk of l tokens, 2·B·H·T·r·d forward, 2x backward.
public static partial class LsChunkProjection
{
    static string F(string method) => $"{nameof(LsChunkProjection)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt) => new[] { (2, 2, 37, 32, 2, 4, true), (1, 1, 16, 64, 1, 16, false), (1, 3, 50, 128, 3, 7, true), (2, 1, 9, 32, 1, 1, false), (1, 2, 100, 32, 2, 40, true) }
        .SelectMany(s => CasesAt(dt, s.Item1, s.Item2, s.Item3, s.Item4, s.Item5, s.Item6, s.Item7, 2));

    internal static IEnumerable<OpCase> PerfCases(KernelShape k, DType dt) => CasesAt(dt, Math.Max(1, k.Tokens / k.CausalLength), k.Heads,
        k.CausalMemory + k.CausalLength, k.HeadDim, k.CausalRank, k.ChunkLength, false, 1);

    static IEnumerable<OpCase> CasesAt(DType dt, int B, int H, int T, int d, int r, int l, bool masked, double scoreScale)
    {
        var g = new LsChunkProjectionGeometry(B, H, T, d, r, l);
        var shape = $"B{B} H{H} T{T} d{d} r{r} l{l}{(masked ? " masked" : "")}";
        double s = dt.Size(), sc = (double)B * T * H * r, x = (double)B * H * T * d, y = (double)B * H * g.Chunks * r * d, flops = 2.0 * B * H * T * r * d;
        InputSpec[] ins = [In("scores", dt, scoreScale, B, T, H * r), In("x", dt, 1, B, H, T, d), .. masked ? new[] { PaddingMask(B, T) } : []];
        yield return Make(F(nameof(Forward)), "ls_chunk_projection", dt, shape, ins, [Out("y", dt, B, H, g.Chunks * r, d)],
            (be, i, o) => Forward(be, l, i[0], i[1], masked ? i[2] : null, o[0]), new LsChunkProjectionRef(g, masked, false), flops, s * (sc + x + y));
        yield return Make(F(nameof(Backward)), "ls_chunk_projection_backward", dt, shape, [.. ins, In("dy", dt, 1, B, H, g.Chunks * r, d)],
            [Out("dscores", dt, B, T, H * r), Out("dx", dt, B, H, T, d)],
            (be, i, o) => Backward(be, l, i[0], i[1], masked ? i[2] : null, i[masked ? 3 : 2], o[0], o[1]),
            new LsChunkProjectionRef(g, masked, true), 2 * flops, s * (2 * sc + 2 * x + y));
    }

    sealed record LsChunkProjectionRef(LsChunkProjectionGeometry G, bool Masked, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var mask = Masked ? i[2] : [];
            if (!Backward)
            {
                var y = new T[G.B * G.H * G.Chunks * G.R * G.D];
                LsChunkProjection.Forward(G, i[0], i[1], mask, y);
                return [y];
            }
            T[] ds = new T[i[0].Length], dx = new T[i[1].Length];
            LsChunkProjection.Backward(G, i[0], i[1], mask, i[Masked ? 3 : 2], ds, dx, false);
            return [ds, dx];
        }
    }
}
