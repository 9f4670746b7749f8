using System.Numerics;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Checks and CPU reference of kernels/embedding/.</summary>
public static partial class Embedding
{
    /// <summary>
    /// The table [V, D] (weight, or dweight in the backward: <paramref name="tableName"/>); tokens float32 [N]; rows [N, D]
    /// (y, or dy); returns (N, V, D).
    /// </summary>
    internal static (int N, int Vocab, int Dim) CheckShapes(IBackend be, Tensor table, string tableName, Tensor tokens, Tensor rows, string rowsName)
    {
        Check.On(be, table, tableName);
        if (table.Shape.Rank != 2) throw new ArgumentException($"{tableName} has shape {table.Shape}; expected [vocab, dim]", tableName);
        Check.On(be, tokens, nameof(tokens));
        Check.DTypeIs(tokens, DType.Float32, nameof(tokens));
        if (tokens.Shape.Rank != 1) throw new ArgumentException($"{nameof(tokens)} has shape {tokens.Shape}; expected [N] (flatten batch and time)", nameof(tokens));
        int n = tokens.Shape[0], v = table.Shape[0], d = table.Shape[1];
        Check.On(be, rows, rowsName);
        Check.Dims(rows, rowsName, n, d);
        return (n, v, d);
    }

    /// <summary>Tokens must be integers below V (negative: padding); the CPU backend checks, the GPU cannot without a round trip.</summary>
    internal static void CheckTokens(ReadOnlySpan<double> tokens, int vocab)
    {
        for (var i = 0; i < tokens.Length; i++)
            if (tokens[i] >= vocab || tokens[i] != Math.Floor(tokens[i]) || double.IsNaN(tokens[i]))
                throw new ArgumentOutOfRangeException(nameof(tokens), tokens[i], $"tokens[{i}] must be an integer < {vocab} (negative: padding)");
    }

    internal static void Forward<T>(int dim, ReadOnlySpan<T> weight, ReadOnlySpan<T> tokens, Span<T> y) where T : IFloatingPointIeee754<T>
    {
        for (var i = 0; i < tokens.Length; i++)
        {
            var t = int.CreateTruncating(tokens[i]);
            for (var c = 0; c < dim; c++) y[i * dim + c] = t < 0 ? T.Zero : weight[t * dim + c];
        }
    }

    /// <summary>dweight[token_i] += dy[i].</summary>
    internal static void Backward<T>(int dim, ReadOnlySpan<T> tokens, ReadOnlySpan<T> dy, Span<T> dweight) where T : IFloatingPointIeee754<T>
    {
        for (var i = 0; i < tokens.Length; i++)
        {
            var t = int.CreateTruncating(tokens[i]);
            if (t < 0) continue;
            for (var c = 0; c < dim; c++) dweight[t * dim + c] += dy[i * dim + c];
        }
    }
}
