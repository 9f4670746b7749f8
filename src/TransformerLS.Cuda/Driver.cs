using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TransformerLS.Cuda;

/// <summary>The CUDA driver API calls the library uses; blittable signatures only.</summary>
internal static unsafe partial class Driver
{
    const string L = NativeLibraries.DriverName;

    public const int Success = 0, OutOfMemory = 2, NotInitialized = 3, StubLibrary = 34, NoDevice = 100;

    [LibraryImport(L)] public static partial int cuInit(uint flags);
    [LibraryImport(L)] public static partial int cuDriverGetVersion(int* version);
    [LibraryImport(L)] public static partial int cuDeviceGetCount(int* count);
    [LibraryImport(L)] public static partial int cuDeviceGet(int* device, int ordinal);
    [LibraryImport(L)] public static partial int cuDeviceGetName(byte* name, int len, int dev);
    [LibraryImport(L)] public static partial int cuDeviceGetAttribute(int* value, int attrib, int dev);
    [LibraryImport(L)] public static partial int cuDeviceTotalMem_v2(nuint* bytes, int dev);
    [LibraryImport(L)] public static partial int cuDevicePrimaryCtxRetain(nint* ctx, int dev);
    [LibraryImport(L)] public static partial int cuDevicePrimaryCtxRelease_v2(int dev);
    [LibraryImport(L)] public static partial int cuCtxSetCurrent(nint ctx);
    [LibraryImport(L)] public static partial int cuCtxSynchronize();
    [LibraryImport(L)] public static partial int cuModuleLoadData(nint* module, void* image);
    [LibraryImport(L)] public static partial int cuModuleUnload(nint module);
    [LibraryImport(L)] public static partial int cuModuleGetFunction(nint* fn, nint module, byte* name);
    [LibraryImport(L)] public static partial int cuModuleGetGlobal_v2(ulong* dptr, nuint* bytes, nint module, byte* name);
    [LibraryImport(L)] public static partial int cuFuncGetAttribute(int* value, int attrib, nint fn);
    [LibraryImport(L)] public static partial int cuFuncSetAttribute(nint fn, int attrib, int value);
    [LibraryImport(L)]
    public static partial int cuLaunchKernel(nint fn, uint gx, uint gy, uint gz, uint bx, uint by, uint bz,
        uint sharedBytes, nint stream, void** args, void** extra);
    [LibraryImport(L)] public static partial int cuLaunchKernelEx(LaunchConfig* config, nint fn, void** args, void** extra);
    [LibraryImport(L)] public static partial int cuStreamCreate(nint* stream, uint flags);
    [LibraryImport(L)] public static partial int cuStreamDestroy_v2(nint stream);
    [LibraryImport(L)] public static partial int cuStreamSynchronize(nint stream);
    [LibraryImport(L)] public static partial int cuEventCreate(nint* ev, uint flags);
    [LibraryImport(L)] public static partial int cuEventRecord(nint ev, nint stream);
    [LibraryImport(L)] public static partial int cuEventSynchronize(nint ev);
    [LibraryImport(L)] public static partial int cuEventElapsedTime(float* ms, nint start, nint end);
    [LibraryImport(L)] public static partial int cuEventDestroy_v2(nint ev);
    [LibraryImport(L)] public static partial int cuMemAllocAsync(ulong* ptr, nuint bytes, nint stream);
    [LibraryImport(L)] public static partial int cuMemFreeAsync(ulong ptr, nint stream);
    [LibraryImport(L)] public static partial int cuMemcpyHtoDAsync_v2(ulong dst, void* src, nuint bytes, nint stream);
    [LibraryImport(L)] public static partial int cuMemcpyDtoHAsync_v2(void* dst, ulong src, nuint bytes, nint stream);
    [LibraryImport(L)] public static partial int cuMemcpyDtoDAsync_v2(ulong dst, ulong src, nuint bytes, nint stream);
    [LibraryImport(L)] public static partial int cuMemsetD8Async(ulong dst, byte value, nuint count, nint stream);
    [LibraryImport(L)] public static partial int cuMemsetD16Async(ulong dst, ushort value, nuint count, nint stream);
    [LibraryImport(L)] public static partial int cuMemsetD32Async(ulong dst, uint value, nuint count, nint stream);
    [LibraryImport(L)] public static partial int cuMemGetInfo_v2(nuint* free, nuint* total);
    [LibraryImport(L)] public static partial int cuDeviceGetDefaultMemPool(nint* pool, int dev);
    [LibraryImport(L)] public static partial int cuMemPoolSetAttribute(nint pool, int attr, void* value);
    [LibraryImport(L)] public static partial int cuMemPoolTrimTo(nint pool, nuint minBytesToKeep);
    [LibraryImport(L)] public static partial int cuStreamBeginCapture_v2(nint stream, int mode);
    [LibraryImport(L)] public static partial int cuStreamEndCapture(nint stream, nint* graph);
    [LibraryImport(L)] public static partial int cuGraphInstantiateWithFlags(nint* exec, nint graph, ulong flags);
    [LibraryImport(L)] public static partial int cuGraphLaunch(nint exec, nint stream);
    [LibraryImport(L)] public static partial int cuGraphExecDestroy(nint exec);
    [LibraryImport(L)] public static partial int cuGraphDestroy(nint graph);
    [LibraryImport(L)] public static partial int cuDeviceGraphMemTrim(int device);
    [LibraryImport(L)] public static partial int cuGetErrorName(int error, byte** name);
    [LibraryImport(L)] public static partial int cuProfilerStart();
    [LibraryImport(L)] public static partial int cuProfilerStop();
    [LibraryImport(L)] public static partial int cuGetErrorString(int error, byte** text);

