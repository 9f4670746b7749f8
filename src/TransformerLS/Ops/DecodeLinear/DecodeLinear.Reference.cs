using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

public static partial class DecodeLinear
{
    /// <summary>Checks the arguments once; returns (rows of x, K).</summary>
    internal static (int Rows, int K) Check(IBackend be, Tensor x, DecodeLinearNorm? norm, ReadOnlySpan<DecodeLinearOutput> outputs, bool gelu, bool accumulate)
    {
        Tensors.Check.On(be, x, nameof(x));
        Tensors.Check.RankAtLeast(x, 2, nameof(x));
        int k = x.Shape[-1], rows = checked((int)(x.Count / Math.Max(1, k)));
        if (outputs.Length is < 1 or > MaxOutputs)
            throw new ArgumentException($"outputs has {outputs.Length} entries; expected 1 to {MaxOutputs}", nameof(outputs));
        if (gelu && accumulate) throw new ArgumentException("gelu and accumulate cannot both be set (GELU is of the stored sum, not of a residual)", nameof(gelu));
        if (norm is { } n)
        {
            Tensors.Check.Vector(be, n.Gamma, k, DType.Float32, "norm.Gamma");
            Tensors.Check.Vector(be, n.Beta, k, DType.Float32, "norm.Beta");
            Tensors.Check.Like(be, n.Normed, x, "norm.Normed");
            Tensors.Check.Positive(n.Eps, "norm.Eps");
            if (ReferenceEquals(n.Normed, x)) throw new ArgumentException("norm.Normed must not be x (every block reads x)", "norm.Normed");
        }
        for (var j = 0; j < outputs.Length; j++)
        {
            var (w, b, y) = outputs[j];
            Tensors.Check.On(be, w, $"outputs[{j}].Weight");
            Tensors.Check.DTypeIs(w, x.DType, $"outputs[{j}].Weight");
            if (w.Shape.Rank != 2 || w.Shape[1] != k)
                throw new ArgumentException($"outputs[{j}].Weight has shape {w.Shape}; expected [out, {k}] for x of shape {x.Shape}", "outputs");
            if (b is not null) Tensors.Check.Vector(be, b, w.Shape[0], x.DType, $"outputs[{j}].Bias");
            Tensors.Check.On(be, y, $"outputs[{j}].Y");
            Tensors.Check.DTypeIs(y, x.DType, $"outputs[{j}].Y");
            if (y.Shape.Rank != x.Shape.Rank || y.Shape[-1] != w.Shape[0] || !y.Shape.Dims[..^1].SequenceEqual(x.Shape.Dims[..^1]))
                throw new ArgumentException($"outputs[{j}].Y has shape {y.Shape}; expected x's leading dims {x.Shape} with last {w.Shape[0]}", "outputs");
            if (ReferenceEquals(y, x) || (norm is { } m && ReferenceEquals(y, m.Normed)))
                throw new ArgumentException($"outputs[{j}].Y must not be x or norm.Normed (they are read while it is written)", "outputs");
        }
        return (rows, k);
    }

    /// <summary>
    /// The generic reference: n = stored(LayerNorm(x)) or x; z_j = n·W_jᵀ + b_j (+ y0_j); y_j = stored(GELU(stored(z_j))) or z_j.
    /// Inputs [x, (γ, β), then per output W_j, (b_j), (y0_j)]; outputs [(n), y_0, …].
    /// </summary>
    internal static T[][] Reference<T>(int rows, int k, bool normed, double eps, int[] n, bool[] bias, bool gelu, bool accumulate, T[][] i, Func<T, T> stored)
        where T : IFloatingPointIeee754<T>
    {
        var at = 1;
        var x = i[0];
        var outs = new List<T[]>();
        if (normed)
        {
            var y = new T[rows * k];
            LayerNorm.Forward<T>(rows, k, x, i[1], i[2], y, new T[rows], new T[rows], T.CreateChecked(eps));
            for (var e = 0; e < y.Length; e++) y[e] = stored(y[e]);
            (x, at) = (y, 3);
            outs.Add(y);
        }
        for (var j = 0; j < n.Length; j++)
        {
            var w = i[at++];
            var b = bias[j] ? i[at++] : null;
            var z = accumulate ? (T[])i[at++].Clone() : new T[rows * n[j]];
            MatMul.Reference<T>(new(1, rows, n[j], k, 0, 0, 0), x, false, w, true, z, T.One, accumulate ? T.One : T.Zero);
            if (b is not null) Elementwise.BiasAdd<T>(z, b, z);
            if (gelu)
            {
                for (var e = 0; e < z.Length; e++) z[e] = stored(z[e]);
                Elementwise.Gelu<T>(z, z);
            }
            outs.Add(z);
        }
        return [.. outs];
    }
}
