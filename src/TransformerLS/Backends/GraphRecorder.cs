using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Backends;

/// <summary>
/// The CUDA-specific half of graph replay: records what a run queues on the backend's stream as a CUDA graph, and
/// holds the run seed (8 bytes of device memory) that dropout reads when a replay runs, so replays draw fresh masks.
/// <see cref="For"/> gives none on a backend that cannot record (the CPU).
/// </summary>
internal sealed class GraphRecorder : IDisposable
{
    readonly CudaBackend _cuda;

    GraphRecorder(CudaBackend cuda)
    {
        _cuda = cuda;
        using (TensorScope.Detach()) RunSeed = cuda.Empty(new Shape(2), DType.Float32); // owned here, not by a caller's scope
    }

    /// <summary>A recorder for <paramref name="backend"/>, or null where it cannot record graphs.</summary>
    public static GraphRecorder? For(IBackend backend) => backend is CudaBackend cuda ? new GraphRecorder(cuda) : null;

    /// <summary>The 64-bit run seed (as a float32 [2] tensor's bits), rewritten before each replay.</summary>
    public Tensor RunSeed { get; }

    /// <summary>Records what <paramref name="run"/> queues (nothing runs) and instantiates it.</summary>
    public CudaGraph Record(Action run) => CudaGraph.Capture(_cuda.Stream, run);

    /// <summary>Writes <paramref name="seed"/> into <see cref="RunSeed"/> (two stream-ordered memsets) and launches <paramref name="graph"/>.</summary>
    public void Replay(CudaGraph graph, ulong seed)
    {
        CudaMemory.Fill32(_cuda.Stream, RunSeed.DevicePointer, (uint)seed, 1);
        CudaMemory.Fill32(_cuda.Stream, RunSeed.DevicePointer + 4, (uint)(seed >> 32), 1);
        graph.Launch(_cuda.Stream);
    }

    /// <summary>Waits for the last replay, so graphs can be destroyed after it.</summary>
    public void Synchronize() => _cuda.Synchronize();

    public void Dispose() => RunSeed.Dispose();
}
