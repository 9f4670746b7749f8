using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TransformerLS.Cuda;

internal static unsafe partial class Cublas
{
    const string L = NativeLibraries.CublasName;

    [LibraryImport(L)] public static partial int cublasCreate_v2(nint* handle);
    [LibraryImport(L)] public static partial int cublasDestroy_v2(nint handle);
    [LibraryImport(L)] public static partial int cublasGetVersion_v2(nint handle, int* version);
    [LibraryImport(L)] public static partial int cublasSetStream_v2(nint handle, nint stream);
    [LibraryImport(L)] public static partial int cublasSetWorkspace_v2(nint handle, ulong workspace, nuint bytes);
    [LibraryImport(L)]
    public static partial int cublasGemmStridedBatchedEx(nint handle, int transa, int transb, int m, int n, int k,
        float* alpha, ulong a, int aType, int lda, long strideA, ulong b, int bType, int ldb, long strideB,
        float* beta, ulong c, int cType, int ldc, long strideC, int batchCount, int computeType, int algo);
    [LibraryImport(L)] public static partial byte* cublasGetStatusName(int status);
    [LibraryImport(L)] public static partial byte* cublasGetStatusString(int status);

    static Cublas() => NativeLibraries.EnsureResolver();

    public static void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status == 0) return;
        var paren = call.IndexOf('(');
        throw new CudaException(paren > 0 ? call[..paren].Replace("Cublas.", "") : call, status,
            Marshal.PtrToStringUTF8((nint)cublasGetStatusName(status)) ?? $"CUBLAS_STATUS_{status}",
            Marshal.PtrToStringUTF8((nint)cublasGetStatusString(status)) ?? "unknown cuBLAS status");
    }
}

public enum GemmPrecision
{
    /// <summary>fp32 inputs, full fp32 math.</summary>
    Float32,
    /// <summary>fp32 inputs rounded to TF32 on the tensor cores, fp32 accumulation.</summary>
    TensorFloat32,
    /// <summary>bf16 inputs and output, fp32 accumulation.</summary>
    BFloat16,
    /// <summary>bf16 inputs, fp32 accumulation and fp32 output (C is float32).</summary>
    BFloat16ToFloat32,
}

/// <summary>
/// A cuBLAS handle bound to one stream, with a workspace of its own (so cuBLAS never allocates during a
/// launch or a graph capture). Row-major wrappers: the column-major library computes Cᵀ = Bᵀ·Aᵀ.
/// </summary>
public sealed unsafe class CudaBlas : IDisposable
{
    const int R32F = 0, R16BF = 14, Compute32F = 68, Compute32FFastTf32 = 77, GemmDefault = -1;
    public const long WorkspaceBytes = 32L << 20;

    readonly CudaContext _context;
    readonly CudaDeviceVariable<byte> _workspace;
    nint _handle;

    public CudaBlas(CudaContext context, CudaStream stream)
    {
        _context = context;
        NativeLibraries.Load(NativeLib.Cublas);
        context.MakeCurrent();
        nint h;
        Cublas.Check(Cublas.cublasCreate_v2(&h));
        _handle = h;
        Cublas.Check(Cublas.cublasSetStream_v2(_handle, stream.Handle));
        _workspace = new CudaDeviceVariable<byte>(context, WorkspaceBytes);
        Cublas.Check(Cublas.cublasSetWorkspace_v2(_handle, _workspace.DevicePointer, (nuint)WorkspaceBytes));
    }

    public int Version
    {
        get { int v; Cublas.Check(Cublas.cublasGetVersion_v2(_handle, &v)); return v; }
    }

    /// <summary>
    /// Row-major C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i] for i &lt; batch; op(A) is m×k, op(B) is k×n.
    /// A stride of 0 broadcasts one matrix over the batch.
    /// </summary>
    public void GemmStridedBatched(bool transA, bool transB, int m, int n, int k, float alpha,
        ulong a, long strideA, ulong b, long strideB, float beta, ulong c, long strideC, int batch, GemmPrecision precision)
    {
        var (type, cType, compute) = precision switch
        {
            GemmPrecision.Float32 => (R32F, R32F, Compute32F),
            GemmPrecision.TensorFloat32 => (R32F, R32F, Compute32FFastTf32),
            GemmPrecision.BFloat16 => (R16BF, R16BF, Compute32F),
            GemmPrecision.BFloat16ToFloat32 => (R16BF, R32F, Compute32F),
            _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "unknown GEMM precision"),
        };
        var lda = transA ? m : k; // row-major leading dimensions of the stored matrices
        var ldb = transB ? k : n;
        _context.MakeCurrent();
        Cublas.Check(Cublas.cublasGemmStridedBatchedEx(_handle, transB ? 1 : 0, transA ? 1 : 0, n, m, k,
            &alpha, b, type, ldb, strideB, a, type, lda, strideA, &beta, c, cType, n, strideC, batch, compute, GemmDefault));
    }

    public void Dispose()
    {
        if (_handle == 0) return;
        _context.MakeCurrent();
        Cublas.cublasDestroy_v2(_handle);
        _handle = 0;
        _workspace.Dispose();
    }
}
