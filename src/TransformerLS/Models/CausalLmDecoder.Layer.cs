using TransformerLS.Backends;
using TransformerLS.Layers;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Models;

public sealed partial class CausalLmDecoder
{
    /// <summary>One layer's parameters (by name), relative-position tables and caches.</summary>
    sealed class Layer : IDisposable
    {
        readonly CausalLmDecoder _d;
        readonly string _n;
        readonly float _eps;
        readonly List<Tensor> _owned = [];
        // Caches (see the class comment) and the zero-state rows Reset copies in.
        readonly Tensor _kw, _vw, _hbuf, _sbuf, _kraw, _vraw, _kring, _vring, _kblock, _vblock, _rel, _relc;
        readonly Tensor _kw0, _vw0, _kring0, _vring0;
        readonly Tensor _counters; // float32 [B·H] zeros: the decode attention's split counts (it leaves them zeroed)

        public Layer(CausalLmDecoder d, int index)
        {
            (_d, _n, _eps) = (d, $"layers.{index}.", d._model.Config.Attention.Eps);
            int B = d.B, H = d.H, Hd = d.Hd, W = d.W, l = d.Lc, D = d.D, R = d.R;
            (_kw, _vw) = (Own(B, H, W, Hd), Own(B, H, W, Hd));
            (_hbuf, _sbuf, _kraw, _vraw) = (Own(B, 1, l, D), Own(B, 1, l, H * R), Own(B, 1, l, D), Own(B, 1, l, D));
            (_kring, _vring) = (Own(B, H, d.C * R, Hd), Own(B, H, d.C * R, Hd));
            (_kblock, _vblock) = (Own(B, H, d.Lb * R, Hd), Own(B, H, d.Lb * R, Hd));
            (_kw0, _vw0, _kring0, _vring0) = (Own(1, H, W, Hd), Own(1, H, W, Hd), Own(1, H, d.C * R, Hd), Own(1, H, d.C * R, Hd));
            var nr = (d.Mc + d.Lb) * R;
            (_rel, _relc) = (Own(H, W, Hd), Own(H, nr, Hd));
            _counters = d._be.Empty(new Shape(B * H), DType.Float32);
            _owned.Add(_counters);
            d._be.Fill(_counters, 0f);
            using var scope = new TensorScope();
            RelTable(_rel, W, "attn.r_net", bias: false);
            RelTable(_relc, nr, "attn.r_net_chunk", bias: true);
            ZeroStates();
        }

        Tensor Own(params int[] dims)
        {
            var t = _d._be.Empty(new Shape(dims), _d._model.DType);
            _owned.Add(t);
            return t;
        }

        Tensor P(string name) => _d._model.Parameters[_n + name];
        Tensor New(params int[] dims) => _d.New(dims);

        // The functional layer's calls with this layer's parameters (outputs join the step's scope).
        Tensor Linear(Tensor x, string name, bool bias) => Functional.Linear(x, P(name + ".weight"), bias ? P(name + ".bias") : null);
        Tensor LayerNorm(Tensor x, string name) => Functional.LayerNorm(x, P(name + ".weight"), P(name + ".bias"));
        (Tensor K, Tensor V) DualLn(Tensor k, Tensor v, string name) => Functional.DualLayerNorm(k, v, P(name + ".weight"), P(name + ".bias"), _d.H, _eps);
        DecodeLinearNorm Norm(string name, Tensor normed) => new(P(name + ".weight"), P(name + ".bias"), 1e-5f, normed); // Functional.LayerNorm's eps, as Front
        Tensor Split(Tensor x) => Functional.SplitHeads(x, _d.H);
        Tensor Merge(Tensor x) => Functional.MergeHeads(x);

        /// <summary>table [H, count, d] = split heads of Linear(sinusoids of δ = 0 … count − 1).</summary>
        void RelTable(Tensor table, int count, string name, bool bias)
        {
            var sin = New(1, count, _d.D);
            sin.CopyFrom(AttentionParts.Sinusoids(count, _d.D));
            using var view = table.Reshape(1, _d.H, count, _d.Hd);
            var r = Linear(sin, name, bias);
            using var rv = r.Reshape(1, count, _d.H, _d.Hd);
            Layout.SwapAxes12(_d._be, rv, view);
        }

