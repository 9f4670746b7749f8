using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>
/// The tensors one multi-tensor Adam step updates (<see cref="Optimizer.AdamStepAll"/>): per parameter its float32
/// weights (the master copy under mixed precision), gradient, two moments and an optional bf16 copy. The group does not
/// own them. On the GPU it holds the kernels' table of the tensors and of the chunks (blocks) they are cut into, written
/// to device memory once here: the tensors must stay where they are while the group is used (<see cref="Holds"/>).
/// </summary>
public sealed class AdamGroup : IDisposable
{
    /// <summary>One parameter's tensors, as <see cref="Optimizer.AdamStep"/> takes them.</summary>
    public readonly record struct Entry(Tensor Param, Tensor Grad, Tensor M, Tensor V, Tensor? Copy);

    /// <summary>Elements a chunk: one block of each launch; a tensor spans ⌈n / ChunkElements⌉ chunks.</summary>
    internal const int ChunkElements = 32768;

    readonly Entry[] _entries;
    internal IBackend Backend { get; }
    internal int Chunks { get; }
    /// <summary>GPU only: the AdamTensorParams table, the chunk-to-tensor map and the fp64 partial sums (one per chunk).</summary>
    internal Tensor? Table, ChunkMap, Partial;

    public AdamGroup(IBackend be, IReadOnlyList<Entry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        Backend = be;
        _entries = [.. entries];
        long chunks = 0;
        for (var i = 0; i < _entries.Length; i++)
        {
            var e = _entries[i];
            Optimizer.CheckAdamTensors(be, e.Param, e.Grad, e.M, e.V, e.Copy, $"entries[{i}].");
            chunks += (e.Param.Count + ChunkElements - 1) / ChunkElements;
        }
        if (chunks > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(entries), chunks, $"at most {int.MaxValue} chunks of {ChunkElements} elements");
        Chunks = (int)chunks;
        if (be is CudaBackend cuda && Chunks > 0) OptimizerCuda.WriteTable(cuda, this);
    }

    public IReadOnlyList<Entry> Entries => _entries;

    /// <summary>Whether entry <paramref name="i"/> still names these tensors (the table is valid for them).</summary>
    public bool Holds(int i, Tensor param, Tensor grad) =>
        ReferenceEquals(_entries[i].Param, param) && ReferenceEquals(_entries[i].Grad, grad) && !grad.IsDisposed && !param.IsDisposed;

    public void Dispose()
    {
        Table?.Dispose(); ChunkMap?.Dispose(); Partial?.Dispose();
        Table = ChunkMap = Partial = null;
    }
}