    static Driver() => NativeLibraries.EnsureResolver();

    public static string ErrorName(int code)
    {
        byte* p = null;
        return cuGetErrorName(code, &p) == Success && p != null ? Marshal.PtrToStringUTF8((nint)p)! : $"CUDA_ERROR_{code}";
    }

    public static string ErrorText(int code)
    {
        byte* p = null;
        return cuGetErrorString(code, &p) == Success && p != null ? Marshal.PtrToStringUTF8((nint)p)! : "unknown error";
    }

    /// <summary>Throws a <see cref="CudaException"/> naming the call (taken from the call site) and the kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Check(int status, string? kernel = null, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != Success) Throw(status, call, kernel);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Throw(int status, string call, string? kernel)
    {
        var paren = call.IndexOf('(');
        var name = paren > 0 ? call[..paren].Replace("Driver.", "") : call;
        if (status == StubLibrary)
            throw new CudaException(name, status, ErrorName(status),
                $"the loaded libcuda ({NativeLibraries.LoadedPath(NativeLib.Driver)}) is the toolkit's stub, not a driver; " +
                $"point {NativeLibraries.PathVariable} at the real driver", kernel);
        throw new CudaException(name, status, ErrorName(status), ErrorText(status), kernel);
    }

    /// <summary>CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION: the launch may start before the previous kernel in the stream ends;
    /// it waits for that kernel's results at its griddepcontrol.wait (sm_90+).</summary>
    public const int LaunchAttributeProgrammaticStreamSerialization = 6;

    /// <summary>CUlaunchAttribute: the id, padding to 8 bytes, a 64-byte value union (here its first int).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 72)]
    public struct LaunchAttribute
    {
        [FieldOffset(0)] public int Id;
        [FieldOffset(8)] public int Value;
    }

    /// <summary>CUlaunchConfig of cuLaunchKernelEx.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LaunchConfig
    {
        public uint GridX, GridY, GridZ, BlockX, BlockY, BlockZ, SharedBytes;
        public nint Stream;
        public LaunchAttribute* Attributes;
        public uint AttributeCount;
    }
}
