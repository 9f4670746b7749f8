using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The Softmax family: this facade; Softmax.Reference.cs (checks, reference);
// SoftmaxCuda.cs (launcher, params mirror); SoftmaxNode.cs (graph node, builder); SoftmaxCases.cs (test and bench cases). See Ops/README.md.

/// <summary>Softmax along any axis (kernels/softmax/); checks once, then CUDA or the CPU reference.</summary>
public static partial class Softmax
{
    public static void Forward(IBackend be, Tensor x, Tensor y, int axis)
    {
        var g = CheckShapes(be, x, y, axis);
        if (be is CudaBackend cuda) SoftmaxCuda.Forward(cuda, g, x, y, axis);
        else CpuReference.Run([x], [y], g, static (g, i, o) => Forward<double>(g, i[0], o[0]));
    }

    /// <summary>dx = y·(dy − Σ dy·y) along <paramref name="axis"/>, from the saved output y.</summary>
    public static void Backward(IBackend be, Tensor y, Tensor dy, Tensor dx, int axis)
    {
        var g = CheckShapes(be, y, dx, axis, dy);
        if (be is CudaBackend cuda) SoftmaxCuda.Backward(cuda, g, y, dy, dx, axis);
        else CpuReference.Run([y, dy], [dx], g, static (g, i, o) => Backward<double>(g, i[0], i[1], o[0]));
    }
}
