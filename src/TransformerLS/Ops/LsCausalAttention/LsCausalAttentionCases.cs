using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The causal attention's cases (see Conformance/OpCases). Useful FLOPs per query: q·k, q·R and p·v over the w band
// keys, q·k̄ (+ its relative term) and p·v̄ over the visible compressed keys: B·H·L·d·(6·w + 4·c̄) forward, 2.5x
// backward, c̄ = (Mc + (L/l − 1)/2)·r on average (bench/README.md).
public static partial class LsCausalAttention
{
    static string F(string method) => $"{nameof(LsCausalAttention)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt) => new[]
    {
        (2, 2, 37, 5, 32, 8, 4, 2, 2, true),    // L not a multiple of l, a short window prefix, padding
        (1, 1, 20, 0, 64, 1, 1, 3, 0, false),   // w = 1 and l = 1, no cache
        (1, 3, 48, 16, 128, 16, 16, 1, 3, true),
        (3, 1, 24, 8, 32, 32, 8, 2, 1, false),  // the window is longer than the block
        (1, 2, 90, 8, 64, 8, 40, 2, 1, true),   // a chunk longer than the kernel's query tile
        (1, 2, 200, 70, 96, 100, 80, 3, 20, true), // several compressed and window tiles, two query blocks per chunk
        (1, 2, 20, 3, 16, 4, 4, 1, 1, true),    // head dims 16, 48, 80, 112 on the tensor cores (bf16)
        (1, 1, 24, 4, 48, 8, 4, 2, 1, false),
        (1, 1, 18, 2, 80, 4, 8, 1, 1, true),
        (1, 1, 16, 2, 112, 4, 4, 1, 1, false),
        (1, 2, 20, 3, 40, 4, 4, 1, 2, true),    // head dims off the tensor cores: bf16 on the CUDA-core kernel
        (1, 1, 12, 2, 144, 4, 4, 1, 1, false),
        (1, 2, 100, 20, 64, 24, 16, 3, 2, true),   // bf16 blocks spanning 4 chunks (l 16), the last one short and partial
        (2, 1, 96, 8, 32, 16, 32, 2, 3, false),    // 2 chunks a block (l 32), the last block one chunk
        (1, 1, 64, 4, 16, 8, 16, 22, 1, false),    // r 22 leaves room for 3 chunks a block, not 4
        (1, 2, 37, 5, 8, 6, 1, 3, 2, true),        // CUDA-core backward: l 1, r 3 (compressed query tiles cut by their ncmp spread)
        (2, 1, 50, 3, 12, 7, 3, 33, 1, true),      // r 33 > the query tile: every compressed tile inside one chunk
        (1, 1, 4200, 3, 8, 40, 64, 1, 1, true),    // two query groups in the rel pass (4096 queries a group)
    }.SelectMany(s => CasesAt(dt, s.Item1, s.Item2, s.Item3, s.Item4, s.Item5, s.Item6, s.Item7, s.Item8, s.Item9, s.Item10));

    /// <summary>The enwik8 phase-1 shape: the block of L after a memory of M (w − 1 of it in the band's prefix, M/l chunks compressed).</summary>
    internal static IEnumerable<OpCase> PerfCases(KernelShape k, DType dt) => CasesAt(dt, Math.Max(1, k.Tokens / k.CausalLength), k.Heads, k.CausalLength,
        k.CausalWindow - 1, k.HeadDim, k.CausalWindow, k.ChunkLength, k.CausalRank, k.CausalMemory / k.ChunkLength, false);