        /// <summary>
        /// Layer input x [b, 1, D] → h = LN1(x), raw keys/values, the window keys (after LN_W) and the projection scores.
        /// </summary>
        (Tensor H, Tensor KRaw, Tensor VRaw, Tensor K, Tensor V, Tensor S) Front(Tensor x)
        {
            var h = LayerNorm(x, "norm1");
            var (kraw, vraw) = (Linear(h, "attn.proj_key", false), Linear(h, "attn.proj_val", false));
            var (k, v) = DualLn(kraw, vraw, "attn.dual_ln_win");
            return (h, kraw, vraw, k, v, Linear(h, "attn.dconv_1", true));
        }

        /// <summary>The cache path of chunks of normed states hbuf [b, c·l, D] with scores sbuf: compress per head, then W_k / W_v, then LN_P.</summary>
        (Tensor K, Tensor V) CachePath(Tensor hbuf, Tensor sbuf)
        {
            var pc = New(hbuf.Shape[0], _d.H, hbuf.Shape[1] / _d.Lc * _d.R, _d.Hd);  // hbuf may hold several chunks (prefill)
            Ops.LsChunkProjection.Forward(_d._be, _d.Lc, sbuf, Split(hbuf), null, pc);
            var merged = Merge(pc);
            return DualLn(Linear(merged, "attn.proj_key", false), Linear(merged, "attn.proj_val", false), "attn.dual_ln_dproj");
        }

        /// <summary>The window keys and cache-path chunks of a zero layer input (the block forward's initial memory).</summary>
        void ZeroStates()
        {
            var be = _d._be;
            var x = New(1, 1, _d.D);
            be.Fill(x, 0f);
            var (h, _, _, k, v, s) = Front(x);
            var row = be.Empty(new Shape(1), DType.Float32);
            row.CopyFrom([0]);
            using var k4 = k.Reshape(1, _d.H, 1, _d.Hd);
            using var v4 = v.Reshape(1, _d.H, 1, _d.Hd);
            Layout.WriteRows(be, k4, row, _kw0);
            Layout.WriteRows(be, v4, row, _vw0);
            Repeat(_kw0, 1, _d.W);
            Repeat(_vw0, 1, _d.W);
            var (hbuf, sbuf) = (New(1, _d.Lc, _d.D), New(1, _d.Lc, _d.H * _d.R));
            using (var hb = hbuf.Reshape(1, 1, _d.Lc, _d.D))
            using (var sb = sbuf.Reshape(1, 1, _d.Lc, _d.H * _d.R))
            using (var h4 = h.Reshape(1, 1, 1, _d.D))
            using (var s4 = s.Reshape(1, 1, 1, _d.H * _d.R))
            {
                Layout.WriteRows(be, h4, row, hb);
                Layout.WriteRows(be, s4, row, sb);
                Repeat(hb, 1, _d.Lc);
                Repeat(sb, 1, _d.Lc);
            }
            var (kc, vc) = CachePath(hbuf, sbuf);
            Layout.WriteRows(be, kc, row, _kring0);
            Layout.WriteRows(be, vc, row, _vring0);
            Repeat(_kring0, _d.R, _d.C);
            Repeat(_vring0, _d.R, _d.C);
        }

        /// <summary>Copies t's first <paramref name="block"/> rows (axis 2) into blocks 1 … count − 1, doubling what is filled: log2(count) copies.</summary>
        void Repeat(Tensor t, int block, int count)
        {
            for (var have = 1; have < count; have *= 2)
                Layout.CopySlice(_d._be, t, 0, t, have * block, 2, Math.Min(have, count - have) * block);
        }

