using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The bidirectional attention's cases (see Conformance/OpCases). Useful FLOPs: per query, q·k and p·v over the
// window's 2e + w keys and the r landmarks, 4·B·H·n·(2e + w + r)·d forward, 2.5x that backward (bench/README.md).
public static partial class LsAttention
{
    static string F(string method) => $"{nameof(LsAttention)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt) => new[]
    {
        (2, 2, 37, 32, 8, 5, true),    // n not a multiple of w, padding
        (1, 1, 20, 64, 1, 3, false),   // w = 1: left neighbour, self, right neighbour
        (1, 3, 64, 128, 16, 8, true),
        (3, 1, 50, 32, 64, 2, true),   // one segment longer than the sequence
        (1, 2, 300, 96, 128, 70, true), // two landmark tiles, two query blocks per segment, a short last segment
        (1, 1, 1100, 64, 64, 3, true), // two query groups of 550 in the landmark gradients (two-stage sum)
        (1, 2, 40, 16, 8, 4, true),    // head dims 16, 48, 80, 112 on the tensor cores (bf16)
        (2, 1, 33, 48, 16, 3, false),
        (1, 1, 70, 80, 32, 5, true),
        (1, 1, 24, 112, 8, 2, false),
        (1, 2, 30, 40, 8, 3, true),    // head dims off the tensor cores: bf16 on the CUDA-core kernel
        (1, 1, 20, 200, 4, 2, false),
        (1, 1, 12, 256, 4, 2, true),
        (1, 2, 400, 64, 192, 8, true), // w > 64 takes the wide (128-query) blocks: two a segment, the second with 64 queries
        (2, 1, 150, 32, 96, 5, false), // a wide block of 96 queries (two warps without any)
        (1, 2, 256, 64, 128, 64, false), // the bench's structure unpadded: whole wide blocks, one full landmark tile (the sm_90a kernels' shape)
    }.SelectMany(s => CasesAt(dt, s.Item1, s.Item2, s.Item3, s.Item4, s.Item5, s.Item6, s.Item7))
    // q, o, dout, dq token-major [B, n, H·d] (the layer's layout; ops ls_attention_tokens*, so the bench times them as a family
    // of their own): tensor-core head dims, several heads, padding, a short last segment, two query blocks per segment; and
    // the CUDA-core kernels (bf16 d40; fp32 at every shape).
    .Concat(new[]
    {
        (2, 2, 37, 32, 8, 5, true),
        (1, 3, 64, 128, 16, 8, true),
        (2, 4, 150, 64, 128, 9, true),
        (1, 2, 384, 64, 128, 64, false),
        (1, 2, 40, 16, 8, 4, false),
        (1, 2, 30, 40, 8, 3, true),
    }.SelectMany(s => CasesAt(dt, s.Item1, s.Item2, s.Item3, s.Item4, s.Item5, s.Item6, s.Item7, tokenMajor: true)));

    internal static IEnumerable<OpCase> PerfCases(KernelShape k, DType dt) =>
        CasesAt(dt, k.Batch, k.Heads, k.N, k.HeadDim, k.Window, k.Rank, false).Concat(CasesAt(dt, k.Batch, k.Heads, k.N, k.HeadDim, k.Window, k.Rank, false, tokenMajor: true));

    static IEnumerable<OpCase> CasesAt(DType dt, int B, int H, int n, int d, int w, int r, bool masked, bool tokenMajor = false)
    {
        var f = DType.Float32;
        var cfg = new LsAttentionConfig(w, r);
        var shape = $"B{B} H{H} n{n} d{d} w{w} r{r}{(masked ? " masked" : "")}";
        var op = tokenMajor ? "ls_attention_tokens" : "ls_attention";
        var geo = new LsAttentionGeometry(B, H, n, d, w, r, cfg.Extension, 1f / MathF.Sqrt(d), tokenMajor);
        double s = dt.Size(), bhnd = (double)B * H * n * d, bhrd = (double)B * H * r * d, bhn = (double)B * H * n;
        var flops = 4 * bhn * (2 * cfg.Extension + w + r) * d;
        int[] qs = tokenMajor ? [B, n, H * d] : [B, H, n, d];
        InputSpec[] ins =
        [
            In("q", dt, 1, qs), In("k", dt, 1, B, H, n, d), In("v", dt, 1, B, H, n, d),
            In("kbar", dt, 1, B, H, r, d), In("vbar", dt, 1, B, H, r, d), .. masked ? new[] { PaddingMask(B, n) } : [],
        ];
        yield return Make(F(nameof(Forward)), op, dt, shape, ins, [Out("o", dt, qs), Out("lse", f, B, H, n)],
            (be, i, o) => Forward(be, cfg, i[0], i[1], i[2], i[3], i[4], masked ? i[5] : null, o[0], o[1]),
            new LsAttentionRef(geo, masked, false), flops, s * (4 * bhnd + 2 * bhrd) + 4 * bhn);
        // The output and log-sum-exp the backward reads come from a forward in the untimed setup.
        yield return Timed(F(nameof(Backward)), op + "_backward", dt, shape, [.. ins, In("dout", dt, 1, qs)],
            [Out("dq", dt, qs), Out("dk", dt, B, H, n, d), Out("dv", dt, B, H, n, d), Out("dkbar", dt, B, H, r, d), Out("dvbar", dt, B, H, r, d)],
            (be, i, o) =>
            {
                var mask = masked ? i[5] : null;
                var (att, lse) = (be.Empty(i[0].Shape, dt), be.Empty(new Shape(B, H, n), f));
                Forward(be, cfg, i[0], i[1], i[2], i[3], i[4], mask, att, lse);
                var dout = i[masked ? 6 : 5];
                return () => Backward(be, cfg, i[0], i[1], i[2], i[3], i[4], mask, att, lse, dout, o[0], o[1], o[2], o[3], o[4]);
            }, new LsAttentionRef(geo, masked, true), 2.5 * flops, s * (8 * bhnd + 4 * bhrd) + 4 * bhn);
    }

    sealed record LsAttentionRef(LsAttentionGeometry G, bool Masked, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var mask = Masked ? i[5] : [];
            T[] o = new T[i[0].Length], lse = new T[G.B * G.H * G.N];
            LsAttention.Forward(G, i[0], i[1], i[2], i[3], i[4], mask, o, lse);
            if (!Backward) return [o, lse];
            for (var j = 0; j < o.Length; j++) o[j] = stored(o[j]); // the backward reads O as the forward stored it
            T[] dq = new T[o.Length], dk = new T[i[1].Length], dv = new T[i[1].Length], dkb = new T[i[3].Length], dvb = new T[i[3].Length];
            LsAttention.Backward(G, i[0], i[1], i[2], i[3], i[4], mask, o, lse, i[Masked ? 6 : 5], dq, dk, dv, dkb, dvb);
            return [dq, dk, dv, dkb, dvb];
        }
    }
}
