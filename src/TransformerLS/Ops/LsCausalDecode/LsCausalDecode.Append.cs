using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>
/// A decode step's append (<see cref="LsCausalDecode.Forward(IBackend, LsCausalConfig, int, in LsDecodeInputs, in LsDecodeAppend, Tensor)"/>):
/// this position's raw keys and values kraw, vraw [B, 1, H·d] (in q's dtype) and LN_W's γ, β [H·d] (float32), eps. Sequence b's
/// window ring row rowsW[b] of kw, vw gets the head-split LN_W(kraw), LN_W(vraw) (which are also its age-0 key and value);
/// (rowsW[b] must be −1 or b's window slot, state[b, 0]); row rowsChunk[b] of the chunk buffers hbuf, kRawBuf, vRawBuf [B, 1, l, H·d] and sBuf [B, 1, l, H·r] gets h [B, 1, H·d],
/// kraw, vraw and s [B, 1, H·r]. Rows are float32 [B]; a row &lt; 0 writes nothing (as <see cref="Layout.WriteRows(IBackend, Tensor, Tensor, Tensor)"/>).
/// <paramref name="Counters"/>: null, or float32 [B·H] zeros that the GPU kernel keeps for its split counts and leaves zeroed
/// (a decoder's, so that a step clears nothing).
/// </summary>
public readonly record struct LsDecodeAppend(Tensor KRaw, Tensor VRaw, Tensor Gamma, Tensor Beta, float Eps, Tensor RowsW, Tensor RowsChunk,
    Tensor H, Tensor S, Tensor HBuf, Tensor SBuf, Tensor KRawBuf, Tensor VRawBuf, Tensor? Counters = null);

public static partial class LsCausalDecode
{
    static void CheckAppend(IBackend be, LsDecodeGeometry g, in LsDecodeInputs x, in LsDecodeAppend a)
    {
        var (dt, Dm, HR) = (x.Q.DType, g.H * g.D, g.H * g.R);
        void Row(Tensor t, string name, int cols)
        {
            Check.On(be, t, name);
            Check.DTypeIs(t, dt, name);
            Check.Dims(t, name, g.B, 1, cols);
        }
        Row(a.KRaw, "kraw", Dm);
        Row(a.VRaw, "vraw", Dm);
        Row(a.H, "h", Dm);
        Row(a.S, "s", HR);
        Check.Vector(be, a.Gamma, Dm, DType.Float32, "gamma");
        Check.Vector(be, a.Beta, Dm, DType.Float32, "beta");
        Check.Positive(a.Eps, "eps");
        Check.Vector(be, a.RowsW, g.B, DType.Float32, "rowsW");
        Check.Vector(be, a.RowsChunk, g.B, DType.Float32, "rowsChunk");
        Check.On(be, a.HBuf, "hbuf");
        Check.DTypeIs(a.HBuf, dt, "hbuf");
        if (a.HBuf.Shape.Rank != 4 || a.HBuf.Shape[0] != g.B || a.HBuf.Shape[1] != 1 || a.HBuf.Shape[2] < 1 || a.HBuf.Shape[3] != Dm)
            throw new ArgumentException($"hbuf has shape {a.HBuf.Shape}; expected [{g.B}, 1, l, {Dm}]", "hbuf");
        var l = a.HBuf.Shape[2];
        void Buf(Tensor t, string name, int cols)
        {
            Check.On(be, t, name);
            Check.DTypeIs(t, dt, name);
            Check.Dims(t, name, g.B, 1, l, cols);
        }
        Buf(a.KRawBuf, "kRawBuf", Dm);
        Buf(a.VRawBuf, "vRawBuf", Dm);
        Buf(a.SBuf, "sBuf", HR);
        if (a.Counters is { } c) Check.Vector(be, c, g.B * g.H, DType.Float32, "counters");
    }

