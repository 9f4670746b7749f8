using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Conformance;

/// <summary>The table's rows for the Long-Short attention families.</summary>
internal static partial class OpCases
{
    static void AddAttention(List<OpCase> list, DType dt)
    {
        var f = DType.Float32;
        foreach (var (B, H, n, d, w, r, masked) in new[]
        {
            (2, 2, 37, 32, 8, 5, true),    // n not a multiple of w, padding
            (1, 1, 20, 64, 1, 3, false),   // w = 1: left neighbour, self, right neighbour
            (1, 3, 64, 128, 16, 8, true),
            (3, 1, 50, 32, 64, 2, true),   // one segment longer than the sequence
            (1, 2, 300, 96, 128, 70, true), // two landmark tiles, two query blocks per segment, a short last segment
        })
        {
            var cfg = new LsAttentionConfig(w, r);
            var shape = $"B{B} H{H} n{n} d{d} w{w} r{r}{(masked ? " masked" : "")}";
            var geo = new LsAttentionGeometry(B, H, n, d, w, r, cfg.Extension, 1f / MathF.Sqrt(d));
            InputSpec[] ins =
            [
                In("q", dt, 1, B, H, n, d), In("k", dt, 1, B, H, n, d), In("v", dt, 1, B, H, n, d),
                In("kbar", dt, 1, B, H, r, d), In("vbar", dt, 1, B, H, r, d),
                .. masked ? new[] { new InputSpec("mask", new Shape(B, n), f, InputKind.PaddingMask) } : [],
            ];
            list.Add(Make("ls_attention", dt, shape, ins, [Out("o", dt, B, H, n, d), Out("lse", f, B, H, n)],
                (be, i, o) => LsAttention.Forward(be, cfg, i[0], i[1], i[2], i[3], i[4], masked ? i[5] : null, o[0], o[1]),
                new LsAttentionRef(geo, masked, false)));
            list.Add(Make("ls_attention_backward", dt, shape, [.. ins, In("dout", dt, 1, B, H, n, d)],
                [Out("dq", dt, B, H, n, d), Out("dk", dt, B, H, n, d), Out("dv", dt, B, H, n, d), Out("dkbar", dt, B, H, r, d), Out("dvbar", dt, B, H, r, d)],
                (be, i, o) => RunLsAttentionBackward(be, cfg, i, o, masked), new LsAttentionRef(geo, masked, true)));
        }

        foreach (var (B, H, n, d, r, masked) in new[]
        {
            (2, 2, 45, 32, 4, true), (1, 1, 70, 64, 1, false), (1, 3, 33, 128, 8, true),
            (1, 1, 40, 128, 254, true),  // ranks in 8 tiles of the backward's shared memory
        })
        {
            var shape = $"B{B} H{H} n{n} d{d} r{r}{(masked ? " masked" : "")}";
            var geo = new LsProjectionGeometry(B, H, n, d, r);
            InputSpec[] ins =
            [
                In("scores", dt, 2, B, n, H * r), In("k", dt, 1, B, H, n, d), In("v", dt, 1, B, H, n, d),
                .. masked ? new[] { new InputSpec("mask", new Shape(B, n), f, InputKind.PaddingMask) } : [],
            ];
            list.Add(Make("ls_projection", dt, shape, ins, [Out("kbar", dt, B, H, r, d), Out("vbar", dt, B, H, r, d)],
                (be, i, o) =>
                {
                    using var cm = be.Empty(new Shape(B, H * r), f);
                    using var cs = be.Empty(new Shape(B, H * r), f);
                    LsProjection.Forward(be, i[0], i[1], i[2], masked ? i[3] : null, o[0], o[1], cm, cs);
                }, new LsProjectionRef(geo, masked, false)));
            list.Add(Make("ls_projection_backward", dt, shape, [.. ins, In("dkbar", dt, 1, B, H, r, d), In("dvbar", dt, 1, B, H, r, d)],
                [Out("dscores", dt, B, n, H * r), Out("dk", dt, B, H, n, d), Out("dv", dt, B, H, n, d)],
                (be, i, o) =>
                {
                    var m = masked ? i[3] : null;
                    var at = masked ? 4 : 3;
                    using var cm = be.Empty(new Shape(B, H * r), f);
                    using var cs = be.Empty(new Shape(B, H * r), f);
                    using var kb = be.Empty(new Shape(B, H, r, d), dt);
                    using var vb = be.Empty(new Shape(B, H, r, d), dt);
                    LsProjection.Forward(be, i[0], i[1], i[2], m, kb, vb, cm, cs);
                    LsProjection.Backward(be, i[0], i[1], i[2], m, cm, cs, i[at], i[at + 1], o[0], o[1], o[2]);
                }, new LsProjectionRef(geo, masked, true)));
        }
    }

