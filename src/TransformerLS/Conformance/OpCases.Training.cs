using System.Numerics;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Conformance;

/// <summary>The table's rows for the training-side families: embedding, cross-entropy and the optimizer.</summary>
internal static partial class OpCases
{
    static void AddCrossEntropy(List<OpCase> list, DType dt)
    {
        var f = DType.Float32;
        foreach (var (n, v) in new[] { (37, 50), (5, 300), (1, 1) })
        {
            var shape = $"[{n},{v}]";
            var target = new InputSpec("target", new Shape(n), f, InputKind.ClassIndex, Scale: v);
            list.Add(Make("cross_entropy", dt, shape, [In("logits", dt, 3, n, v), target], [Out("loss", f, n), Out("lse", f, n)],
                (be, i, o) => CrossEntropy.Forward(be, i[0], i[1], o[0], o[1]), new CrossEntropyRef(v, false)));
            list.Add(Make("cross_entropy_backward", dt, shape, [In("logits", dt, 3, n, v), target, In("dloss", f, 1, n)], [Out("dlogits", dt, n, v)],
                (be, i, o) =>
                {
                    var loss = be.Empty(new Shape(n), f);
                    var lse = be.Empty(new Shape(n), f);
                    CrossEntropy.Forward(be, i[0], i[1], loss, lse);
                    CrossEntropy.Backward(be, i[0], i[1], lse, i[2], o[0]);
                }, new CrossEntropyRef(v, true)));
        }
        if (dt != DType.Float32) return; // the loss mean is float32 whatever the logits
        foreach (var n in new[] { 37, 4099, 1 })
        {
            var target = new InputSpec("target", new Shape(n), f, InputKind.ClassIndex, Scale: 7);
            list.Add(Make("loss_mean", f, $"[{n}]", [In("loss", f, 3, n), target], [Out("mean", f, 1), Out("count", f, 1)],
                (be, i, o) => CrossEntropy.LossMean(be, i[0], i[1], o[0], o[1]), new LossMeanRef(false)));
            list.Add(Make("loss_mean_backward", f, $"[{n}]", [In("loss", f, 3, n), target, In("dmean", f, 1, 1)], [Out("dloss", f, n)],
                (be, i, o) =>
                {
                    var mean = be.Empty(new Shape(1), f);
                    var count = be.Empty(new Shape(1), f);
                    CrossEntropy.LossMean(be, i[0], i[1], mean, count);
                    CrossEntropy.LossMeanBackward(be, i[1], count, i[2], o[0]);
                }, new LossMeanRef(true)));
        }
    }

    sealed record LossMeanRef(bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            Ops.CrossEntropy.Mean<T>(i[0], i[1], out var mean, out var count);
            if (!Backward) return [[mean], [count]];
            var d = new T[i[1].Length];
            Ops.CrossEntropy.MeanBackward<T>(i[1], count, i[2][0], d);
            return [d];
        }
    }

    static void AddEmbedding(List<OpCase> list, DType dt)
    {
        var f = DType.Float32;
        foreach (var (n, v, d) in new[] { (45, 20, 33), (3, 256, 64) })
        {
            var shape = $"N{n} V{v} D{d}";
            var tokens = new InputSpec("tokens", new Shape(n), f, InputKind.ClassIndex, Scale: v);  // some −1: padding
            list.Add(Make("embedding", dt, shape, [In("weight", dt, 1, v, d), tokens], [Out("y", dt, n, d)],
                (be, i, o) => Embedding.Forward(be, i[0], i[1], o[0]), new EmbeddingRef(d, false)));
            list.Add(Make("embedding_backward", dt, shape + " accumulate", [tokens, In("dy", dt, 1, n, d), In("dweight0", f, 1, v, d)], [Out("dweight", f, v, d)],
                (be, i, o) => { Elementwise.Cast(be, i[2], o[0]); Embedding.Backward(be, i[0], i[1], o[0], accumulate: true); }, new EmbeddingRef(d, true)));
        }
    }

    sealed record EmbeddingRef(int Dim, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            if (Backward)
            {
                var dw = (T[])i[2].Clone();
                Ops.Embedding.Backward<T>(Dim, i[0], i[1], dw);
                return [dw];
            }
            var y = new T[i[1].Length * Dim];
            Ops.Embedding.Forward<T>(Dim, i[0], i[1], y);
            return [y];
        }
    }

    sealed record CrossEntropyRef(int Vocab, bool Backward) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var n = i[1].Length;
            T[] loss = new T[n], lse = new T[n];
            Ops.CrossEntropy.Forward<T>(Vocab, i[0], i[1], loss, lse);
            if (!Backward) return [loss, lse];
            var dx = new T[i[0].Length];
            Ops.CrossEntropy.Backward<T>(Vocab, i[0], i[1], lse, i[2], dx);
            return [dx];
        }
    }

    /// <summary>dt is the gradient's dtype (weights and moments are float32).</summary>
    static void AddOptimizer(List<OpCase> list, DType dt)
    {
        var f = DType.Float32;
        list.Add(Make("sum_of_squares", dt, "[3,1000]+acc", [In("x", dt, 1, 3, 1000), In("acc0", f, 1, 1)], [Out("acc", f, 1)],
            (be, i, o) => { Elementwise.Cast(be, i[1], o[0]); Optimizer.SumOfSquares(be, i[0], o[0]); }, new SumOfSquaresRef()));
        foreach (var (h, name, copy) in new[]
        {
            (new AdamHyper(Lr: 1e-2f, Step: 3, WeightDecay: 0.1f, MaxNorm: 0.5f), "AdamW clipped", false),
            (new AdamHyper(Lr: 3e-3f, Step: 1, WeightDecay: 0.05f, Decoupled: false, MaxNorm: 5f), "Adam L2", true),
        })
        {
            InputSpec[] ins =
            [
                In("param", f, 1, 7, 130), In("grad", dt, 1, 7, 130), In("m", f, 0.1, 7, 130),
                new("v", new Shape(7, 130), f, InputKind.SoftmaxOfNormal),  // second moments are >= 0
                new("sumsq", new Shape(1), f, InputKind.SoftmaxOfNormal),   // 1: clips where MaxNorm < 1
            ];
            OutputSpec[] outs = [Out("param", f, 7, 130), Out("m", f, 7, 130), Out("v", f, 7, 130), .. copy ? new[] { Out("copy", DType.BFloat16, 7, 130) } : []];
            list.Add(Make("adam_step", dt, $"[7,130] {name}{(copy ? " +bf16 copy" : "")}", ins, outs, (be, i, o) =>
            {
                Elementwise.Cast(be, i[0], o[0]); Elementwise.Cast(be, i[2], o[1]); Elementwise.Cast(be, i[3], o[2]);
                Optimizer.AdamStep(be, h, o[0], i[1], o[1], o[2], i[4], copy ? o[3] : null);
            }, new AdamRef(h, copy)));
        }
    }

    sealed record SumOfSquaresRef : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T> => [[i[1][0] + Optimizer.SumOfSquares<T>(i[0])]];
    }

    sealed record AdamRef(AdamHyper H, bool Copy) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            T[] w = (T[])i[0].Clone(), m = (T[])i[2].Clone(), v = (T[])i[3].Clone();
            Optimizer.AdamStep<T>(H, w, i[1], m, v, Optimizer.Clip(i[4][0], T.CreateChecked(H.MaxNorm)));
            return Copy ? [w, m, v, (T[])w.Clone()] : [w, m, v];
        }
    }
}
