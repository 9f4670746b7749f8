using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The dynamic projection's cases (see Conformance/OpCases). Useful FLOPs: K̄ = P·K and V̄ = P·V with P [r, n] per
// head, 4·B·H·r·d·n forward, 2x that backward; the column softmax is not counted (bench/README.md).
public static partial class LsProjection
{
    static string F(string method) => $"{nameof(LsProjection)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt) => new[]
    {
        (2, 2, 45, 32, 4, true), (1, 1, 70, 64, 1, false), (1, 3, 33, 128, 8, true),
        (1, 1, 40, 128, 254, true),  // ranks in 4 output tiles of 64
        (1, 2, 1100, 16, 3, true),   // three token groups of 367 (the two-stage sums), tiles across group ends
        (1, 2, 600, 80, 70, false),  // bf16 tensor cores at d 80: rank tiles of 32 (backward) and 64 (compress), two groups
        (2, 1, 50, 24, 5, false),    // d 24: the CUDA-core path in bf16 too
    }.SelectMany(s => CasesAt(dt, s.Item1, s.Item2, s.Item3, s.Item4, s.Item5, s.Item6, 2))
        // Without the forward's unrounded landmarks: the backward's two passes (Σ P·dP summed over the sequence first).
        .Concat(new[] { (2, 2, 45, 32, 4, true), (1, 2, 600, 80, 70, false) }
            .SelectMany(s => CasesAt(dt, s.Item1, s.Item2, s.Item3, s.Item4, s.Item5, s.Item6, 2, landmarks: false).Skip(1)));

    internal static IEnumerable<OpCase> PerfCases(KernelShape k, DType dt) => CasesAt(dt, k.Batch, k.Heads, k.N, k.HeadDim, k.Rank, false, 1);

    static IEnumerable<OpCase> CasesAt(DType dt, int B, int H, int n, int d, int r, bool masked, double scoreScale, bool landmarks = true)
    {
        var f = DType.Float32;
        var shape = $"B{B} H{H} n{n} d{d} r{r}{(masked ? " masked" : "")}{(landmarks ? "" : " two-pass")}";
        var geo = new LsProjectionGeometry(B, H, n, d, r);
        double s = dt.Size(), scores = (double)B * n * H * r, bhnd = (double)B * H * n * d, bhrd = (double)B * H * r * d, stats = 8.0 * B * H * r;
        InputSpec[] ins = [In("scores", dt, scoreScale, B, n, H * r), In("k", dt, 1, B, H, n, d), In("v", dt, 1, B, H, n, d), .. masked ? new[] { PaddingMask(B, n) } : []];
        Tensor? Mask(Tensor[] i) => masked ? i[3] : null;
        yield return Timed(F(nameof(Forward)), "ls_projection", dt, shape, ins, [Out("kbar", dt, B, H, r, d), Out("vbar", dt, B, H, r, d)],
            (be, i, o) =>
            {
                var (cm, cs, lm) = (be.Empty(new Shape(B, H * r), f), be.Empty(new Shape(B, H * r), f), be.Empty(new Shape(2, B, H, r, d), f));
                return () => Forward(be, i[0], i[1], i[2], Mask(i), o[0], o[1], cm, cs, lm);
            }, new LsProjectionRef(geo, masked, false), 4 * bhrd * n, s * (scores + 2 * bhnd + 2 * bhrd) + stats);
        // The column statistics the backward reads come from a forward in the untimed setup.
        yield return Timed(F(nameof(Backward)), "ls_projection_backward", dt, shape, [.. ins, In("dkbar", dt, 1, B, H, r, d), In("dvbar", dt, 1, B, H, r, d)],
            [Out("dscores", dt, B, n, H * r), Out("dk", dt, B, H, n, d), Out("dv", dt, B, H, n, d)],
            (be, i, o) =>
            {
                var at = masked ? 4 : 3;
                var (cm, cs) = (be.Empty(new Shape(B, H * r), f), be.Empty(new Shape(B, H * r), f));
                var (kb, vb) = (be.Empty(new Shape(B, H, r, d), dt), be.Empty(new Shape(B, H, r, d), dt));
                var lm = landmarks ? be.Empty(new Shape(2, B, H, r, d), f) : null;
                Forward(be, i[0], i[1], i[2], Mask(i), kb, vb, cm, cs, lm);
                return () => Backward(be, i[0], i[1], i[2], Mask(i), cm, cs, i[at], i[at + 1], o[0], o[1], o[2], landmarks32: lm);
            }, new LsProjectionRef(geo, masked, true), 8 * bhrd * n, s * (2 * scores + 4 * bhnd + 2 * bhrd) + stats);
    }

    sealed record LsProjectionRef(LsProjectionGeometry G, bool Masked, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var mask = Masked ? i[3] : [];
            if (!Backward)
            {
                T[] kb = new T[G.B * G.H * G.R * G.D], vb = new T[kb.Length];
                LsProjection.Forward(G, i[0], i[1], i[2], mask, kb, vb);
                return [kb, vb];
            }
            var at = Masked ? 4 : 3;
            T[] ds = new T[i[0].Length], dk = new T[i[1].Length], dv = new T[i[2].Length];
            LsProjection.Backward(G, i[0], i[1], i[2], mask, i[at], i[at + 1], ds, dk, dv);
            return [ds, dk, dv];
        }
    }
}
