using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The decode attention's cases (see Conformance/OpCases): rings entered at odd slots and wrapped, cache-path ring
// chunks wrapping past the ring's end, no block chunk yet and all of them, one window key and a full window; splits of
// the vector kernel that end inside the compressed keys, and single splits that take several rounds of its key loop. The state is part of the case (integers, not random draws); the setup writes it into a
// tensor of the case's scope.
public static partial class LsCausalDecode
{
    static string F(string method) => $"{nameof(LsCausalDecode)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt) => new (int H, int d, int w, int r, int Mc, int C, int Lb, int[] State)[]
    {
        (2, 16, 5, 2, 3, 5, 2, [0, 1, 0, 0, 3, 5, 4, 2, 4, 3, 2, 1]),
        (1, 64, 8, 1, 0, 1, 4, [7, 8, 0, 3]),
        (3, 32, 16, 1, 6, 10, 4, [15, 16, 9, 4, 2, 9, 3, 0]),
        (2, 48, 40, 3, 50, 60, 10, [39, 40, 55, 10, 0, 17, 0, 5]),  // more keys than the block's threads; several splits, some empty
        // Head dims for the vector kernel's shapes (G lanes a key row: 1, 2, 4 with one vector a lane; 4, 8, 16 and, at fp32
        // d 256, 32 with two) and the scalar kernel (bf16 d 20: not whole 16-byte vectors).
        (1, 8, 6, 2, 4, 5, 3, [2, 6, 3, 2]),
        (2, 20, 9, 1, 7, 9, 3, [8, 9, 4, 3, 3, 2, 0, 1]),
        (1, 80, 33, 2, 9, 11, 4, [32, 33, 10, 4]),
        (2, 128, 70, 1, 30, 34, 6, [5, 70, 31, 6, 69, 12, 2, 0]),
        (1, 256, 64, 2, 20, 24, 4, [63, 64, 23, 3]),
        // Enough (sequence, head) pairs to fill an H200 alone (4 blocks an SM): one split, the block writes o itself.
        (8, 16, 4, 1, 2, 3, 2, [.. Enumerable.Range(0, 70).SelectMany(b => new[] { b % 4, 1 + b % 4, b % 3, b % 3 })]),
        // As many pairs, each with up to 148 keys in its one split: several rounds of the vector kernel's key loop a group
        // (d 64: 32 keys a round bf16, 16 fp32), compressed and window keys in one block.
        (8, 64, 136, 1, 8, 12, 4, [.. Enumerable.Range(0, 66).SelectMany(b => new[] { b * 7 % 136, b % 2 == 0 ? 136 : 100 + b % 30, b % 12, b % 5 })]),
    }.Select(c => CaseAt(dt, c.H, c.d, c.w, c.r, c.Mc, c.C, c.Lb, c.State)).Concat(AppendCases(dt));

    /// <summary>
    /// The step's append fused (vector kernel: d 16, 64, 128; one and several splits, the age-0 key in a later split) and
    /// composed (the scalar kernel at bf16 d 20; the CPU), with a sequence that writes nothing (rows −1) and one that writes
    /// only its window row; the multi-split ones (d 64, 128) with the caller's counters (which the kernel must leave zeroed:
    /// the determinism test runs them twice).
    /// </summary>
    static IEnumerable<OpCase> AppendCases(DType dt) => new (int H, int d, int w, int r, int Mc, int C, int Lb, int l, int[] State, int[] RowsW, int[] RowsChunk)[]
    {
        (2, 16, 5, 2, 3, 5, 2, 3, [0, 1, 0, 0, 3, 5, 4, 2, 4, 3, 2, 1], [0, 3, -1], [0, -1, -1]),
        (2, 20, 9, 1, 7, 9, 3, 4, [8, 9, 4, 3, 3, 2, 0, 1], [8, 3], [3, 1]),
        (1, 64, 70, 1, 40, 44, 4, 16, [69, 70, 3, 4, 5, 6, 40, 2], [69, 5], [15, 0]),
        (4, 128, 33, 2, 9, 11, 4, 2, [32, 33, 10, 4], [32], [1]),
        (8, 16, 4, 1, 2, 3, 2, 2, [.. Enumerable.Range(0, 70).SelectMany(b => new[] { b % 4, 1 + b % 4, b % 3, b % 3 })],
            [.. Enumerable.Range(0, 70).Select(b => b % 4)], [.. Enumerable.Range(0, 70).Select(b => b % 2)]),
    }.Select(c => AppendCaseAt(dt, c.H, c.d, c.w, c.r, c.Mc, c.C, c.Lb, c.l, c.State, c.RowsW, c.RowsChunk, counters: c.d is 64 or 128));

