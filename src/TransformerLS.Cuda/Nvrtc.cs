using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TransformerLS.Cuda;

internal static unsafe partial class Nvrtc
{
    const string L = NativeLibraries.NvrtcName;
    public const int Success = 0, CompilationError = 6;

    [LibraryImport(L)] public static partial int nvrtcVersion(int* major, int* minor);
    [LibraryImport(L)] public static partial int nvrtcGetNumSupportedArchs(int* count);
    [LibraryImport(L)] public static partial int nvrtcGetSupportedArchs(int* archs);
    [LibraryImport(L)]
    public static partial int nvrtcCreateProgram(nint* prog, byte* src, byte* name, int numHeaders, byte** headers, byte** includeNames);
    [LibraryImport(L)] public static partial int nvrtcDestroyProgram(nint* prog);
    [LibraryImport(L)] public static partial int nvrtcCompileProgram(nint prog, int numOptions, byte** options);
    [LibraryImport(L)] public static partial int nvrtcGetProgramLogSize(nint prog, nuint* size);
    [LibraryImport(L)] public static partial int nvrtcGetProgramLog(nint prog, byte* log);
    [LibraryImport(L)] public static partial int nvrtcGetCUBINSize(nint prog, nuint* size);
    [LibraryImport(L)] public static partial int nvrtcGetCUBIN(nint prog, byte* cubin);
    [LibraryImport(L)] public static partial int nvrtcGetPTXSize(nint prog, nuint* size);
    [LibraryImport(L)] public static partial int nvrtcGetPTX(nint prog, byte* ptx);
    [LibraryImport(L)] public static partial int nvrtcAddNameExpression(nint prog, byte* name);
    [LibraryImport(L)] public static partial int nvrtcGetLoweredName(nint prog, byte* name, byte** lowered);
    [LibraryImport(L)] public static partial byte* nvrtcGetErrorString(int result);

    static Nvrtc() => NativeLibraries.EnsureResolver();

    public static void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status == Success) return;
        var paren = call.IndexOf('(');
        var text = Marshal.PtrToStringUTF8((nint)nvrtcGetErrorString(status)) ?? $"NVRTC_ERROR_{status}";
        throw new CudaException(paren > 0 ? call[..paren].Replace("Nvrtc.", "") : call, status, text, text);
    }
}
