using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Checks and the reference draw of kernels/sampling/, generic over the arithmetic type.</summary>
public static partial class Sampling
{
    /// <summary>Largest V the GPU kernel sorts in one block's shared memory (TLS_SAMPLE_MAX_VOCAB).</summary>
    public const int MaxGpuVocab = 1024;

    internal static (int Rows, int Vocab) CheckRows(IBackend be, Tensor logits, Tensor uniforms, float temperature, int topK, float topP, Tensor tokens)
    {
        Check.On(be, logits, nameof(logits));
        if (logits.Shape.Rank != 2 || logits.Shape[1] < 1)
            throw new ArgumentException($"{nameof(logits)} has shape {logits.Shape}; expected [rows, vocabulary] with vocabulary >= 1", nameof(logits));
        int n = logits.Shape[0], v = logits.Shape[1];
        if (be is CudaBackend && v > MaxGpuVocab)
            throw new NotSupportedException($"{nameof(logits)} has a vocabulary of {v}; the GPU sampler sorts at most {MaxGpuVocab} a row");
        Check.Vector(be, uniforms, n, DType.Float32, nameof(uniforms));
        Check.Vector(be, tokens, n, DType.Float32, nameof(tokens));
        CheckOptions(temperature, topK, topP);
        return (n, v);
    }

    /// <summary>The draw options' ranges, for SampleRows and for SamplingOptions.Validate (each naming its own arguments).</summary>
    internal static void CheckOptions(float temperature, int topK, float topP,
        string temperatureName = "temperature", string topKName = "topK", string topPName = "topP")
    {
        if (!(temperature >= 0 && float.IsFinite(temperature))) throw new ArgumentOutOfRangeException(temperatureName, temperature, "the temperature must be a finite number >= 0");
        if (topK < 0) throw new ArgumentOutOfRangeException(topKName, topK, "top-k must be >= 0 (0: no cut)");
        if (!(topP > 0 && topP <= 1)) throw new ArgumentOutOfRangeException(topPName, topP, "top-p must be in (0, 1]");
    }

    /// <summary><see cref="DrawRow{T}"/> for every row of logits [N·V]; a negative uniform gives −1.</summary>
    internal static void Sample<T>(int v, ReadOnlySpan<T> logits, ReadOnlySpan<T> uniforms, float temperature, int topK, float topP, Span<T> tokens)
        where T : IFloatingPointIeee754<T>
    {
        var order = new int[v];
        var p = new T[v];
        for (var r = 0; r < tokens.Length; r++)
            tokens[r] = uniforms[r] < T.Zero ? -T.One : T.CreateChecked(DrawRow(logits.Slice(r * v, v), uniforms[r], temperature, topK, topP, order, p));
    }

    /// <summary>
    /// Whether <paramref name="token"/> is a draw from row x as right as the float64 rule's: the rule's own token for some
    /// draw within <paramref name="delta"/> of u and top-p within delta of its value (a float32 sampler's rounding moves a
    /// boundary between two tokens by ~1e-6 of the mass, and may land on either side of u).
    /// </summary>
    internal static bool Admissible(ReadOnlySpan<double> x, double u, float temperature, int topK, float topP, int token, double delta)
    {
        var (order, p) = (new int[x.Length], new double[x.Length]);
        if (temperature == 0) return token == DrawRow(x, u, 0, topK, topP, order, p);
        foreach (var tp in topP < 1 ? new[] { topP - (float)delta, topP, Math.Min(1f, topP + (float)delta) } : [topP])
        {
            var lo = DrawRow(x, Math.Max(0, u - delta), temperature, topK, tp, order, p);
            var hi = DrawRow(x, Math.Min(1 - 1e-12, u + delta), temperature, topK, tp, order, p);
            var (at, a, b) = (Array.IndexOf(order, token), Array.IndexOf(order, lo), Array.IndexOf(order, hi));
            if (at >= a && at <= b) return true;
        }
        return false;
    }

    /// <summary>
    /// The draw rule (the GPU kernel's too): temperature 0 is the first maximum. Otherwise the row is ordered by (value
    /// descending, index ascending), p_k = exp((x_k − max)/T), the order is cut to the top k (0: no cut) and then to the
    /// shortest prefix whose share of Σ p reaches top-p (1: no cut), and the token is the first k of the kept prefix whose
    /// running sum reaches u·(the kept mass). <paramref name="order"/> and <paramref name="p"/> are scratch of the row's length.
    /// </summary>
    internal static int DrawRow<T>(ReadOnlySpan<T> x, T u, float temperature, int topK, float topP, int[] order, T[] p) where T : IFloatingPointIeee754<T>
    {
        var best = 0;
        for (var c = 1; c < x.Length; c++) if (x[c] > x[best]) best = c;
        if (temperature == 0) return best;
        var v = x.Length;
        for (var c = 0; c < v; c++) order[c] = c;
        var row = x.ToArray();
        Array.Sort(order, 0, v, Comparer<int>.Create((a, b) => row[a] != row[b] ? row[b].CompareTo(row[a]) : a.CompareTo(b)));
        var t = T.CreateChecked(temperature);
        T sum = T.Zero;
        for (var k = 0; k < v; k++) sum += p[k] = T.Exp((x[order[k]] - x[best]) / t);
        var keep = topK > 0 ? Math.Min(topK, v) : v;
        if (topP < 1)
        {
            T mass = T.Zero, want = T.CreateChecked(topP);
            for (var k = 0; k < keep; k++)
                if ((mass += p[k] / sum) >= want) { keep = k + 1; break; }
        }
        T kept = T.Zero;
        for (var k = 0; k < keep; k++) kept += p[k];
        var target = u * kept;
        for (var k = 0; k < keep; k++)
            if ((target -= p[k]) <= T.Zero) return order[k];
        return order[keep - 1];
    }
}
