using TransformerLS.Backends;
using TransformerLS.Bench.Harness;
using TransformerLS.Ops;
using TransformerLS.Tensors;
using LinearOp = TransformerLS.Ops.Linear;

namespace TransformerLS.Bench.Kernels;

/// <summary>
/// One timed launch: its useful FLOPs and minimal bytes (bench/README.md derives every formula; 0 FLOPs = a
/// bandwidth-bound kernel, no FLOP rate reported). <see cref="Prepare"/> makes random inputs in the caller's
/// TensorScope and returns the launch.
/// </summary>
public sealed record KernelCase(string Family, string Kernel, string Shape, DType DType, double Flops, double Bytes, Func<IBackend, RandomInputs, Action> Prepare);

/// <summary>
/// The sizes of a run: bidirectional kernels at Tokens = B·N (the peers' 64K tokens per step, d_model 512 = 8 x 64,
/// w 128, r 64); the causal ones at the enwik8 phase-1 shape (L = M = 2048, w 512, l 16, r 1, B = Tokens / L).
/// </summary>
public sealed record KernelShape(int Tokens = 65536, int N = 4096, int Heads = 8, int HeadDim = 64, int Window = 128, int Rank = 64,
    int CausalLength = 2048, int CausalMemory = 2048, int CausalWindow = 512, int ChunkLength = 16, int CausalRank = 1)
{
    public int Batch => Math.Max(1, Tokens / N);
    public int Dim => Heads * HeadDim;
}

public static class KernelCases
{
    public static IEnumerable<KernelCase> All(KernelShape k, IEnumerable<DType> dtypes) =>
        dtypes.SelectMany(dt => Bidirectional(k, dt).Concat(Causal(k, dt)).Concat(Dense(k, dt)));

