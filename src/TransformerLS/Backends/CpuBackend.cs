using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Backends;

/// <summary>
/// The reference backend: every op reads its inputs exactly, computes in float64 with the generic reference
/// in Ops/, and rounds each output once to its dtype. Used by every GPU test, by CI and where no GPU is.
/// It alone holds float64 tensors (a float64 model is the reference for model-level finite differences).
/// </summary>
public sealed class CpuBackend : IBackend
{
    /// <summary>The shared instance; tests that assert memory statistics make their own.</summary>
    public static readonly CpuBackend Instance = new();
    long _live, _peak, _liveCount, _total;

    public Device Device => Device.Cpu;

    public Cuda.AllocatorStats MemoryStats => new(Interlocked.Read(ref _live), Interlocked.Read(ref _peak),
        Interlocked.Read(ref _liveCount), Interlocked.Read(ref _total));

    public void ResetPeak() => Interlocked.Exchange(ref _peak, Interlocked.Read(ref _live));

    public Tensor Empty(Shape shape, DType dtype)
    {
        var bytes = shape.Count * dtype.Size();
        if (bytes > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(shape), shape.ToString(), $"a CPU tensor holds at most {Array.MaxLength} bytes; {bytes} asked");
        var t = new Tensor(this, shape, dtype, new byte[bytes], 0, owns: true);
        // Counted like the CUDA allocator (an empty tensor counts one byte), so memory plans check on both backends.
        var live = Interlocked.Add(ref _live, Math.Max(bytes, 1));
        Interlocked.Increment(ref _liveCount);
        Interlocked.Increment(ref _total);
        long peak;
        while (live > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, live, peak) != peak) { }
        return t;
    }

    public void Fill(Tensor t, float value)
    {
        Check.On(this, t, nameof(t));
        switch (t.DType)
        {
            case DType.Float32: t.HostFloats.Fill(value); break;
            case DType.BFloat16: t.HostBFloat16.Fill(BFloat16.FromFloat(value)); break;
            default: t.HostDoubles.Fill(value); break;
        }
    }

    public void CopyFromHost(Tensor t, ReadOnlySpan<byte> bytes) => bytes.CopyTo(t.HostBytes);
    public void CopyToHost(Tensor t, Span<byte> bytes) => t.HostBytes.CopyTo(bytes);
    void IBackend.Free(ulong devicePointer, long bytes)
    {
        Interlocked.Add(ref _live, -Math.Max(bytes, 1));
        Interlocked.Decrement(ref _liveCount);
    }
    public void Synchronize() { }
    public void Dispose() { }

    /// <summary>The tensor's values, widened exactly to float64.</summary>
    public static double[] Read(Tensor t)
    {
        var r = new double[t.Count];
        t.DType.Decode(t.HostBytes, r);
        return r;
    }

    /// <summary>Stores float64 results, rounded once to the tensor's dtype.</summary>
    public static void Write(Tensor t, ReadOnlySpan<double> v)
    {
        t.DType.Encode(v, t.HostBytes);
    }

    public void Axpby(Tensor a, float alpha, Tensor? b, float beta, Tensor y)
    {
        Elementwise.CheckAxpby(this, a, b, y);
        var r = new double[y.Count];
        Elementwise.Axpby<double>(Read(a), alpha, b is null ? default : Read(b), beta, r);
        Write(y, r);
    }

    delegate void Map(ReadOnlySpan<double> x, Span<double> y);
    delegate void Map2(ReadOnlySpan<double> x, ReadOnlySpan<double> dy, Span<double> dx);

    void Activation(Tensor x, Tensor y, Map f)
    {
        Elementwise.CheckUnary(this, x, y);
        var r = new double[y.Count];
        f(Read(x), r);
        Write(y, r);
    }

    void ActivationBackward(Tensor x, Tensor dy, Tensor dx, Map2 f)
    {
        Elementwise.CheckUnary(this, x, dx, dy);
        var r = new double[dx.Count];
        f(Read(x), Read(dy), r);
        Write(dx, r);
    }

    public void Gelu(Tensor x, Tensor y) => Activation(x, y, Elementwise.Gelu);
    public void GeluBackward(Tensor x, Tensor dy, Tensor dx) => ActivationBackward(x, dy, dx, Elementwise.GeluBackward);
    public void Relu(Tensor x, Tensor y) => Activation(x, y, Elementwise.Relu);
    public void ReluBackward(Tensor x, Tensor dy, Tensor dx) => ActivationBackward(x, dy, dx, Elementwise.ReluBackward);

    public void Dropout(Tensor x, Tensor y, float p, ulong seed)
    {
        Elementwise.CheckDropout(this, x, y, p);
        var r = new double[y.Count];
        Elementwise.Dropout<double>(Read(x), r, p, seed);
        Write(y, r);
    }

    public void BiasAdd(Tensor x, Tensor bias, Tensor y)
    {
        Elementwise.CheckBiasAdd(this, x, bias, y);
        var r = new double[y.Count];
        Elementwise.BiasAdd<double>(Read(x), Read(bias), r);
        Write(y, r);
    }

    public void Cast(Tensor x, Tensor y)
    {
        Elementwise.CheckCast(this, x, y);
        Write(y, Read(x));
    }

    public void CrossEntropy(Tensor logits, Tensor target, Tensor loss, Tensor lse)
    {
        var (n, v) = Ops.CrossEntropy.CheckShapes(this, logits, target, loss, lse);
        var t = Read(target);
        Ops.CrossEntropy.CheckTargets(t, v);
        double[] l = new double[n], s = new double[n];
        Ops.CrossEntropy.Forward<double>(v, Read(logits), t, l, s);
        Write(loss, l); Write(lse, s);
    }

    public void CrossEntropyBackward(Tensor logits, Tensor target, Tensor lse, Tensor dloss, Tensor dlogits)
    {
        var (_, v) = Ops.CrossEntropy.CheckShapes(this, logits, target, dloss, lse, nameof(dloss));
        Check.Like(this, dlogits, logits, nameof(dlogits));
        var t = Read(target);
        Ops.CrossEntropy.CheckTargets(t, v);
        var r = new double[dlogits.Count];
        Ops.CrossEntropy.Backward<double>(v, Read(logits), t, Read(lse), Read(dloss), r);
        Write(dlogits, r);
    }

    public void LossMean(Tensor loss, Tensor target, Tensor mean, Tensor count)
    {
        Ops.CrossEntropy.CheckMean(this, loss, target, mean, count);
        Ops.CrossEntropy.Mean<double>(Read(loss), Read(target), out var m, out var c);
        Write(mean, [m]); Write(count, [c]);
    }

    public void LossMeanBackward(Tensor target, Tensor count, Tensor dmean, Tensor dloss)
    {
        Ops.CrossEntropy.CheckMean(this, dloss, target, dmean, count, nameof(dloss), nameof(dmean));
        var r = new double[dloss.Count];
        Ops.CrossEntropy.MeanBackward<double>(Read(target), Read(count)[0], Read(dmean)[0], r);
        Write(dloss, r);
    }

    public void Embedding(Tensor weight, Tensor tokens, Tensor y)
    {
        var (n, v, d) = Ops.Embedding.CheckShapes(this, weight, nameof(weight), tokens, y, nameof(y));
        Check.DTypeIs(y, weight.DType, nameof(y));
        var t = Read(tokens);
        Ops.Embedding.CheckTokens(t, v);
        var r = new double[(long)n * d];
        Ops.Embedding.Forward<double>(d, Read(weight), t, r);
        Write(y, r);
    }

    public void EmbeddingBackward(Tensor tokens, Tensor dy, Tensor dweight, bool accumulate = false)
    {
        var (_, v, d) = Ops.Embedding.CheckShapes(this, dweight, nameof(dweight), tokens, dy, nameof(dy));
        Check.DTypeIs(dweight, DType.Float32, nameof(dweight));
        var t = Read(tokens);
        Ops.Embedding.CheckTokens(t, v);
        var r = accumulate ? Read(dweight) : new double[dweight.Count];
        Ops.Embedding.Backward<double>(d, t, Read(dy), r);
        Write(dweight, r);
    }

    public void SumOfSquares(Tensor x, Tensor acc)
    {
        Ops.Optimizer.CheckSumOfSquares(this, x, acc);
        Write(acc, [Read(acc)[0] + Ops.Optimizer.SumOfSquares<double>(Read(x))]);
    }

    public void AdamStep(in Ops.AdamHyper h, Tensor param, Tensor grad, Tensor m, Tensor v, Tensor? sumSquares = null, Tensor? copy = null)
    {
        Ops.Optimizer.CheckAdam(this, h, param, grad, m, v, sumSquares, copy);
        var clip = sumSquares is null ? 1.0 : Ops.Optimizer.Clip(Read(sumSquares)[0], (double)h.MaxNorm);
        double[] w = Read(param), mm = Read(m), vv = Read(v);
        Ops.Optimizer.AdamStep<double>(h, w, Read(grad), mm, vv, clip);
        Write(param, w); Write(m, mm); Write(v, vv);
        if (copy is not null) Write(copy, w);
    }

    public void AddTo(Tensor x, Tensor y)
    {
        Elementwise.CheckAddTo(this, x, y);
        var r = Read(y);
        var a = Read(x);
        for (var i = 0; i < r.Length; i++) r[i] += a[i];
        Write(y, r);
    }

    public void ColumnSum(Tensor x, Tensor y, float beta = 0f)
    {
        Elementwise.CheckColumnSum(this, x, y);
        var r = beta == 0 ? new double[y.Count] : Read(y);
        Elementwise.ColumnSum<double>(Read(x), r, beta);
        Write(y, r);
    }

    public void SwapAxes12(Tensor x, Tensor y)
    {
        var (a, b, c, d) = Ops.Layout.CheckSwap(this, x, y);
        var r = new double[y.Count];
        Ops.Layout.SwapAxes12(a, b, c, d, Read(x), r);
        Write(y, r);
    }

    public void CopySlice(Tensor src, int srcOffset, Tensor dst, int dstOffset, int axis, int length, bool accumulate = false)
    {
        var g = Ops.Layout.CheckSlice(this, src, srcOffset, dst, dstOffset, axis, length);
        var r = Read(dst);
        Ops.Layout.CopySlice(g, Read(src), r, accumulate);
        Write(dst, r);
    }

    public void DualLayerNorm(Tensor xk, Tensor? xv, Tensor gamma, Tensor beta, Tensor yk, Tensor? yv, Tensor mean, Tensor rstd, float eps)
    {
        var g = Ops.DualLayerNorm.CheckForward(this, xk, xv, gamma, beta, yk, yv, mean, rstd, eps);
        double[] m = new double[mean.Count], s = new double[rstd.Count];
        var (gm, bt) = (Read(gamma), Read(beta));
        foreach (var (x, y, at) in new[] { (xk, yk, 0), (xv, yv, 1) })
        {
            if (x is null) continue;
            var r = new double[y!.Count];
            Ops.DualLayerNorm.Forward(g, Read(x), gm, bt, r, m.AsSpan(at * g.Rows, g.Rows), s.AsSpan(at * g.Rows, g.Rows), eps);
            Write(y, r);
        }
        Write(mean, m);
        Write(rstd, s);
    }

    public void DualLayerNormBackward(Tensor dyk, Tensor? dyv, Tensor xk, Tensor? xv, Tensor gamma, Tensor mean, Tensor rstd,
        Tensor dxk, Tensor? dxv, Tensor dgamma, Tensor dbeta)
    {
        var g = Ops.DualLayerNorm.CheckBackward(this, dyk, dyv, xk, xv, gamma, mean, rstd, dxk, dxv, dgamma, dbeta);
        double[] dg = new double[dgamma.Count], db = new double[dbeta.Count], m = Read(mean), s = Read(rstd), gm = Read(gamma);
        foreach (var (dy, x, dx, at) in new[] { (dyk, xk, dxk, 0), (dyv, xv, dxv, 1) })
        {
            if (x is null) continue;
            var r = new double[dx!.Count];
            Ops.DualLayerNorm.Backward(g, Read(dy!), Read(x), gm, m.AsSpan(at * g.Rows, g.Rows), s.AsSpan(at * g.Rows, g.Rows), r, dg, db);
            Write(dx, r);
        }
        Write(dgamma, dg);
        Write(dbeta, db);
    }

    public void MatMul(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha = 1f, float beta = 0f)
    {
        var g = Ops.MatMul.CheckShapes(this, a, transA, b, transB, c);
        var r = beta == 0 ? new double[c.Count] : Read(c);
        Ops.MatMul.Reference<double>(g, Read(a), transA, Read(b), transB, r, alpha, beta);
        Write(c, r);
    }

    public void LayerNorm(Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor? mean, Tensor? rstd, float eps)
    {
        var (rows, cols) = Ops.LayerNorm.CheckForward(this, x, gamma, beta, y, mean, rstd, eps);
        double[] r = new double[y.Count], m = new double[rows], s = new double[rows];
        Ops.LayerNorm.Forward<double>(rows, cols, Read(x), Read(gamma), Read(beta), r, m, s, eps);
        Write(y, r);
        if (mean is not null) { Write(mean, m); Write(rstd!, s); }
    }

    public void LayerNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx, Tensor dgamma, Tensor dbeta, bool accumulate = false)
    {
        var (rows, cols) = Ops.LayerNorm.CheckBackward(this, dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
        var r = new double[dx.Count];
        double[] dg = accumulate ? Read(dgamma) : new double[cols], db = accumulate ? Read(dbeta) : new double[cols];
        Ops.LayerNorm.Backward<double>(rows, cols, Read(dy), Read(x), Read(gamma), Read(mean), Read(rstd), r, dg, db, accumulate);
        Write(dx, r); Write(dgamma, dg); Write(dbeta, db);
    }

    public void Softmax(Tensor x, Tensor y, int axis)
    {
        var g = Ops.Softmax.CheckShapes(this, x, y, axis);
        var r = new double[y.Count];
        Ops.Softmax.Forward<double>(g, Read(x), r);
        Write(y, r);
    }

    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx, int axis)
    {
        var g = Ops.Softmax.CheckShapes(this, y, dx, axis, dy);
        var r = new double[dx.Count];
        Ops.Softmax.Backward<double>(g, Read(y), Read(dy), r);
        Write(dx, r);
    }

    public void LsAttention(LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask, Tensor o, Tensor lse)
    {
        var g = Ops.LsAttention.CheckForward(this, cfg, q, k, v, kbar, vbar, mask, o, lse);
        double[] r = new double[o.Count], l = new double[lse.Count];
        Ops.LsAttention.Forward(g, Read(q), Read(k), Read(v), Read(kbar), Read(vbar), mask is null ? [] : Read(mask), r, l);
        Write(o, r);
        Write(lse, l);
    }

    public void LsAttentionBackward(LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask,
        Tensor o, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv, Tensor dkbar, Tensor dvbar)
    {
        var g = Ops.LsAttention.CheckBackward(this, cfg, q, k, v, kbar, vbar, mask, o, lse, dout, dq, dk, dv, dkbar, dvbar);
        double[] gq = new double[dq.Count], gk = new double[dk.Count], gv = new double[dv.Count], gkb = new double[dkbar.Count], gvb = new double[dvbar.Count];
        Ops.LsAttention.Backward(g, Read(q), Read(k), Read(v), Read(kbar), Read(vbar), mask is null ? [] : Read(mask),
            Read(o), Read(lse), Read(dout), gq, gk, gv, gkb, gvb);
        Write(dq, gq); Write(dk, gk); Write(dv, gv); Write(dkbar, gkb); Write(dvbar, gvb);
    }

    public void LsClsAttention(Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse)
    {
        var g = Ops.LsClsAttention.CheckForward(this, q, k, v, c, mask, o, lse);
        double[] r = new double[o.Count], l = new double[lse.Count];
        Ops.LsClsAttention.Forward(g, Read(q), Read(k), Read(v), Read(c), mask is null ? [] : Read(mask), r, l);
        Write(o, r);
        Write(lse, l);
    }

    public void LsClsAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse, Tensor dout,
        Tensor dq, Tensor dk, Tensor dv, Tensor dc, bool accumulate = false)
    {
        var g = Ops.LsClsAttention.CheckBackward(this, q, k, v, c, mask, o, lse, dout, dq, dk, dv, dc);
        double[] gq = new double[dq.Count], gk = new double[dk.Count], gv = new double[dv.Count], gc = accumulate ? Read(dc) : new double[dc.Count];
        Ops.LsClsAttention.Backward(g, Read(q), Read(k), Read(v), Read(c), mask is null ? [] : Read(mask), Read(o), Read(lse), Read(dout),
            gq, gk, gv, gc, accumulate);
        Write(dq, gq); Write(dk, gk); Write(dv, gv); Write(dc, gc);
    }

    public void LsCausalAttention(LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse)
    {
        var g = Ops.LsCausalAttention.CheckForward(this, cfg, x, o, lse);
        double[] r = new double[o.Count], l = new double[lse.Count];
        Ops.LsCausalAttention.Forward(g, Read(x), r, l);
        Write(o, r);
        Write(lse, l);
    }

    public void LsCausalAttentionBackward(LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse, Tensor dout, in LsCausalGradients grads)
    {
        var g = Ops.LsCausalAttention.CheckBackward(this, cfg, x, o, lse, dout, grads);
        var gr = new LsCausalData<double>(new double[grads.DQ.Count], new double[grads.DK.Count], new double[grads.DV.Count], new double[grads.DU.Count],
            new double[grads.DVBias.Count], new double[grads.DRel.Count], new double[grads.DKC.Count], new double[grads.DVC.Count], new double[grads.DRelC.Count], []);
        Ops.LsCausalAttention.Backward(g, Read(x), Read(o), Read(lse), Read(dout), gr);
        Write(grads.DQ, gr.Q); Write(grads.DK, gr.K); Write(grads.DV, gr.V); Write(grads.DU, gr.U); Write(grads.DVBias, gr.VBias);
        Write(grads.DRel, gr.Rel); Write(grads.DKC, gr.KC); Write(grads.DVC, gr.VC); Write(grads.DRelC, gr.RelC);
    }

    static LsCausalData<double> Read(in LsCausalInputs x) => new(Read(x.Q), Read(x.K), Read(x.V), Read(x.U), Read(x.VBias), Read(x.Rel),
        Read(x.KC), Read(x.VC), Read(x.RelC), x.Mask is null ? [] : Read(x.Mask));

    public void LsChunkProjection(int chunk, Tensor scores, Tensor x, Tensor? mask, Tensor y)
    {
        var g = Ops.LsChunkProjection.CheckForward(this, chunk, scores, x, mask, y);
        var r = new double[y.Count];
        Ops.LsChunkProjection.Forward(g, Read(scores), Read(x), mask is null ? [] : Read(mask), r);
        Write(y, r);
    }

    public void LsChunkProjectionBackward(int chunk, Tensor scores, Tensor x, Tensor? mask, Tensor dy, Tensor dscores, Tensor dx, bool accumulate = false)
    {
        var g = Ops.LsChunkProjection.CheckBackward(this, chunk, scores, x, mask, dy, dscores, dx);
        double[] ds = accumulate ? Read(dscores) : new double[dscores.Count], gx = accumulate ? Read(dx) : new double[dx.Count];
        Ops.LsChunkProjection.Backward(g, Read(scores), Read(x), mask is null ? [] : Read(mask), Read(dy), ds, gx, accumulate);
        Write(dscores, ds);
        Write(dx, gx);
    }

    public void LsProjection(Tensor scores, Tensor k, Tensor v, Tensor? mask, Tensor kbar, Tensor vbar, Tensor colmax, Tensor colsum)
    {
        var g = Ops.LsProjection.CheckForward(this, scores, k, v, mask, kbar, vbar, colmax, colsum);
        double[] s = Read(scores), m = mask is null ? [] : Read(mask), kb = new double[kbar.Count], vb = new double[vbar.Count];
        Ops.LsProjection.Forward(g, s, Read(k), Read(v), m, kb, vb);
        Write(kbar, kb);
        Write(vbar, vb);
        // The saved statistics, in the kernel's layout, so either backend's backward can follow either forward.
        double[] cm = new double[colmax.Count], cs = new double[colsum.Count];
        int hr = g.H * g.R;
        for (var b = 0; b < g.B; b++)
            for (var c = 0; c < hr; c++)
                (cm[b * hr + c], cs[b * hr + c]) = Ops.LsProjection.ColumnStats(g, s, m, b, c);
        Write(colmax, cm);
        Write(colsum, cs);
    }

    public void LsProjectionBackward(Tensor scores, Tensor k, Tensor v, Tensor? mask, Tensor colmax, Tensor colsum,
        Tensor dkbar, Tensor dvbar, Tensor dscores, Tensor dk, Tensor dv, bool accumulate = false)
    {
        var g = Ops.LsProjection.CheckBackward(this, scores, k, v, mask, colmax, colsum, dkbar, dvbar, dscores, dk, dv);
        double[] ds = new double[dscores.Count], gk = new double[dk.Count], gv = new double[dv.Count];
        Ops.LsProjection.Backward(g, Read(scores), Read(k), Read(v), mask is null ? [] : Read(mask), Read(dkbar), Read(dvbar), ds, gk, gv);
        if (accumulate)
        {
            var (ok, ov) = (Read(dk), Read(dv));
            for (var i = 0; i < gk.Length; i++) { gk[i] += ok[i]; gv[i] += ov[i]; }
        }
        Write(dscores, ds); Write(dk, gk); Write(dv, gv);
    }
}