        /// <summary>
        /// Fills sequence b's caches from this layer's inputs x [1, n, D] (with b = −1 every sequence's, from x [B, n, D]) at positions T0 … T0 + n − 1 of one block (T0 a multiple
        /// of L): the window ring's last min(w, n) rows, the partial chunk's rows, and the block's completed chunks both ways
        /// (block path into the block chunks, cache path into the ring), as the steps over those positions would have left them.
        /// </summary>
        public void Fill(int b, Tensor x, int T0, int n)
        {
            var (be, D, H, Hd, l, R, W, C) = (_d._be, _d.D, _d.H, _d.Hd, _d.Lc, _d.R, _d.W, _d.C);
            var bx = x.Shape[0];
            var (h, kraw, vraw, k, v, s) = Front(x);
            for (var first = Math.Max(0, n - W); first < n;)
            {
                var (slot, len) = ((T0 + first) % W, Math.Min(W - (T0 + first) % W, n - first));
                Put(k, first, len, _kw, b, slot);
                Put(v, first, len, _vw, b, slot);
                first += len;
            }
            using var h4 = h.Reshape(bx, 1, n, D);
            using var s4 = s.Reshape(bx, 1, n, H * R);
            using var k4 = kraw.Reshape(bx, 1, n, D);
            using var v4 = vraw.Reshape(bx, 1, n, D);
            var (done, partial) = (n / l * l, n % l);
            if (partial > 0)
                foreach (var (src, dst) in new[] { (h4, _hbuf), (s4, _sbuf), (k4, _kraw), (v4, _vraw) }) Put(src, done, partial, dst, b, 0);
            if (done == 0) return;
            var (hs, ss, ks, vs) = (New(bx, done, D), New(bx, done, H * R), New(bx, done, D), New(bx, done, D));
            foreach (var (src, dst) in new[] { (h, hs), (s, ss), (kraw, ks), (vraw, vs) }) Layout.CopySlice(be, src, 0, dst, 0, 1, done);
            var nc = done / l;
            var (kb, vb) = (New(bx, H, nc * R, Hd), New(bx, H, nc * R, Hd));
            Ops.LsChunkProjection.Forward(be, l, ss, Split(ks), null, kb);
            Ops.LsChunkProjection.Forward(be, l, ss, Split(vs), null, vb);
            var (kbn, vbn) = DualLn(kb, vb, "attn.dual_ln_dproj");
            Put(kbn, 0, nc * R, _kblock, b, 0);
            Put(vbn, 0, nc * R, _vblock, b, 0);
            var (kc, vc) = CachePath(hs, ss);
            for (var a = 0; a < nc;)
            {
                var (slot, len) = ((T0 / l + a) % C, Math.Min(C - (T0 / l + a) % C, nc - a));
                Put(kc, a * R, len * R, _kring, b, slot * R);
                Put(vc, a * R, len * R, _vring, b, slot * R);
                a += len;
            }
        }

        /// <summary>
        /// Rows srcRow … srcRow + count − 1 (axis 2) of src [1, X, n, Y] into sequence b's rows dstRow … of dst [B, X, cap, Y]; with
        /// b = −1, of src [B, X, n, Y] into every sequence's rows dstRow ….
        /// </summary>
        void Put(Tensor src, int srcRow, int count, Tensor dst, int b, int dstRow)
        {
            var be = _d._be;
            if (be is CudaBackend)
            {
                // One copy kernel, nothing from the host (a host-to-device copy waits for the stream: it would drain the
                // GPU once a Put, some ten times a layer in a prefill): with b >= 0, into a view of sequence b's block of dst.
                if (b < 0) { Layout.CopySlice(be, src, srcRow, dst, dstRow, 2, count); return; }
                var block = dst.Count / dst.Shape[0];
                using var mine = new Tensor(be, new Shape(1, dst.Shape[1], dst.Shape[2], dst.Shape[3]), dst.DType, null,
                    dst.DevicePointer + (ulong)(b * block * dst.DType.Size()), owns: false);
                Layout.CopySlice(be, src, srcRow, mine, dstRow, 2, count);
                return;
            }
            var one = New(src.Shape[0], src.Shape[1], count, src.Shape[3]);
            Layout.CopySlice(be, src, srcRow, one, 0, 2, count);
            var all = one;
            if (b >= 0)
            {
                all = New(_d.B, src.Shape[1], count, src.Shape[3]);
                Layout.CopySlice(be, one, 0, all, b, 0, 1);
            }
            var at = new float[_d.B];
            Array.Fill(at, -1f);
            if (b >= 0) at[b] = dstRow;
            else Array.Fill(at, dstRow);
            var rows = be.Empty(new Shape(_d.B), DType.Float32);
            rows.CopyFrom(at);
            Layout.WriteRows(be, all, rows, dst);
        }

