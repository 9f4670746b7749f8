using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LayoutParams in kernels/layout/layout.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LayoutParams
{
    public ulong Src, Dst;
    public long Outer, Inner;
    public int A, B;
    public int SrcLen, DstLen, SrcOff, DstOff, Length, Accumulate;
    public int Vec;
}

/// <summary>Mirror of WriteRowsParams in kernels/layout/layout.cuh.</summary>
[StructLayout(LayoutKind.Sequential)]
struct WriteRowsParams
{
    public ulong Src, Dst, Rows;
    public long Inner;
    public int Outer, Heads, N, Cap;
}

static class LayoutCuda
{
    const string File = "layout/layout.cu";
    const int Threads = 256;

    static uint Blocks(long n) => (uint)Math.Clamp((n + Threads - 1) / Threads, 1, 65535 * 8);

    public static void SwapAxes12(CudaBackend be, long a, int b, int c, long d, Tensor x, Tensor y)
    {
        if (x.Count == 0) return;
        if (d > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(x), x.Shape.ToString(), $"rows of at most {int.MaxValue} elements");
        var vec = d * x.DType.Size() % 16 == 0 && x.DevicePointer % 16 == 0 && y.DevicePointer % 16 == 0;
        var p = new LayoutParams { Src = x.DevicePointer, Dst = y.DevicePointer, Outer = a, Inner = d, A = b, B = c, Vec = vec ? 1 : 0 };
        var units = vec ? x.Count * x.DType.Size() / 16 : x.Count;
        be.Kernel(File, x.DType == DType.Float32 ? "swap_axes12_f32" : "swap_axes12_bf16").Launch(Blocks(units), Threads, 0, be.Stream, p);
    }

    public static void CopySlice(CudaBackend be, SliceGeometry g, Tensor src, int srcOffset, Tensor dst, int dstOffset, int axis, int length, bool accumulate)
    {
        var n = g.Outer * g.Length * g.Inner;
        if (n == 0) return;
        var p = new LayoutParams
        {
            Src = src.DevicePointer, Dst = dst.DevicePointer, Outer = g.Outer, Inner = g.Inner, SrcLen = g.SrcLen, DstLen = g.DstLen,
            SrcOff = g.SrcOffset, DstOff = g.DstOffset, Length = g.Length, Accumulate = accumulate ? 1 : 0,
        };
        be.Kernel(File, src.DType == DType.Float32 ? "copy_slice_f32" : "copy_slice_bf16").Launch(Blocks(n), Threads, 0, be.Stream, p);
    }

    public static void WriteRows(CudaBackend be, Tensor src, Tensor rows, Tensor dst)
    {
        if (src.Count == 0) return;
        var p = new WriteRowsParams
        {
            Src = src.DevicePointer, Dst = dst.DevicePointer, Rows = rows.DevicePointer, Inner = src.Shape[3],
            Outer = src.Shape[0] * src.Shape[1], Heads = src.Shape[1], N = src.Shape[2], Cap = dst.Shape[2],
        };
        be.Kernel(File, src.DType == DType.Float32 ? "write_rows_f32" : "write_rows_bf16").Launch(Blocks(src.Count), Threads, 0, be.Stream, p);
    }
}
