using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The optimizer's cases (see Conformance/OpCases); dt is the gradient's dtype (weights and moments are float32).
public static partial class Optimizer
{
    static string F(string method) => $"{nameof(Optimizer)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt)
    {
        var f = DType.Float32;
        yield return Make(F(nameof(SumOfSquares)), "sum_of_squares", dt, "[3,1000]+acc", [In("x", dt, 1, 3, 1000), In("acc0", f, 1, 1)], [Out("acc", f, 1)],
            (be, i, o) => { Elementwise.Cast(be, i[1], o[0]); SumOfSquares(be, i[0], o[0]); }, new SumOfSquaresRef(), 2 * 3000, dt.Size() * 3000);
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
            yield return Make(F(nameof(AdamStep)), "adam_step", dt, $"[7,130] {name}{(copy ? " +bf16 copy" : "")}", ins, outs, (be, i, o) =>
            {
                Elementwise.Cast(be, i[0], o[0]); Elementwise.Cast(be, i[2], o[1]); Elementwise.Cast(be, i[3], o[2]);
                AdamStep(be, h, o[0], i[1], o[1], o[2], i[4], copy ? o[3] : null);
            }, new AdamRef(h, copy), bytes: 910.0 * (24 + dt.Size() + (copy ? 2 : 0)));
        }
        foreach (var c in AdamStepAllCases(dt)) yield return c;
    }

    /// <summary>
    /// The multi-tensor step over three parameters: [7,130] with a bf16 copy, [70000] (three chunks of the GPU's table, the
    /// last one partial) and [5]; clipped (Σ g² is in the hundreds), so every tensor's step depends on all gradients.
    /// </summary>
    static IEnumerable<OpCase> AdamStepAllCases(DType dt)
    {
        var h = new AdamHyper(Lr: 1e-2f, Step: 4, WeightDecay: 0.1f, MaxNorm: 0.5f);
        yield return AdamStepAllCase(dt, h, null);
        // The step's lr and number written to device memory (WriteAdamHyper) and read there: the h given to the step is ignored.
        yield return AdamStepAllCase(dt, h with { Lr = 3e-2f, Step = 9 }, h with { Lr = 0.5f, Step = 1 });
    }

    /// <param name="ignored">null: h goes to the step; else h is written by WriteAdamHyper and this one goes to the step.</param>
    static OpCase AdamStepAllCase(DType dt, AdamHyper h, AdamHyper? ignored)
    {
        var f = DType.Float32;
        int[][] shapes = [[7, 130], [70000], [5]];
        var ins = new List<InputSpec>();
        var outs = new List<OutputSpec>();
        for (var t = 0; t < shapes.Length; t++)
        {
            ins.AddRange([In($"param{t}", f, 1, shapes[t]), In($"grad{t}", dt, 1, shapes[t]), In($"m{t}", f, 0.1, shapes[t]),
                          new($"v{t}", new Shape(shapes[t]), f, InputKind.SoftmaxOfNormal)]);
            outs.AddRange([Out($"param{t}", f, shapes[t]), Out($"m{t}", f, shapes[t]), Out($"v{t}", f, shapes[t])]);
        }
        outs.Add(Out("copy0", DType.BFloat16, shapes[0]));
        outs.Add(Out("sumsq", f, 1));
        if (ignored is not null) outs.Add(Out("hyper", f, 4));
        var n = shapes.Sum(s => (double)s.Aggregate(1, (a, b) => a * b));
        var facade = ignored is null ? F(nameof(AdamStepAll)) : F(nameof(WriteAdamHyper));
        var op = ignored is null ? "adam_step_all" : "adam_step_all_hyper";
        return Make(facade, op, dt, "[7,130] +bf16 copy, [70000], [5] AdamW clipped", [.. ins], [.. outs], (be, i, o) =>
        {
            var entries = new AdamGroup.Entry[shapes.Length];
            for (var t = 0; t < shapes.Length; t++)
            {
                Elementwise.Cast(be, i[4 * t], o[3 * t]); Elementwise.Cast(be, i[4 * t + 2], o[3 * t + 1]); Elementwise.Cast(be, i[4 * t + 3], o[3 * t + 2]);
                entries[t] = new AdamGroup.Entry(o[3 * t], i[4 * t + 1], o[3 * t + 1], o[3 * t + 2], t == 0 ? o[9] : null);
            }
            using var group = new AdamGroup(be, entries);
            if (ignored is { } other)
            {
                WriteAdamHyper(be, o[11], h);
                AdamStepAll(be, other, group, o[10], null, o[11]);
            }
            else AdamStepAll(be, h, group, o[10]);
        }, new AdamAllRef(h, shapes.Length, ignored is not null), bytes: n * (24 + dt.Size()));
    }

    sealed record AdamAllRef(AdamHyper H, int Tensors, bool Hyper) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            var sum = T.Zero;
            for (var t = 0; t < Tensors; t++) sum += SumOfSquares<T>(i[4 * t + 1]);
            var clip = Clip(sum, T.CreateChecked(H.MaxNorm));
            var outs = new List<T[]>();
            for (var t = 0; t < Tensors; t++)
            {
                T[] w = (T[])i[4 * t].Clone(), m = (T[])i[4 * t + 2].Clone(), v = (T[])i[4 * t + 3].Clone();
                AdamStep<T>(H, w, i[4 * t + 1], m, v, clip);
                outs.AddRange([w, m, v]);
            }
            outs.Add((T[])outs[0].Clone());
            outs.Add([sum]);
            if (Hyper) outs.Add([T.CreateChecked(H.Lr), T.CreateChecked(H.Bias1), T.CreateChecked(H.Bias2), T.CreateChecked(H.Step)]);
            return [.. outs];
        }
    }

    sealed record SumOfSquaresRef : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T> => [[i[1][0] + SumOfSquares<T>(i[0])]];
    }

    sealed record AdamRef(AdamHyper H, bool Copy) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T>
        {
            T[] w = (T[])i[0].Clone(), m = (T[])i[2].Clone(), v = (T[])i[3].Clone();
            AdamStep<T>(H, w, i[1], m, v, Clip(i[4][0], T.CreateChecked(H.MaxNorm)));
            return Copy ? [w, m, v, (T[])w.Clone()] : [w, m, v];
        }
    }
}
