using System.Numerics;
using TransformerLS.Conformance;
using TransformerLS.Tensors;
using static TransformerLS.Conformance.Case;

namespace TransformerLS.Ops;

// The DecodeLinear's cases (see Conformance/OpCases): test mode at widths that take each kernel (1 to 16 vectors a
// lane, K not a multiple of the 32 lanes' vectors), several outputs, a full tile of rows (the reduce-scatter; fp32), in
// bf16 the tensor-core kernel (4 to 16 rows: 13 with outputs off its 8-column tiles, 14 at
// K 2048; bf16 rows with K off 32 stay on the warp kernel), and the unfused chain (more than 16 rows: 20, 64 with LN and
// four outputs as a decode step's first map at batch 64, 66; K off the vectors); perf mode a decode step's
// query/key/value/score maps at batch 1, 8 and 64 (D → 3D + H·r with LN1 first).
public static partial class DecodeLinear
{
    static string F(string method) => $"{nameof(DecodeLinear)}.{method}";

    internal static IEnumerable<OpCase> Cases(DType dt)
    {
        yield return CaseAt(dt, "decode_linear_norm", [3, 1], 96, [40, 24, 8], [true, false, true], norm: true, gelu: false, accumulate: false);
        yield return CaseAt(dt, "decode_linear_gelu", [2, 1], 384, [72], [true], norm: true, gelu: true, accumulate: false);
        yield return CaseAt(dt, "decode_linear_accumulate", [5], 640, [48, 16], [true, false], norm: false, gelu: false, accumulate: true);
        yield return CaseAt(dt, "decode_linear_wide", [16], 2048, [24], [true], norm: false, gelu: false, accumulate: true);
        yield return CaseAt(dt, "decode_linear_two_tiles", [20], 64, [24], [true], norm: true, gelu: true, accumulate: false);
        yield return CaseAt(dt, "decode_linear_batch64", [64, 1], 128, [40, 40, 40, 8], [false, false, false, true], norm: true, gelu: false, accumulate: false);
        yield return CaseAt(dt, "decode_linear_batch64_acc", [64, 1], 256, [32], [true], norm: false, gelu: false, accumulate: true);
        yield return CaseAt(dt, "decode_linear_mma_norm", [13], 512, [24, 13], [true, false], norm: true, gelu: true, accumulate: false);
        yield return CaseAt(dt, "decode_linear_mma_wide", [2, 7], 2048, [20], [true], norm: false, gelu: false, accumulate: true);
        yield return CaseAt(dt, "decode_linear_many_rows", [66], 64, [24], [true], norm: true, gelu: true, accumulate: false);
        yield return CaseAt(dt, "decode_linear_rows_k40", [6], 40, [16, 8], [true, false], norm: true, gelu: false, accumulate: true); // bf16: K % 32 ≠ 0, the warp kernel
        yield return CaseAt(dt, "decode_linear_odd_k", [2], 36, [12], [false], norm: false, gelu: false, accumulate: false);
    }

    internal static IEnumerable<OpCase> PerfCases(KernelShape k, DType dt)
    {
        foreach (var b in new[] { 1, 8, 64 })
            yield return CaseAt(dt, "decode_linear_norm", [b, 1], k.Dim, [k.Dim, k.Dim, k.Dim, k.Heads * k.CausalRank], [false, false, false, true], norm: true, gelu: false, accumulate: false);
    }

    static OpCase CaseAt(DType dt, string op, int[] lead, int k, int[] n, bool[] bias, bool norm, bool gelu, bool accumulate)
    {
        var rows = lead.Aggregate(1, (a, b) => a * b);
        var shape = $"[{string.Join(",", lead)},{k}]->{string.Join("+", n)}{(norm ? " ln" : "")}{(gelu ? " gelu" : "")}{(accumulate ? " acc" : "")}";
        var f = DType.Float32;
        var ins = new List<InputSpec> { In("x", dt, 1, [.. lead, k]) };
        if (norm) { ins.Add(In("gamma", f, 1, k)); ins.Add(In("beta", f, 1, k)); }
        for (var j = 0; j < n.Length; j++)
        {
            ins.Add(In($"w{j}", dt, 1 / Math.Sqrt(k), n[j], k));
            if (bias[j]) ins.Add(In($"b{j}", dt, 1, n[j]));
            if (accumulate) ins.Add(In($"y0_{j}", dt, 1, [.. lead, n[j]]));
        }
        var outs = new List<OutputSpec>();
        if (norm) outs.Add(Out("xn", dt, [.. lead, k]));
        for (var j = 0; j < n.Length; j++) outs.Add(Out($"y{j}", dt, [.. lead, n[j]]));
        double s = dt.Size(), w = (double)k * n.Sum();
        return Make(F(nameof(Forward)), op, dt, shape, [.. ins], [.. outs], (be, i, o) =>
        {
            var at = norm ? 3 : 1;
            var outputs = new DecodeLinearOutput[n.Length];
            for (var j = 0; j < n.Length; j++)
            {
                var (wj, bj) = (i[at++], bias[j] ? i[at++] : null);
                var yj = o[(norm ? 1 : 0) + j];
                if (accumulate) Elementwise.Cast(be, i[at++], yj);
                outputs[j] = new(wj, bj, yj);
            }
            Forward(be, i[0], norm ? new DecodeLinearNorm(i[1], i[2], 1e-5f, o[0]) : null, outputs, gelu, accumulate);
        }, new DecodeLinearRef(rows, k, norm, n, bias, gelu, accumulate), 2.0 * rows * w, s * (w + rows * (k + n.Sum() * (accumulate ? 2 : 1))));
    }

    sealed record DecodeLinearRef(int Rows, int K, bool Norm, int[] N, bool[] Bias, bool Gelu, bool Accumulate) : IReference
    {
        public T[][] Run<T>(T[][] i, Func<T, T> stored) where T : IFloatingPointIeee754<T> =>
            Reference(Rows, K, Norm, 1e-5, N, Bias, Gelu, Accumulate, i, stored);
    }
}
