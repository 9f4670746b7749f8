using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TransformerLS.Cuda;

internal static unsafe partial class CublasLt
{
    const string L = NativeLibraries.CublasLtName;

    // cublasLtMatmulDescAttributes_t, cublasLtMatmulPreferenceAttributes_t, cublasLtEpilogue_t (cublasLt.h).
    public const int DescTransA = 3, DescTransB = 4, DescEpilogue = 7, DescBiasPointer = 8, DescBiasDataType = 26;
    public const int PrefMaxWorkspaceBytes = 1, PrefMinAlignmentA = 5, PrefMinAlignmentB = 6, PrefMinAlignmentC = 7, PrefMinAlignmentD = 8;

    [LibraryImport(L)] public static partial int cublasLtCreate(nint* handle);
    [LibraryImport(L)] public static partial int cublasLtDestroy(nint handle);
    [LibraryImport(L)] public static partial nuint cublasLtGetVersion();
    [LibraryImport(L)] public static partial int cublasLtMatmulDescCreate(nint* desc, int computeType, int scaleType);
    [LibraryImport(L)] public static partial int cublasLtMatmulDescDestroy(nint desc);
    [LibraryImport(L)] public static partial int cublasLtMatmulDescSetAttribute(nint desc, int attribute, void* value, nuint size);
    [LibraryImport(L)] public static partial int cublasLtMatrixLayoutCreate(nint* layout, int type, ulong rows, ulong cols, long ld);
    [LibraryImport(L)] public static partial int cublasLtMatrixLayoutDestroy(nint layout);
    [LibraryImport(L)] public static partial int cublasLtMatmulPreferenceCreate(nint* pref);
    [LibraryImport(L)] public static partial int cublasLtMatmulPreferenceDestroy(nint pref);
    [LibraryImport(L)] public static partial int cublasLtMatmulPreferenceSetAttribute(nint pref, int attribute, void* value, nuint size);
    [LibraryImport(L)]
    public static partial int cublasLtMatmulAlgoGetHeuristic(nint handle, nint desc, nint a, nint b, nint c, nint d, nint pref,
        int requested, HeuristicResult* results, int* returned);
    [LibraryImport(L)]
    public static partial int cublasLtMatmul(nint handle, nint desc, float* alpha, ulong a, nint aDesc, ulong b, nint bDesc,
        float* beta, ulong c, nint cDesc, ulong d, nint dDesc, Algo* algo, ulong workspace, nuint workspaceBytes, nint stream);

    static CublasLt() => NativeLibraries.EnsureResolver();

    /// <summary>cublasLtMatmulAlgo_t: 8 opaque 64-bit words.</summary>
    [InlineArray(8)] public struct Algo { ulong _0; }

    /// <summary>cublasLtMatmulHeuristicResult_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct HeuristicResult
    {
        public Algo Algo;
        public nuint WorkspaceSize;
        public int State;
        public float WavesCount;
        public Reserved4 Reserved;
    }

    [InlineArray(4)] public struct Reserved4 { int _0; }

    /// <summary>cuBLASLt shares cuBLAS's status codes: the names and texts come from libcublas (loaded with it, CudaBlasLt).</summary>
    public static void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status == 0) return;
        var paren = call.IndexOf('(');
        throw new CudaException(paren > 0 ? call[..paren].Replace("CublasLt.", "") : call, status,
            Marshal.PtrToStringUTF8((nint)Cublas.cublasGetStatusName(status)) ?? $"CUBLAS_STATUS_{status}",
            Marshal.PtrToStringUTF8((nint)Cublas.cublasGetStatusString(status)) ?? "unknown cuBLAS status");
    }
}

/// <summary>What the GEMM adds in its epilogue (cublasLtEpilogue_t).</summary>
public enum GemmEpilogue
{
    /// <summary>D = alpha·op(A)·op(B) + beta·C.</summary>
    None = 1,
    /// <summary>D = alpha·op(A)·op(B) + beta·C + bias, bias broadcast over the rows of the row-major result (one value per column).</summary>
    Bias = 4,
}

/// <summary>
/// A cuBLASLt handle bound to one stream with its own workspace, for GEMMs whose epilogue does the work of a separate
/// kernel (a bias add). Row-major wrapper as <see cref="CudaBlas"/>. Each distinct problem (shape, transposes, types,
/// epilogue, pointer alignment) gets its descriptors and the heuristic's first algorithm once; later calls only set the
/// bias pointer and launch: nothing is allocated, nothing synchronizes.
/// </summary>
public sealed unsafe class CudaBlasLt : IDisposable
{
    const int R32F = 0, R16BF = 14, Compute32F = 68, Compute32FFastTf32 = 77;
    public const long WorkspaceBytes = 32L << 20;

    readonly record struct Problem(bool TransA, bool TransB, int M, int N, int K, GemmPrecision Precision, GemmEpilogue Epilogue, int Alignment);

    sealed class Plan
    {
        public nint Desc, A, B, C;
        public CublasLt.Algo Algo;
    }

    readonly CudaContext _context;
    readonly CudaStream _stream;
    readonly CudaDeviceVariable<byte> _workspace;
    readonly Dictionary<Problem, Plan> _plans = [];
    nint _handle;

    public CudaBlasLt(CudaContext context, CudaStream stream)
    {
        _context = context;
        _stream = stream;
        NativeLibraries.Load(NativeLib.CublasLt);
        NativeLibraries.Load(NativeLib.Cublas); // the status names of a failed call
        context.MakeCurrent();
        nint h;
        CublasLt.Check(CublasLt.cublasLtCreate(&h));
        _handle = h;
        _workspace = new CudaDeviceVariable<byte>(context, WorkspaceBytes);
    }