    static void AddCausal(List<OpCase> list, DType dt)
    {
        var f = DType.Float32;
        foreach (var (B, H, L, P, d, w, l, r, mc, masked) in new[]
        {
            (2, 2, 37, 5, 32, 8, 4, 2, 2, true),    // L not a multiple of l, a short window prefix, padding
            (1, 1, 20, 0, 64, 1, 1, 3, 0, false),   // w = 1 and l = 1, no cache
            (1, 3, 48, 16, 128, 16, 16, 1, 3, true),
            (3, 1, 24, 8, 32, 32, 8, 2, 1, false),  // the window is longer than the block
            (1, 2, 90, 8, 64, 8, 40, 2, 1, true),   // a chunk longer than the kernel's query tile
            (1, 2, 200, 70, 96, 100, 80, 3, 20, true), // several compressed and window tiles, two query blocks per chunk
        })
        {
            var cfg = new LsCausalConfig(w, l, r);
            var nc = (mc + (L + l - 1) / l) * r;
            var shape = $"B{B} H{H} L{L} P{P} d{d} w{w} l{l} r{r} Mc{mc}{(masked ? " masked" : "")}";
            var geo = new LsCausalGeometry(B, H, L, P, d, w, l, r, mc, 1f / MathF.Sqrt(d));
            InputSpec[] ins =
            [
                In("q", dt, 1, B, H, L, d), In("k", dt, 1, B, H, P + L, d), In("v", dt, 1, B, H, P + L, d),
                In("u", dt, 0.1, H, d), In("vbias", dt, 0.1, H, d), In("rel", dt, 1, H, w, d),
                In("kc", dt, 1, B, H, nc, d), In("vc", dt, 1, B, H, nc, d), In("relc", dt, 1, H, nc, d),
                .. masked ? new[] { new InputSpec("mask", new Shape(B, P + L), f, InputKind.PaddingMask) } : [],
            ];
            list.Add(Make("ls_causal_attention", dt, shape, ins, [Out("o", dt, B, H, L, d), Out("lse", f, B, H, L)],
                (be, i, o) => LsCausalAttention.Forward(be, cfg, CausalInputs(i, masked), o[0], o[1]), new LsCausalRef(geo, masked, false)));
            list.Add(Make("ls_causal_attention_backward", dt, shape, [.. ins, In("dout", dt, 1, B, H, L, d)],
                [Out("dq", dt, B, H, L, d), Out("dk", dt, B, H, P + L, d), Out("dv", dt, B, H, P + L, d), Out("du", dt, H, d), Out("dvbias", dt, H, d),
                 Out("drel", dt, H, w, d), Out("dkc", dt, B, H, nc, d), Out("dvc", dt, B, H, nc, d), Out("drelc", dt, H, nc, d)],
                (be, i, o) =>
                {
                    var x = CausalInputs(i, masked);
                    using var att = be.Empty(i[0].Shape, dt);
                    using var lse = be.Empty(new Shape(B, H, L), f);
                    LsCausalAttention.Forward(be, cfg, x, att, lse);
                    LsCausalAttention.Backward(be, cfg, x, att, lse, i[masked ? 10 : 9], new LsCausalGradients(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8]));
                }, new LsCausalRef(geo, masked, true)));
        }
    }

    static void AddChunkProjection(List<OpCase> list, DType dt)
    {
        foreach (var (B, H, T, d, r, l, masked) in new[] { (2, 2, 37, 32, 2, 4, true), (1, 1, 16, 64, 1, 16, false), (1, 3, 50, 128, 3, 7, true), (2, 1, 9, 32, 1, 1, false) })
        {
            var g = new LsChunkProjectionGeometry(B, H, T, d, r, l);
            var shape = $"B{B} H{H} T{T} d{d} r{r} l{l}{(masked ? " masked" : "")}";
            InputSpec[] ins =
            [
                In("scores", dt, 2, B, T, H * r), In("x", dt, 1, B, H, T, d),
                .. masked ? new[] { new InputSpec("mask", new Shape(B, T), DType.Float32, InputKind.PaddingMask) } : [],
            ];
            list.Add(Make("ls_chunk_projection", dt, shape, ins, [Out("y", dt, B, H, g.Chunks * r, d)],
                (be, i, o) => LsChunkProjection.Forward(be, l, i[0], i[1], masked ? i[2] : null, o[0]), new LsChunkProjectionRef(g, masked, false)));
            list.Add(Make("ls_chunk_projection_backward", dt, shape, [.. ins, In("dy", dt, 1, B, H, g.Chunks * r, d)],
                [Out("dscores", dt, B, T, H * r), Out("dx", dt, B, H, T, d)],
                (be, i, o) => LsChunkProjection.Backward(be, l, i[0], i[1], masked ? i[2] : null, i[masked ? 3 : 2], o[0], o[1]),
                new LsChunkProjectionRef(g, masked, true)));
        }
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

    static void AddLayoutAndDualLayerNorm(List<OpCase> list, DType dt)
    {
        var f = DType.Float32;
        list.Add(Make("swap_axes12", dt, "[2,5,3,7]", [In("x", dt, 1, 2, 5, 3, 7)], [Out("y", dt, 2, 3, 5, 7)],
            (be, i, o) => Layout.SwapAxes12(be, i[0], o[0]), new SwapRef(2, 5, 3, 7)));
        var slice = new SliceGeometry(2, 4, 3, 7, 1, 2, 2);
        list.Add(Make("copy_slice", dt, "[2,3,4][1:3] += into [2,7,4][2:4]", [In("src", dt, 1, 2, 3, 4), In("base", dt, 1, 2, 7, 4)], [Out("dst", dt, 2, 7, 4)],
            (be, i, o) =>
            {
                Layout.CopySlice(be, i[1], 0, o[0], 0, 1, 7);
                Layout.CopySlice(be, i[0], 1, o[0], 2, 1, 2, accumulate: true);
            }, new SliceRef(slice)));
        foreach (var (B, H, T, d, tokenMajor, both) in new[] { (2, 4, 5, 16, true, true), (1, 3, 7, 32, false, false), (3, 2, 1, 8, true, false) })
        {
            var shape = $"B{B} H{H} T{T} d{d} {(tokenMajor ? "token-major" : "head-split")}{(both ? " K+V" : "")}";
            var g = new DualLayerNormGeometry(both ? 2 : 1, B, H, T, d, tokenMajor);
            int[] xs = tokenMajor ? [B, T, H * d] : [B, H, T, d];
            InputSpec[] ins = [In("xk", dt, 3, xs), .. both ? new[] { In("xv", dt, 2, xs) } : [], In("gamma", f, 1, H * d), In("beta", f, 1, H * d)];
            var at = both ? 2 : 1;
            list.Add(Make("dual_layernorm", dt, shape, ins,
                [Out("yk", dt, B, H, T, d), .. both ? new[] { Out("yv", dt, B, H, T, d) } : [], Out("mean", f, g.S, B, T), Out("rstd", f, g.S, B, T)],
                (be, i, o) => DualLayerNorm.Forward(be, i[0], both ? i[1] : null, i[at], i[at + 1], o[0], both ? o[1] : null, o[at], o[at + 1], 1e-5f),
                new DualLayerNormRef(g, false)));
            list.Add(Make("dual_layernorm_backward", dt, shape, [.. ins, In("dyk", dt, 1, B, H, T, d), .. both ? new[] { In("dyv", dt, 1, B, H, T, d) } : []],
                [Out("dxk", dt, xs), .. both ? new[] { Out("dxv", dt, xs) } : [], Out("dgamma", f, H * d), Out("dbeta", f, H * d)],
                (be, i, o) =>
                {
                    var (xv, dyv, dxv) = both ? (i[1], i[at + 3], o[1]) : (null, null, null);
                    using var yk = be.Empty(new Shape(B, H, T, d), dt);
                    using var yv = both ? be.Empty(new Shape(B, H, T, d), dt) : null;
                    using var mean = be.Empty(new Shape(g.S, B, T), f);
                    using var rstd = be.Empty(new Shape(g.S, B, T), f);
                    DualLayerNorm.Forward(be, i[0], xv, i[at], i[at + 1], yk, yv, mean, rstd, 1e-5f);
                    DualLayerNorm.Backward(be, i[at + 2], dyv, i[0], xv, i[at], mean, rstd, o[0], dxv, o[at], o[at + 1]);
                }, new DualLayerNormRef(g, true)));
        }
    }

    sealed record SwapRef(int A, int B, int C, int D) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = new T[i[0].Length];
            Layout.SwapAxes12(A, B, C, D, i[0], y);
            return [y];
        }
    }

    sealed record SliceRef(SliceGeometry G) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var y = (T[])i[1].Clone();
            Layout.CopySlice(G, i[0], y, true);
            return [y];
        }
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

    static void AddCls(List<OpCase> list, DType dt)
    {
        foreach (var (B, H, n, d, masked) in new[] { (2, 2, 37, 32, true), (1, 1, 300, 64, false), (1, 3, 5, 128, true), (2, 1, 1, 48, false) })
        {
            var g = new LsClsGeometry(B, H, n, d, 1f / MathF.Sqrt(d));
            var shape = $"B{B} H{H} n{n} d{d}{(masked ? " masked" : "")}";
            InputSpec[] ins =
            [
                In("q", dt, 1, B, H, d), In("k", dt, 1, B, H, d), In("v", dt, 1, B, H, d), In("c", dt, 1, B, H, n, d),
                .. masked ? new[] { new InputSpec("mask", new Shape(B, n), DType.Float32, InputKind.PaddingMask) } : [],
            ];
            list.Add(Make("ls_cls_attention", dt, shape, ins, [Out("o", dt, B, H, d), Out("lse", DType.Float32, B, H)],
                (be, i, o) => LsClsAttention.Forward(be, i[0], i[1], i[2], i[3], masked ? i[4] : null, o[0], o[1]), new LsClsRef(g, masked, false)));
            list.Add(Make("ls_cls_attention_backward", dt, shape, [.. ins, In("dout", dt, 1, B, H, d)],
                [Out("dq", dt, B, H, d), Out("dk", dt, B, H, d), Out("dv", dt, B, H, d), Out("dc", dt, B, H, n, d)],
                (be, i, o) =>
                {
                    var mask = masked ? i[4] : null;
                    using var att = be.Empty(new Shape(B, H, d), dt);
                    using var lse = be.Empty(new Shape(B, H), DType.Float32);
                    LsClsAttention.Forward(be, i[0], i[1], i[2], i[3], mask, att, lse);
                    LsClsAttention.Backward(be, i[0], i[1], i[2], i[3], mask, att, lse, i[masked ? 5 : 4], o[0], o[1], o[2], o[3]);
                }, new LsClsRef(g, masked, true)));
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

    static LsCausalInputs CausalInputs(Tensor[] i, bool masked) => new(i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], i[8], masked ? i[9] : null);

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

    static void RunLsAttentionBackward(IBackend be, LsAttentionConfig cfg, Tensor[] i, Tensor[] o, bool masked)
    {
        var mask = masked ? i[5] : null;
        var dout = i[masked ? 6 : 5];
        using var att = be.Empty(i[0].Shape, i[0].DType);
        using var lse = be.Empty(new Shape(i[0].Shape[0], i[0].Shape[1], i[0].Shape[2]), DType.Float32);
        LsAttention.Forward(be, cfg, i[0], i[1], i[2], i[3], i[4], mask, att, lse);
        LsAttention.Backward(be, cfg, i[0], i[1], i[2], i[3], i[4], mask, att, lse, dout, o[0], o[1], o[2], o[3], o[4]);
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
            T[] dq = new T[o.Length], dk = new T[o.Length], dv = new T[o.Length], dkb = new T[i[3].Length], dvb = new T[i[3].Length];
            LsAttention.Backward(G, i[0], i[1], i[2], i[3], i[4], mask, o, lse, i[Masked ? 6 : 5], dq, dk, dv, dkb, dvb);
            return [dq, dk, dv, dkb, dvb];
        }
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
