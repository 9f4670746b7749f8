using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>
/// The inputs of one decode step of B sequences (one query each):
/// q [B, H, 1, d] (unscaled); kw, vw [B, H, w, d]: the window ring, position t in slot t mod w (after LN_W);
/// u, vbias [H, d]; rel [H, w, d] (R_δ); kring, vring [B, H, C·r, d]: the cache-path compressed chunks, chunk a in slot
/// a mod C (after LN_P); kblock, vblock [B, H, Lb·r, d]: the block-path compressed chunks of the current block (after
/// LN_P); relc [H, ≥ (Mc + Lb)·r, d] (Rc_δ); state [B, 4] float32 per sequence: the window slot of the query's
/// position, nw (window keys, 1..w), the ring slot of the block's first cache chunk, qi (visible block chunks, 0..Lb).
/// </summary>
public readonly record struct LsDecodeInputs(Tensor Q, Tensor KW, Tensor VW, Tensor U, Tensor VBias, Tensor Rel,
    Tensor KRing, Tensor VRing, Tensor KBlock, Tensor VBlock, Tensor RelC, Tensor State);

/// <summary>Sizes of one decode call: Mc cache chunks of a ring of C, Lb block chunks, relc rows Nr.</summary>
internal readonly record struct LsDecodeGeometry(int B, int H, int D, int W, int R, int Mc, int C, int Lb, int Nr, float Scale);