    public static long Version => (long)CublasLt.cublasLtGetVersion();

    /// <summary>
    /// Row-major C = alpha·op(A)·op(B) + beta·C (+ bias[j] on every row with <see cref="GemmEpilogue.Bias"/>); op(A) is m×k,
    /// op(B) is k×n, C is m×n with leading dimension n; bias has n elements in C's dtype.
    /// </summary>
    public void Matmul(bool transA, bool transB, int m, int n, int k, float alpha, ulong a, ulong b, float beta, ulong c,
        ulong bias, GemmPrecision precision, GemmEpilogue epilogue)
    {
        var alignment = (int)Math.Min(256UL, LowestBit(a | b | c | (epilogue == GemmEpilogue.Bias ? bias : 0) | 256UL));
        var plan = PlanFor(new Problem(transA, transB, m, n, k, precision, epilogue, alignment));
        _context.MakeCurrent();
        if (epilogue == GemmEpilogue.Bias)
            CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(plan.Desc, CublasLt.DescBiasPointer, &bias, (nuint)sizeof(ulong)));
        fixed (CublasLt.Algo* algo = &plan.Algo)
            CublasLt.Check(CublasLt.cublasLtMatmul(_handle, plan.Desc, &alpha, b, plan.A, a, plan.B, &beta, c, plan.C, c, plan.C,
                algo, _workspace.DevicePointer, (nuint)WorkspaceBytes, _stream.Handle));
    }

    static ulong LowestBit(ulong x) => x & (~x + 1);

    // Column-major view: the library computes Cᵀ (n×m) = op(B)ᵀ·op(A)ᵀ, so its "A" is our B and its "B" is our A.
    Plan PlanFor(in Problem p)
    {
        if (_plans.TryGetValue(p, out var plan)) return plan;
        var (type, cType, compute) = p.Precision switch
        {
            GemmPrecision.Float32 => (R32F, R32F, Compute32F),
            GemmPrecision.TensorFloat32 => (R32F, R32F, Compute32FFastTf32),
            GemmPrecision.BFloat16 => (R16BF, R16BF, Compute32F),
            GemmPrecision.BFloat16ToFloat32 => (R16BF, R32F, Compute32F),
            _ => throw new ArgumentOutOfRangeException(nameof(p), p.Precision, "unknown GEMM precision"),
        };
        _context.MakeCurrent();
        plan = new Plan();
        nint desc, la, lb, lc, pref;
        CublasLt.Check(CublasLt.cublasLtMatmulDescCreate(&desc, compute, R32F));
        plan.Desc = desc;
        int ta = p.TransB ? 1 : 0, tb = p.TransA ? 1 : 0, epi = (int)p.Epilogue;
        CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescTransA, &ta, sizeof(int)));
        CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescTransB, &tb, sizeof(int)));
        CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescEpilogue, &epi, sizeof(int)));
        if (p.Epilogue == GemmEpilogue.Bias)
            CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescBiasDataType, &cType, sizeof(int)));
        // Stored (column-major) shapes: our B is k×n (n×k when transposed) row-major, i.e. n×k (k×n) column-major.
        CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(&la, type, (ulong)(p.TransB ? p.K : p.N), (ulong)(p.TransB ? p.N : p.K), p.TransB ? p.K : p.N));
        CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(&lb, type, (ulong)(p.TransA ? p.M : p.K), (ulong)(p.TransA ? p.K : p.M), p.TransA ? p.M : p.K));
        CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(&lc, cType, (ulong)p.N, (ulong)p.M, p.N));
        (plan.A, plan.B, plan.C) = (la, lb, lc);
        CublasLt.Check(CublasLt.cublasLtMatmulPreferenceCreate(&pref));
        try
        {
            ulong ws = WorkspaceBytes;
            uint align = (uint)p.Alignment;
            CublasLt.Check(CublasLt.cublasLtMatmulPreferenceSetAttribute(pref, CublasLt.PrefMaxWorkspaceBytes, &ws, sizeof(ulong)));
            foreach (var attr in new[] { CublasLt.PrefMinAlignmentA, CublasLt.PrefMinAlignmentB, CublasLt.PrefMinAlignmentC, CublasLt.PrefMinAlignmentD })
                CublasLt.Check(CublasLt.cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof(uint)));
            CublasLt.HeuristicResult result;
            int found;
            CublasLt.Check(CublasLt.cublasLtMatmulAlgoGetHeuristic(_handle, desc, la, lb, lc, lc, pref, 1, &result, &found));
            if (found < 1)
                throw new NotSupportedException($"cuBLASLt has no algorithm for a {p.M}x{p.N}x{p.K} {p.Precision} GEMM with epilogue {p.Epilogue} " +
                                                $"(transA {p.TransA}, transB {p.TransB}, alignment {p.Alignment} bytes)");
            plan.Algo = result.Algo;
        }
        finally
        {
            CublasLt.cublasLtMatmulPreferenceDestroy(pref);
        }
        _plans[p] = plan;
        return plan;
    }

    public void Dispose()
    {
        if (_handle == 0) return;
        _context.MakeCurrent();
        foreach (var plan in _plans.Values)
        {
            CublasLt.cublasLtMatrixLayoutDestroy(plan.A);
            CublasLt.cublasLtMatrixLayoutDestroy(plan.B);
            CublasLt.cublasLtMatrixLayoutDestroy(plan.C);
            CublasLt.cublasLtMatmulDescDestroy(plan.Desc);
        }
        _plans.Clear();
        CublasLt.cublasLtDestroy(_handle);
        _handle = 0;
        _workspace.Dispose();
    }
}