    /// <summary>The bench's decode step at the causal shape (M = L memory, a full window, the block's last chunk: every key a
    /// query can see), batch 1 and 64.</summary>
    internal static IEnumerable<OpCase> PerfCases(KernelShape k, DType dt)
    {
        int l = k.ChunkLength, mc = k.CausalMemory / l, lb = k.CausalLength / l, w = k.CausalWindow;
        foreach (var b in new[] { 1, 64 })
            yield return CaseAt(dt, k.Heads, k.HeadDim, w, k.CausalRank, mc, mc + lb, lb,
                [.. Enumerable.Range(0, b).SelectMany(i => new[] { i * 37 % w, w, i % (mc + lb), lb - 1 })]);
    }

    /// <summary>The attention's inputs in the facade's order: q, kw, vw, u, vbias, rel, kring, vring, kblock, vblock, relc.</summary>
    static InputSpec[] AttentionInputs(DType dt, int B, int H, int d, int w, int r, int ringChunks, int lb, int nr) =>
    [
            In("q", dt, 1, B, H, 1, d), In("kw", dt, 1, B, H, w, d), In("vw", dt, 1, B, H, w, d),
            In("u", dt, 0.1, H, d), In("vbias", dt, 0.1, H, d), In("rel", dt, 1, H, w, d),
            In("kring", dt, 1, B, H, ringChunks * r, d), In("vring", dt, 1, B, H, ringChunks * r, d),
            In("kblock", dt, 1, B, H, lb * r, d), In("vblock", dt, 1, B, H, lb * r, d), In("relc", dt, 1, H, nr, d),
    ];