    /// <summary>
    /// On the CPU (host memory: nothing to wait for): each rowsW[b] is −1 or sequence b's window slot (the GPU kernel writes
    /// only that slot, the only row no other key of the step reads), each rowsChunk[b] −1 or below l.
    /// </summary>
    static void CheckAppendRows(LsDecodeGeometry g, in LsDecodeInputs x, in LsDecodeAppend a)
    {
        var (state, rw, rc, l) = (x.State.ToArray(), a.RowsW.ToArray(), a.RowsChunk.ToArray(), a.HBuf.Shape[2]);
        for (var b = 0; b < g.B; b++)
        {
            if (rw[b] != -1 && rw[b] != state[4 * b])
                throw new ArgumentOutOfRangeException("rowsW", rw[b], $"sequence {b}: the window row must be -1 or the state's window slot {state[4 * b]}");
            if (rc[b] != -1 && (rc[b] < 0 || rc[b] >= l || rc[b] != MathF.Floor(rc[b])))
                throw new ArgumentOutOfRangeException("rowsChunk", rc[b], $"sequence {b}: the chunk row must be -1 or an integer in [0, {l})");
        }
    }

    /// <summary>The append as the unfused ops: DualLayerNorm of kraw, vraw, then one WriteRows of all six rows (the CPU's path and the scalar kernel's).</summary>
    static void Compose(IBackend be, LsDecodeGeometry g, in LsDecodeInputs x, in LsDecodeAppend a)
    {
        var (B, H, d, dt, l) = (g.B, g.H, g.D, x.Q.DType, a.HBuf.Shape[2]);
        using var k = be.Empty(new Shape(B, H, 1, d), dt);
        using var v = be.Empty(new Shape(B, H, 1, d), dt);
        using var mean = be.Empty(new Shape(2, B, 1), DType.Float32);
        using var rstd = be.Empty(new Shape(2, B, 1), DType.Float32);
        DualLayerNorm.Forward(be, a.KRaw, a.VRaw, a.Gamma, a.Beta, k, v, mean, rstd, a.Eps);
        using var hs = a.H.Reshape(B, 1, 1, H * d);
        using var ss = a.S.Reshape(B, 1, 1, H * g.R);
        using var ks = a.KRaw.Reshape(B, 1, 1, H * d);
        using var vs = a.VRaw.Reshape(B, 1, 1, H * d);
        Layout.WriteRows(be, [new(hs, a.RowsChunk, a.HBuf), new(ss, a.RowsChunk, a.SBuf), new(ks, a.RowsChunk, a.KRawBuf),
            new(vs, a.RowsChunk, a.VRawBuf), new(k, a.RowsW, x.KW), new(v, a.RowsW, x.VW)]);
    }

    /// <summary>
    /// The append's reference on arrays: kw, vw, hbuf, sbuf, krbuf, vrbuf updated in place (LN_W by LayerNorm's reference in T, each normalized value
    /// through <paramref name="stored"/>: the dtype the ring holds).
    /// </summary>
    internal static void Append<T>(LsDecodeGeometry g, int l, T eps, T[] kraw, T[] vraw, T[] gamma, T[] beta, int[] rowsW, int[] rowsChunk, T[] h, T[] s,
        T[] kw, T[] vw, T[] hbuf, T[] sbuf, T[] krbuf, T[] vrbuf, Func<T, T> stored) where T : IFloatingPointIeee754<T>
    {
        var (Dm, HR) = (g.H * g.D, g.H * g.R);
        var (kn, vn) = (new T[g.B * Dm], new T[g.B * Dm]);
        LayerNorm.Forward<T>(g.B, Dm, kraw, gamma, beta, kn, default, default, eps);
        LayerNorm.Forward<T>(g.B, Dm, vraw, gamma, beta, vn, default, default, eps);
        for (var b = 0; b < g.B; b++)
        {
            var row = (long)b * Dm;
            if (rowsW[b] >= 0)
                for (var c = 0; c < Dm; c++)
                {
                    var at = (((long)b * g.H + c / g.D) * g.W + rowsW[b]) * g.D + c % g.D;
                    kw[at] = stored(kn[row + c]);
                    vw[at] = stored(vn[row + c]);
                }
            if (rowsChunk[b] < 0) continue;
            var chunk = (long)b * l + rowsChunk[b];
            Array.Copy(h, row, hbuf, chunk * Dm, Dm);
            Array.Copy(kraw, row, krbuf, chunk * Dm, Dm);
            Array.Copy(vraw, row, vrbuf, chunk * Dm, Dm);
            Array.Copy(s, (long)b * HR, sbuf, chunk * HR, HR);
        }
    }
}