    static IEnumerable<OpCase> CasesAt(DType dt, int B, int H, int L, int P, int d, int w, int l, int r, int mc, bool masked)
    {
        var f = DType.Float32;
        var cfg = new LsCausalConfig(w, l, r);
        var nc = (mc + (L + l - 1) / l) * r;
        var shape = $"B{B} H{H} L{L} P{P} d{d} w{w} l{l} r{r} Mc{mc}{(masked ? " masked" : "")}";
        var geo = new LsCausalGeometry(B, H, L, P, d, w, l, r, mc, 1f / MathF.Sqrt(d));
        double s = dt.Size(), compressed = (mc + (L / (double)l - 1) / 2) * r;
        var flops = (double)B * H * L * d * (6.0 * w + 4.0 * compressed);
        double inputs = (double)B * H * L * d + 2.0 * B * H * (P + L) * d + 2.0 * H * d + (double)H * w * d + 2.0 * B * H * nc * d + (double)H * nc * d;
        double outs = (double)B * H * L * d, lseBytes = 4.0 * B * H * L;
        InputSpec[] ins =
        [
            In("q", dt, 1, B, H, L, d), In("k", dt, 1, B, H, P + L, d), In("v", dt, 1, B, H, P + L, d),
            In("u", dt, 0.1, H, d), In("vbias", dt, 0.1, H, d), In("rel", dt, 1, H, w, d),
            In("kc", dt, 1, B, H, nc, d), In("vc", dt, 1, B, H, nc, d), In("relc", dt, 1, H, nc, d),
            .. masked ? new[] { PaddingMask(B, P + L) } : [],
        ];
        yield return Make(F(nameof(Forward)), "ls_causal_attention", dt, shape, ins, [Out("o", dt, B, H, L, d), Out("lse", f, B, H, L)],
            (be, i, o) => Forward(be, cfg, Inputs(i, masked), o[0], o[1]), new LsCausalRef(geo, masked, false), flops, s * (inputs + outs) + lseBytes);
        // The output and log-sum-exp the backward reads come from a forward in the untimed setup.
        yield return Timed(F(nameof(Backward)), "ls_causal_attention_backward", dt, shape, [.. ins, In("dout", dt, 1, B, H, L, d)],
            [Out("dq", dt, B, H, L, d), Out("dk", dt, B, H, P + L, d), Out("dv", dt, B, H, P + L, d), Out("du", dt, H, d), Out("dvbias", dt, H, d),
             Out("drel", dt, H, w, d), Out("dkc", dt, B, H, nc, d), Out("dvc", dt, B, H, nc, d), Out("drelc", dt, H, nc, d)],
            (be, i, o) =>
            {
                var x = Inputs(i, masked);
                var (att, lse) = (be.Empty(i[0].Shape, dt), be.Empty(new Shape(B, H, L), f));
                Forward(be, cfg, x, att, lse);
                var (dout, grads) = (i[masked ? 10 : 9], new LsCausalGradients(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8]));
                return () => Backward(be, cfg, x, att, lse, dout, grads);
            }, new LsCausalRef(geo, masked, true), 2.5 * flops, s * (2 * inputs + 2 * outs) + lseBytes);
    }

    static LsCausalInputs Inputs(Tensor[] i, bool masked) => new(i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], i[8], masked ? i[9] : null);

    sealed record LsCausalRef(LsCausalGeometry G, bool Masked, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var x = new LsCausalData<T>(i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], i[8], Masked ? i[9] : []);
            T[] o = new T[i[0].Length], lse = new T[G.B * G.H * G.L];
            LsCausalAttention.Forward(G, x, o, lse);
            if (!Backward) return [o, lse];
            for (var j = 0; j < o.Length; j++) o[j] = stored(o[j]);
            var g = new LsCausalData<T>(new T[i[0].Length], new T[i[1].Length], new T[i[2].Length], new T[i[3].Length], new T[i[4].Length],
                new T[i[5].Length], new T[i[6].Length], new T[i[7].Length], new T[i[8].Length], []);
            LsCausalAttention.Backward(G, x, o, lse, i[Masked ? 10 : 9], g);
            return [g.Q, g.K, g.V, g.U, g.VBias, g.Rel, g.KC, g.VC, g.RelC];
        }
    }
}