    static OpCase CaseAt(DType dt, int H, int d, int w, int r, int mc, int ringChunks, int lb, int[] state)
    {
        var B = state.Length / 4;
        var cfg = new LsCausalConfig(w, 1, r);
        var nr = (mc + lb) * r;
        var shape = $"B{B} H{H} d{d} w{w} r{r} Mc{mc} C{ringChunks} Lb{lb}";
        var geo = new LsDecodeGeometry(B, H, d, w, r, mc, ringChunks, lb, nr, 1f / MathF.Sqrt(d));
        var ins = AttentionInputs(dt, B, H, d, w, r, ringChunks, lb, nr);
        var keys = Enumerable.Range(0, B).Sum(b => state[b * 4 + 1] + (mc + state[b * 4 + 3]) * r);
        return Timed(F(nameof(Forward)), "ls_causal_decode", dt, shape, ins, [Out("o", dt, B, H, 1, d)], (be, i, o) =>
        {
            var st = be.Empty(new Shape(B, 4), DType.Float32); // in the case's scope
            st.CopyFrom([.. state.Select(v => (float)v)]);
            var x = new LsDecodeInputs(i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], i[8], i[9], i[10], st);
            return () => Forward(be, cfg, mc, x, o[0]);
        }, new DecodeRef(geo, state), flops: 4.0 * H * d * keys, bytes: dt.Size() * 2.0 * H * d * keys);
    }

    static OpCase AppendCaseAt(DType dt, int H, int d, int w, int r, int mc, int ringChunks, int lb, int l, int[] state, int[] rowsW, int[] rowsChunk, bool counters)
    {
        var B = state.Length / 4;
        var (Dm, HR, f) = (H * d, H * r, DType.Float32);
        var cfg = new LsCausalConfig(w, 1, r);
        var nr = (mc + lb) * r;
        var shape = $"B{B} H{H} d{d} w{w} r{r} Mc{mc} C{ringChunks} Lb{lb} l{l} append{(counters ? " counters" : "")}";
        var geo = new LsDecodeGeometry(B, H, d, w, r, mc, ringChunks, lb, nr, 1f / MathF.Sqrt(d));
        InputSpec[] ins =
        [
            .. AttentionInputs(dt, B, H, d, w, r, ringChunks, lb, nr),
            In("kraw", dt, 2, B, 1, Dm), In("vraw", dt, 2, B, 1, Dm), In("gamma", f, 1, Dm), In("beta", f, 1, Dm),
            In("h", dt, 1, B, 1, Dm), In("s", dt, 1, B, 1, HR),
            In("hbuf", dt, 1, B, 1, l, Dm), In("sbuf", dt, 1, B, 1, l, HR), In("krbuf", dt, 1, B, 1, l, Dm), In("vrbuf", dt, 1, B, 1, l, Dm),
        ];
        OutputSpec[] outs =
        [
            Out("o", dt, B, H, 1, d), Out("kw", dt, B, H, w, d), Out("vw", dt, B, H, w, d),
            Out("hbuf", dt, B, 1, l, Dm), Out("sbuf", dt, B, 1, l, HR), Out("krbuf", dt, B, 1, l, Dm), Out("vrbuf", dt, B, 1, l, Dm),
        ];
        var keys = Enumerable.Range(0, B).Sum(b => state[b * 4 + 1] + (mc + state[b * 4 + 3]) * r);
        return Timed(F(nameof(Forward)), "ls_causal_decode_append", dt, shape, ins, outs, (be, i, o) =>
        {
            var st = be.Empty(new Shape(B, 4), DType.Float32); // in the case's scope
            st.CopyFrom([.. state.Select(v => (float)v)]);
            var (rw, rc) = (be.Empty(new Shape(B), DType.Float32), be.Empty(new Shape(B), DType.Float32));
            rw.CopyFrom([.. rowsW.Select(v => (float)v)]);
            rc.CopyFrom([.. rowsChunk.Select(v => (float)v)]);
            var x = new LsDecodeInputs(i[0], o[1], o[2], i[3], i[4], i[5], i[6], i[7], i[8], i[9], i[10], st);
            Tensor? cnt = null;
            if (counters)
            {
                cnt = be.Empty(new Shape(B * H), DType.Float32);
                be.Fill(cnt, 0f);
            }
            var a = new LsDecodeAppend(i[11], i[12], i[13], i[14], 1e-5f, rw, rc, i[15], i[16], o[3], o[4], o[5], o[6], cnt);
            // The rings and buffers are updated in place: each launch starts them as copies of the inputs (the checks poison
            // the outputs before a launch).
            return () =>
            {
                foreach (var (src, dst) in new[] { (1, 1), (2, 2), (17, 3), (18, 4), (19, 5), (20, 6) }) Elementwise.Cast(be, i[src], o[dst]);
                Forward(be, cfg, mc, x, a, o[0]);
            };
        }, new AppendRef(geo, l, state, rowsW, rowsChunk), flops: 4.0 * H * d * keys, bytes: dt.Size() * 2.0 * H * d * keys);
    }

    sealed record AppendRef(LsDecodeGeometry G, int L, int[] State, int[] RowsW, int[] RowsChunk) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var (kw, vw, hbuf, sbuf, krbuf, vrbuf) = ((T[])i[1].Clone(), (T[])i[2].Clone(), (T[])i[17].Clone(), (T[])i[18].Clone(), (T[])i[19].Clone(), (T[])i[20].Clone());
            Append(G, L, T.CreateChecked(1e-5), i[11], i[12], i[13], i[14], RowsW, RowsChunk, i[15], i[16], kw, vw, hbuf, sbuf, krbuf, vrbuf, stored);
            var o = new T[G.B * G.H * G.D];
            Forward(G, [i[0], kw, vw, i[3], i[4], i[5], i[6], i[7], i[8], i[9], i[10], [.. State.Select(v => T.CreateChecked(v))]], o);
            return [o, kw, vw, hbuf, sbuf, krbuf, vrbuf];
        }
    }

    sealed record DecodeRef(LsDecodeGeometry G, int[] State) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var o = new T[G.B * G.H * G.D];
            Forward(G, [.. i, [.. State.Select(v => T.CreateChecked(v))]], o);
            return [o];
        }
    }
}