        public void Reset(int b)
        {
            foreach (var (src, dst) in new[] { (_kw0, _kw), (_vw0, _vw), (_kring0, _kring), (_vring0, _vring) })
                Layout.CopySlice(_d._be, src, 0, dst, b, 0, 1);
        }

        /// <summary>One token per sequence through the layer: x [B, 1, D] → the next layer's input.</summary>
        public Tensor Step(Tensor x, bool anyCompletes)
        {
            var (be, B, D, H, Hd, l) = (_d._be, _d.B, _d.D, _d.H, _d.Hd, _d.Lc);
            // Front's maps and the query's in one DecodeLinear: h = LN1(x); q, raw keys/values and scores from h.
            var (h, q, kraw, vraw, s) = (New(B, 1, D), New(B, 1, D), New(B, 1, D), New(B, 1, D), New(B, 1, H * _d.R));
            Ops.DecodeLinear.Forward(be, x, Norm("norm1", h), [new(P("attn.proj_query.weight"), null, q), new(P("attn.proj_key.weight"), null, kraw),
                new(P("attn.proj_val.weight"), null, vraw), new(P("attn.dconv_1.weight"), P("attn.dconv_1.bias"), s)]);
            // The attention, with this position's rows appended first (each sequence at its own slot): LN_W(kraw), LN_W(vraw)
            // into the window ring, h, s, kraw, vraw into the chunk buffers; on the GPU inside the attention's launch.
            var o = New(B, H, 1, Hd);
            var append = new LsDecodeAppend(kraw, vraw, P("attn.dual_ln_win.weight"), P("attn.dual_ln_win.bias"), _eps, _d._tRowsW, _d._tRowsChunk,
                h, s, _hbuf, _sbuf, _kraw, _vraw, _counters);
            using (var q4 = q.Reshape(B, H, 1, Hd)) // [B, 1, H·d] is [B, H, 1, d] in memory
                LsCausalDecode.Forward(be, new LsCausalConfig(_d.W, l, _d.R), _d.Mc,
                    new LsDecodeInputs(q4, _kw, _vw, P("attn.r_w_bias"), P("attn.r_r_bias"), _rel, _kring, _vring, _kblock, _vblock, _relc, _d._tState), append, o);
            // The residuals ride the sums (y += x·Wᵀ + b): h2 = h + o·W_oᵀ in h's place; h3 = LN2(h2) and g = GELU(h3·W_1ᵀ + b_1)
            // in one call; y = h3 + g·W_2ᵀ + b_2 in h3's place.
            using (var o3 = o.Reshape(B, 1, D)) Ops.DecodeLinear.Forward(be, o3, null, [new(P("attn.proj_out.weight"), null, h)], accumulate: true);
            var (h3, g) = (New(B, 1, D), New(B, 1, P("ff.fc1.weight").Shape[0]));
            Ops.DecodeLinear.Forward(be, h, Norm("norm2", h3), [new(P("ff.fc1.weight"), P("ff.fc1.bias"), g)], gelu: true);
            Ops.DecodeLinear.Forward(be, g, null, [new(P("ff.fc2.weight"), P("ff.fc2.bias"), h3)], accumulate: true);
            var y = h3;

            if (anyCompletes)
            {
                // The chunk just completed (rows −1 elsewhere): block path P·(h W_k) then LN_P, and the cache path.
                using var kr = _kraw.Reshape(B, l, D);
                using var vr = _vraw.Reshape(B, l, D);
                using var sb = _sbuf.Reshape(B, l, H * _d.R);
                using var hb = _hbuf.Reshape(B, l, D);
                var (kb, vb) = (New(B, H, _d.R, Hd), New(B, H, _d.R, Hd));
                Ops.LsChunkProjection.Forward(be, l, sb, Split(kr), null, kb);
                Ops.LsChunkProjection.Forward(be, l, sb, Split(vr), null, vb);
                var (kbn, vbn) = DualLn(kb, vb, "attn.dual_ln_dproj");
                var (kc, vc) = CachePath(hb, sb);
                Layout.WriteRows(be, [new(kbn, _d._tRowsBlock, _kblock), new(vbn, _d._tRowsBlock, _vblock), new(kc, _d._tRowsRing, _kring), new(vc, _d._tRowsRing, _vring)]);
            }
            return y;
        }

        public void Dispose()
        {
            foreach (var t in _owned) t.Dispose();
        }
    }
}
