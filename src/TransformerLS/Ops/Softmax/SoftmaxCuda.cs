using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of SoftmaxParams in kernels/softmax/softmax.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct SoftmaxParams
{
    public ulong X, Dy, Out;
    public long Outer, Inner;
    public int Dim;
}

static class SoftmaxCuda
{
    const string File = "softmax/softmax.cu";

    public static void Forward(CudaBackend be, SoftmaxGeometry g, Tensor x, Tensor y, int axis)
    {
        Launch(be, x.DType, g, new SoftmaxParams { X = x.DevicePointer, Out = y.DevicePointer, Outer = g.Outer, Inner = g.Inner, Dim = g.Dim }, forward: true);
    }

    public static void Backward(CudaBackend be, SoftmaxGeometry g, Tensor y, Tensor dy, Tensor dx, int axis)
    {
        Launch(be, y.DType, g, new SoftmaxParams { X = y.DevicePointer, Dy = dy.DevicePointer, Out = dx.DevicePointer, Outer = g.Outer, Inner = g.Inner, Dim = g.Dim }, forward: false);
    }

    static void Launch(CudaBackend be, DType dt, SoftmaxGeometry g, in SoftmaxParams p, bool forward)
    {
        if (g.Outer == 0 || g.Inner == 0 || g.Dim == 0) return;
        var f32 = dt == DType.Float32;
        if (g.Inner == 1)
        {
            var k = forward ? (f32 ? "softmax_rows_fwd_f32" : "softmax_rows_fwd_bf16") : (f32 ? "softmax_rows_bwd_f32" : "softmax_rows_bwd_bf16");
            be.Kernel(File, k).Launch((uint)((g.Outer + 3) / 4), 128, 0, be.Stream, p);
        }
        else
        {
            var k = forward ? (f32 ? "softmax_cols_fwd_f32" : "softmax_cols_fwd_bf16") : (f32 ? "softmax_cols_bwd_f32" : "softmax_cols_bwd_bf16");
            be.Kernel(File, k).Launch(new Dim3((uint)((g.Inner + 127) / 128), (uint)Math.Min(g.Outer, 65535)), 128, 0, be.Stream, p);
        }
    }
}