/// <summary>
/// Checks and CPU reference of kernels/ls_causal_decode/. For sequence b with state (s, nw, c0, qi) and nc = (Mc + qi)·r:
///   window key of age a &lt; nw (ring slot (s − a) mod w): logit (σq+u)·k + (σq+v)·R_a;
///   compressed key n &lt; nc (n &lt; Mc·r: ring row ((c0 + ⌊n/r⌋) mod C)·r + n mod r; else block row n − Mc·r):
///   logit σq·(k̄ + Rc_{nc−1−n}) — the block forward's terms (LsCausalAttention) for the block's newest position.
/// </summary>
public static partial class LsCausalDecode
{
    internal static LsDecodeGeometry CheckForward(IBackend be, LsCausalConfig cfg, int cacheChunks, in LsDecodeInputs x, Tensor o)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        cfg.Validate();
        var q = x.Q;
        Check.On(be, q, "q");
        if (q.Shape.Rank != 4 || q.Shape[2] != 1 || q.Shape[3] < 1)
            throw new ArgumentException($"q has shape {q.Shape}; expected [B, H, 1, d]: one query per sequence", "q");
        int B = q.Shape[0], H = q.Shape[1], d = q.Shape[3], w = cfg.Window, r = cfg.Rank;
        if (cacheChunks < 0) throw new ArgumentOutOfRangeException(nameof(cacheChunks), cacheChunks, "the cache chunk count Mc must be >= 0");
        Seq(be, x.KW, q, "kw", w);
        Seq(be, x.VW, q, "vw", w);
        Param(be, x.U, q, "u", H, d);
        Param(be, x.VBias, q, "vbias", H, d);
        Param(be, x.Rel, q, "rel", H, w, d);
        Seq(be, x.KRing, q, "kring", -1);
        var rows = x.KRing.Shape[2];
        if (rows % r != 0 || rows / r < Math.Max(1, cacheChunks))
            throw new ArgumentException($"kring has shape {x.KRing.Shape}; expected [{B}, {H}, C·{r}, {d}] with C >= max(1, Mc = {cacheChunks}) ring chunks", "kring");
        Seq(be, x.VRing, q, "vring", rows);
        Seq(be, x.KBlock, q, "kblock", -1);
        var blockRows = x.KBlock.Shape[2];
        if (blockRows % r != 0 || blockRows < r)
            throw new ArgumentException($"kblock has shape {x.KBlock.Shape}; expected [{B}, {H}, Lb·{r}, {d}] with Lb >= 1 block chunks", "kblock");
        Seq(be, x.VBlock, q, "vblock", blockRows);
        Check.On(be, x.RelC, "relc");
        Check.DTypeIs(x.RelC, q.DType, "relc");
        var need = (cacheChunks + blockRows / r) * r;
        if (x.RelC.Shape.Rank != 3 || x.RelC.Shape[0] != H || x.RelC.Shape[2] != d || x.RelC.Shape[1] < need)
            throw new ArgumentException($"relc has shape {x.RelC.Shape}; expected [{H}, >= (Mc + Lb)·r = {need}, {d}]", "relc");
        Check.On(be, x.State, "state");
        Check.DTypeIs(x.State, DType.Float32, "state");
        Check.Dims(x.State, "state", B, 4);
        Check.Like(be, o, q, nameof(o));
        return new LsDecodeGeometry(B, H, d, w, r, cacheChunks, rows / r, blockRows / r, x.RelC.Shape[1], 1f / MathF.Sqrt(d));
    }

    /// <summary>[B, H, rows, d] with q's batch, heads, head dim and dtype (rows &lt; 0: any).</summary>
    static void Seq(IBackend be, Tensor t, Tensor q, string name, int rows)
    {
        Check.On(be, t, name);
        Check.DTypeIs(t, q.DType, name);
        if (t.Shape.Rank != 4 || t.Shape[0] != q.Shape[0] || t.Shape[1] != q.Shape[1] || t.Shape[3] != q.Shape[3] || (rows >= 0 && t.Shape[2] != rows) || t.Shape[2] < 1)
            throw new ArgumentException($"{name} has shape {t.Shape}; expected [{q.Shape[0]}, {q.Shape[1]}, {(rows >= 0 ? rows.ToString() : "rows")}, {q.Shape[3]}]", name);
    }

    static void Param(IBackend be, Tensor t, Tensor q, string name, params ReadOnlySpan<int> dims)
    {
        Check.On(be, t, name);
        Check.DTypeIs(t, q.DType, name);
        Check.Dims(t, name, dims);
    }

    /// <summary>Sequence b's state, checked against the sizes (the CPU path throws where the kernel would read out of range).</summary>
    internal static (int Slot, int Nw, int First, int Qi) StateOf<T>(LsDecodeGeometry g, T[] state, int b) where T : IFloatingPointIeee754<T>
    {
        int At(int k) => int.CreateChecked(state[b * 4 + k]);
        var (s, nw, c0, qi) = (At(0), At(1), At(2), At(3));
        if (s < 0 || s >= g.W || nw < 1 || nw > g.W || c0 < 0 || c0 >= g.C || qi < 0 || qi > g.Lb)
            throw new ArgumentOutOfRangeException("state", $"[{s}, {nw}, {c0}, {qi}]",
                $"sequence {b}: expected slot in [0, {g.W}), nw in [1, {g.W}], first cache slot in [0, {g.C}), qi in [0, {g.Lb}]");
        return (s, nw, c0, qi);
    }

    /// <summary>Inputs in the facade's order: q, kw, vw, u, vbias, rel, kring, vring, kblock, vblock, relc, state.</summary>
    internal static void Forward<T>(LsDecodeGeometry g, T[][] x, T[] o) where T : IFloatingPointIeee754<T>
    {
        var (q, kw, vw, u, vb, rel, kr, vr, kbl, vbl, relc, state) = (x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11]);
        var scale = T.CreateChecked(g.Scale);
        var qs = new T[g.D];
        for (var b = 0; b < g.B; b++)
        {
            var (slot, nw, first, qi) = StateOf(g, state, b);
            var nc = (g.Mc + qi) * g.R;
            for (var h = 0; h < g.H; h++)
            {
                var bh = (long)b * g.H + h;
                for (var c = 0; c < g.D; c++) qs[c] = scale * q[bh * g.D + c];
                // Keys as (values array, row offset), logits alongside: compressed first, then the window by age.
                var rows = new List<(T[] Values, long Row)>();
                var s = new List<T>();
                for (var n = 0; n < nc; n++)
                {
                    var (keys, vals, row) = n < g.Mc * g.R
                        ? (kr, vr, (bh * g.C * g.R + (long)((first + n / g.R) % g.C) * g.R + n % g.R) * g.D)
                        : (kbl, vbl, (bh * g.Lb * g.R + n - g.Mc * g.R) * g.D);
                    var rrow = ((long)h * g.Nr + nc - 1 - n) * g.D;
                    var l = T.Zero;
                    for (var c = 0; c < g.D; c++) l += qs[c] * (keys[row + c] + relc[rrow + c]);
                    rows.Add((vals, row));
                    s.Add(l);
                }
                for (var a = 0; a < nw; a++)
                {
                    var row = (bh * g.W + (slot - a + g.W) % g.W) * g.D;
                    var rrow = ((long)h * g.W + a) * g.D;
                    var l = T.Zero;
                    for (var c = 0; c < g.D; c++) l += (qs[c] + u[h * g.D + c]) * kw[row + c] + (qs[c] + vb[h * g.D + c]) * rel[rrow + c];
                    rows.Add((vw, row));
                    s.Add(l);
                }
                var m = s.Max()!;
                var sum = T.Zero;
                foreach (var l in s) sum += T.Exp(l - m);
                for (var c = 0; c < g.D; c++) o[bh * g.D + c] = T.Zero;
                for (var j = 0; j < rows.Count; j++)
                {
                    var p = T.Exp(s[j] - m) / sum;
                    for (var c = 0; c < g.D; c++) o[bh * g.D + c] += p * rows[j].Values[rows[j].Row + c];
                }
            }
        }
    }
}