    static IEnumerable<KernelCase> Bidirectional(KernelShape k, DType dt)
    {
        int B = k.Batch, H = k.Heads, N = k.N, d = k.HeadDim, w = k.Window, r = k.Rank, D = k.Dim;
        double s = dt.Size(), bhnd = (double)B * H * N * d, bhrd = (double)B * H * r * d, bhn = (double)B * H * N;
        var shape = $"B={B} N={N} H={H} d={d} w={w} r={r}";
        var cfg = new LsAttentionConfig(w, r);
        var keys = 2 * cfg.Extension + w;

        // Fused attention: per query, q·k and p·v over the window's 2e + w keys and the r landmarks.
        var attnFlops = 4 * bhn * (keys + r) * d;
        Func<IBackend, RandomInputs, (Tensor q, Tensor kk, Tensor v, Tensor kb, Tensor vb, Tensor o, Tensor lse)> attn = (be, rnd) =>
        {
            var q = rnd.Normal(be, dt, 1, B, H, N, d);
            var (kk, v) = (rnd.Normal(be, dt, 1, B, H, N, d), rnd.Normal(be, dt, 1, B, H, N, d));
            var (kb, vb) = (rnd.Normal(be, dt, 1, B, H, r, d), rnd.Normal(be, dt, 1, B, H, r, d));
            var o = be.Empty(q.Shape, dt);
            var lse = be.Empty(new Shape(B, H, N), DType.Float32);
            LsAttention.Forward(be, cfg, q, kk, v, kb, vb, null, o, lse); // the backward reads a real output and lse
            return (q, kk, v, kb, vb, o, lse);
        };
        yield return new("ls_attention", "forward", shape, dt, attnFlops, s * (4 * bhnd + 2 * bhrd) + 4 * bhn, (be, rnd) =>
        {
            var (q, kk, v, kb, vb, o, lse) = attn(be, rnd);
            return () => LsAttention.Forward(be, cfg, q, kk, v, kb, vb, null, o, lse);
        });
        yield return new("ls_attention", "backward", shape, dt, 2.5 * attnFlops, s * (8 * bhnd + 4 * bhrd) + 4 * bhn, (be, rnd) =>
        {
            var (q, kk, v, kb, vb, o, lse) = attn(be, rnd);
            var dout = rnd.Normal(be, dt, 1, B, H, N, d);
            Tensor Like(Tensor t) => be.Empty(t.Shape, dt);
            var (dq, dk, dv, dkb, dvb) = (Like(q), Like(q), Like(q), Like(kb), Like(kb));
            return () => LsAttention.Backward(be, cfg, q, kk, v, kb, vb, null, o, lse, dout, dq, dk, dv, dkb, dvb);
        });

        // Dynamic projection: K̄ = P·K and V̄ = P·V with P [r, N] per head; the column softmax is not counted.
        double scores = (double)B * N * H * r, projFlops = 4 * bhrd * N;
        Func<IBackend, RandomInputs, Tensor[]> proj = (be, rnd) =>
        {
            var sc = rnd.Normal(be, dt, 1, B, N, H * r);
            var (kk, v) = (rnd.Normal(be, dt, 1, B, H, N, d), rnd.Normal(be, dt, 1, B, H, N, d));
            var (kb, vb) = (be.Empty(new Shape(B, H, r, d), dt), be.Empty(new Shape(B, H, r, d), dt));
            var (cm, cs) = (be.Empty(new Shape(B, H * r), DType.Float32), be.Empty(new Shape(B, H * r), DType.Float32));
            LsProjection.Forward(be, sc, kk, v, null, kb, vb, cm, cs);
            return [sc, kk, v, kb, vb, cm, cs];
        };
        yield return new("ls_projection", "forward", shape, dt, projFlops, s * (scores + 2 * bhnd + 2 * bhrd) + 8.0 * B * H * r, (be, rnd) =>
        {
            var t = proj(be, rnd);
            return () => LsProjection.Forward(be, t[0], t[1], t[2], null, t[3], t[4], t[5], t[6]);
        });
        yield return new("ls_projection", "backward", shape, dt, 2 * projFlops, s * (2 * scores + 4 * bhnd + 2 * bhrd) + 8.0 * B * H * r, (be, rnd) =>
        {
            var t = proj(be, rnd);
            var (dkb, dvb) = (rnd.Normal(be, dt, 1, B, H, r, d), rnd.Normal(be, dt, 1, B, H, r, d));
            var (ds, dk, dv) = (be.Empty(t[0].Shape, dt), be.Empty(t[1].Shape, dt), be.Empty(t[1].Shape, dt));
            return () => LsProjection.Backward(be, t[0], t[1], t[2], null, t[5], t[6], dkb, dvb, ds, dk, dv);
        });

        // DualLN of the window keys and values: token-major [B, N, D] in, head-split out; bandwidth-bound.
        double bnd = (double)B * N * D, stats = 16.0 * B * N;
        Func<IBackend, RandomInputs, Tensor[]> dln = (be, rnd) =>
        {
            var (xk, xv) = (rnd.Normal(be, dt, 1, B, N, D), rnd.Normal(be, dt, 1, B, N, D));
            var (g, b) = (rnd.Normal(be, DType.Float32, 0.1, D), rnd.Normal(be, DType.Float32, 0.1, D));
            var (yk, yv) = (be.Empty(new Shape(B, H, N, d), dt), be.Empty(new Shape(B, H, N, d), dt));
            var (mean, rstd) = (be.Empty(new Shape(2, B, N), DType.Float32), be.Empty(new Shape(2, B, N), DType.Float32));
            DualLayerNorm.Forward(be, xk, xv, g, b, yk, yv, mean, rstd, 1e-5f);
            return [xk, xv, g, b, yk, yv, mean, rstd];
        };
        yield return new("dual_layernorm", "forward", $"B={B} N={N} D={D}", dt, 0, s * 4 * bnd + stats + 8.0 * D, (be, rnd) =>
        {
            var t = dln(be, rnd);
            return () => DualLayerNorm.Forward(be, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], 1e-5f);
        });
        yield return new("dual_layernorm", "backward", $"B={B} N={N} D={D}", dt, 0, s * 6 * bnd + stats + 12.0 * D, (be, rnd) =>
        {
            var t = dln(be, rnd);
            var (dyk, dyv) = (rnd.Normal(be, dt, 1, B, H, N, d), rnd.Normal(be, dt, 1, B, H, N, d));
            var (dxk, dxv) = (be.Empty(t[0].Shape, dt), be.Empty(t[0].Shape, dt));
            var (dg, db) = (be.Empty(new Shape(D), DType.Float32), be.Empty(new Shape(D), DType.Float32));
            return () => DualLayerNorm.Backward(be, dyk, dyv, t[0], t[1], t[2], t[6], t[7], dxk, dxv, dg, db);
        });
    }

    static IEnumerable<KernelCase> Causal(KernelShape k, DType dt)
    {
        int H = k.Heads, d = k.HeadDim, W = k.CausalWindow, Lc = k.ChunkLength, R = k.CausalRank, L = k.CausalLength, M = k.CausalMemory;
        int B = Math.Max(1, k.Tokens / L), p = W - 1, nc = (M / Lc + L / Lc) * R;
        double s = dt.Size();
        var cfg = new LsCausalConfig(W, Lc, R);
        var shape = $"B={B} L={L} M={M} H={H} d={d} w={W} l={Lc} r={R}";
        // Per query: q·k, q·R and p·v over the w band keys; q·k̄ (+ its relative term) and p·v̄ over the visible compressed keys.
        var compressed = (M / Lc + (L / Lc - 1) / 2.0) * R;
        var flops = (double)B * H * L * d * (6.0 * W + 4.0 * compressed);
        double inputs = (double)B * H * L * d + 2.0 * B * H * (p + L) * d + 2.0 * H * d + (double)H * W * d + 2.0 * B * H * nc * d + (double)H * nc * d;
        double outs = (double)B * H * L * d, lse = 4.0 * B * H * L;
        Func<IBackend, RandomInputs, (LsCausalInputs x, Tensor o, Tensor lse)> make = (be, rnd) =>
        {
            Tensor Rand(double scale, params int[] dims) => rnd.Normal(be, dt, scale, dims);
            var x = new LsCausalInputs(Rand(1, B, H, L, d), Rand(1, B, H, p + L, d), Rand(1, B, H, p + L, d), Rand(0.1, H, d), Rand(0.1, H, d),
                Rand(1, H, W, d), Rand(1, B, H, nc, d), Rand(1, B, H, nc, d), Rand(1, H, nc, d), null);
            var o = be.Empty(x.Q.Shape, dt);
            var l = be.Empty(new Shape(B, H, L), DType.Float32);
            LsCausalAttention.Forward(be, cfg, x, o, l);
            return (x, o, l);
        };
        yield return new("ls_attention_causal", "forward", shape, dt, flops, s * (inputs + outs) + lse, (be, rnd) =>
        {
            var (x, o, l) = make(be, rnd);
            return () => LsCausalAttention.Forward(be, cfg, x, o, l);
        });
        yield return new("ls_attention_causal", "backward", shape, dt, 2.5 * flops, s * (2 * inputs + 2 * outs) + lse, (be, rnd) =>
        {
            var (x, o, l) = make(be, rnd);
            var dout = rnd.Normal(be, dt, 1, B, H, L, d);
            Tensor Like(Tensor t) => be.Empty(t.Shape, dt);
            var g = new LsCausalGradients(Like(x.Q), Like(x.K), Like(x.V), Like(x.U), Like(x.VBias), Like(x.Rel), Like(x.KC), Like(x.VC), Like(x.RelC));
            return () => LsCausalAttention.Backward(be, cfg, x, o, l, dout, g);
        });

        // Chunked projection of the memory + block keys (T = M + L): per chunk of l tokens, r rows of P·x.
        int T = M + L, chunks = (T + Lc - 1) / Lc;
        double sc = (double)B * T * H * R, x1 = (double)B * H * T * d, y1 = (double)B * H * chunks * R * d, pf = 2.0 * B * H * T * R * d;
        var cshape = $"B={B} T={T} H={H} d={d} l={Lc} r={R}";
        yield return new("ls_chunk_projection", "forward", cshape, dt, pf, s * (sc + x1 + y1), (be, rnd) =>
        {
            var (scores, x, y) = (rnd.Normal(be, dt, 1, B, T, H * R), rnd.Normal(be, dt, 1, B, H, T, d), be.Empty(new Shape(B, H, chunks * R, d), dt));
            return () => LsChunkProjection.Forward(be, Lc, scores, x, null, y);
        });
        yield return new("ls_chunk_projection", "backward", cshape, dt, 2 * pf, s * (2 * sc + 2 * x1 + y1), (be, rnd) =>
        {
            var (scores, x, dy) = (rnd.Normal(be, dt, 1, B, T, H * R), rnd.Normal(be, dt, 1, B, H, T, d), rnd.Normal(be, dt, 1, B, H, chunks * R, d));
            var (ds, dx) = (be.Empty(scores.Shape, dt), be.Empty(x.Shape, dt));
            return () => LsChunkProjection.Backward(be, Lc, scores, x, null, dy, ds, dx);
        });
    }

    /// <summary>The token-wise ops around the attention, at Tokens x D: LayerNorm, GELU (on the 4D MLP width) and the Linear.</summary>
    static IEnumerable<KernelCase> Dense(KernelShape k, DType dt)
    {
        int T = k.Tokens, D = k.Dim, F = 4 * D;
        double s = dt.Size(), td = (double)T * D, tf = (double)T * F;
        var shape = $"T={T} D={D}";
        yield return new("layernorm", "forward", shape, dt, 0, s * 2 * td + 8.0 * T + 8.0 * D, (be, rnd) =>
        {
            var (x, g, b, y) = (rnd.Normal(be, dt, 1, T, D), rnd.Normal(be, DType.Float32, 0.1, D), rnd.Normal(be, DType.Float32, 0.1, D), be.Empty(new Shape(T, D), dt));
            var (mean, rstd) = (be.Empty(new Shape(T), DType.Float32), be.Empty(new Shape(T), DType.Float32));
            return () => LayerNorm.Forward(be, x, g, b, y, mean, rstd, 1e-5f);
        });
        yield return new("layernorm", "backward", shape, dt, 0, s * 3 * td + 8.0 * T + 12.0 * D, (be, rnd) =>
        {
            var (x, g, b, y) = (rnd.Normal(be, dt, 1, T, D), rnd.Normal(be, DType.Float32, 0.1, D), rnd.Normal(be, DType.Float32, 0.1, D), be.Empty(new Shape(T, D), dt));
            var (mean, rstd) = (be.Empty(new Shape(T), DType.Float32), be.Empty(new Shape(T), DType.Float32));
            LayerNorm.Forward(be, x, g, b, y, mean, rstd, 1e-5f);
            var (dy, dx, dg, db) = (rnd.Normal(be, dt, 1, T, D), be.Empty(x.Shape, dt), be.Empty(new Shape(D), DType.Float32), be.Empty(new Shape(D), DType.Float32));
            return () => LayerNorm.Backward(be, dy, x, g, mean, rstd, dx, dg, db);
        });
        yield return new("gelu", "forward", $"T={T} F={F}", dt, 0, s * 2 * tf, (be, rnd) =>
        {
            var (x, y) = (rnd.Normal(be, dt, 1, T, F), be.Empty(new Shape(T, F), dt));
            return () => Elementwise.Gelu(be, x, y);
        });
        yield return new("gelu", "backward", $"T={T} F={F}", dt, 0, s * 3 * tf, (be, rnd) =>
        {
            var (x, dy, dx) = (rnd.Normal(be, dt, 1, T, F), rnd.Normal(be, dt, 1, T, F), be.Empty(new Shape(T, F), dt));
            return () => Elementwise.GeluBackward(be, x, dy, dx);
        });
        // y = x·Wᵀ + b on cuBLAS (+ the bias kernel): 2·T·D·D FLOPs.
        yield return new("linear", "forward", $"T={T} in={D} out={D}", dt, 2.0 * T * D * D, s * (2 * td + (double)D * D + D), (be, rnd) =>
        {
            var (x, w, b, y) = (rnd.Normal(be, dt, 1, T, D), rnd.Normal(be, dt, 0.05, D, D), rnd.Normal(be, dt, 0.05, D), be.Empty(new Shape(T, D), dt));
            return () => LinearOp.Forward(be, x, w, b, y);
        });
        // dx = dy·W, dW = dyᵀ·x, db = Σ dy: 4·T·D·D FLOPs.
        yield return new("linear", "backward", $"T={T} in={D} out={D}", dt, 4.0 * T * D * D, s * (3 * td + (double)D * D) + 4.0 * (D * D + D), (be, rnd) =>
        {
            var (x, w, dy) = (rnd.Normal(be, dt, 1, T, D), rnd.Normal(be, dt, 0.05, D, D), rnd.Normal(be, dt, 1, T, D));
            var (dx, dw, db) = (be.Empty(x.Shape, dt), be.Empty(w.Shape, DType.Float32), be.Empty(new Shape(D), DType.Float32));
            return () => LinearOp.Backward(be, dy, x, w, dx, dw, db);
        });
    }
}
