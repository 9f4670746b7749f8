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

/// <summary>Mirror of WriteRowsBatchParams in kernels/layout/layout.cuh: up to six writes, one launch.</summary>
[StructLayout(LayoutKind.Sequential)]
struct WriteRowsBatchParams
{
    public WriteRowsParams I0, I1, I2, I3, I4, I5;
    public int Count;

    public const int Capacity = 6;

    public void Set(int i, in WriteRowsParams w)
    {
        switch (i)
        {
            case 0: I0 = w; break;
            case 1: I1 = w; break;
            case 2: I2 = w; break;
            case 3: I3 = w; break;
            case 4: I4 = w; break;
            case 5: I5 = w; break;
            default: throw new ArgumentOutOfRangeException(nameof(i), i, $"a batch holds at most {Capacity} writes");
        }
    }
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
            Vec = g.Inner % 8 == 0 && src.DevicePointer % 16 == 0 && dst.DevicePointer % 16 == 0 ? 1 : 0,
        };
        be.Kernel(File, src.DType == DType.Float32 ? "copy_slice_f32" : "copy_slice_bf16").Launch(Blocks(p.Vec == 1 ? n / 8 : n), Threads, 0, be.Stream, p);
    }

    static WriteRowsParams Write(Tensor src, Tensor rows, Tensor dst) => new()
    {
        Src = src.DevicePointer, Dst = dst.DevicePointer, Rows = rows.DevicePointer, Inner = src.Shape[3],
        Outer = src.Shape[0] * src.Shape[1], Heads = src.Shape[1], N = src.Shape[2], Cap = dst.Shape[2],
    };

    public static void WriteRows(CudaBackend be, Tensor src, Tensor rows, Tensor dst)
    {
        if (src.Count == 0) return;
        var p = Write(src, rows, dst);
        be.Kernel(File, src.DType == DType.Float32 ? "write_rows_f32" : "write_rows_bf16").Launch(Blocks(src.Count), Threads, 0, be.Stream, p);
    }

    /// <summary>
    /// Several writes of one dtype in one launch (blockIdx.y picks the write; the grid covers the largest): as 16-byte units
    /// where every write's rows are whole units and every pointer is 16-byte aligned, else element by element.
    /// </summary>
    public static void WriteRows(CudaBackend be, ReadOnlySpan<RowWrite> writes)
    {
        if (writes.IsEmpty) return;
        var p = new WriteRowsBatchParams { Count = writes.Length };
        var size = writes[0].Src.DType.Size();
        var units = true;
        foreach (var w in writes)
            units &= w.Src.Shape[3] * size % 16 == 0 && w.Src.DevicePointer % 16 == 0 && w.Dst.DevicePointer % 16 == 0;
        var per = units ? 16 / size : 1;
        long most = 0;
        for (var i = 0; i < writes.Length; i++)
        {
            var w = Write(writes[i].Src, writes[i].Rows, writes[i].Dst);
            w.Inner /= per;
            p.Set(i, w);
            most = Math.Max(most, writes[i].Src.Count / per);
        }
        if (most == 0) return;
        var name = units ? "write_rows_batch_v16" : writes[0].Src.DType == DType.Float32 ? "write_rows_batch_f32" : "write_rows_batch_bf16";
        be.Kernel(File, name).Launch(new Dim3(Blocks(most), (uint)writes.Length, 1), Threads, 0, be.Stream, p);
    }
}
