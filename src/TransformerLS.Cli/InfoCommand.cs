using TransformerLS.Backends;
using TransformerLS.Cuda;

namespace TransformerLS.Cli;

static class InfoCommand
{
    public static int Run()
    {
        Print();
        return 0;
    }

    /// <summary>Prints what this machine offers; returns the arch kernels are compiled for.</summary>
    public static void Print()
    {
        Console.WriteLine("TransformerLS.Native");
        Console.WriteLine($"  runtime      .NET {Environment.Version}, {Environment.ProcessorCount} cores");
        var gpu = CudaContext.IsAvailable(out var why);
        if (gpu)
        {
            var v = CudaContext.DriverVersion();
            Console.WriteLine($"  driver       CUDA {v / 1000}.{v % 1000 / 10} ({NativeLibraries.LoadedPath(NativeLib.Driver)})");
            for (var i = 0; i < CudaContext.DeviceCount(); i++)
            {
                var p = CudaContext.GetProperties(i);
                Console.WriteLine($"  cuda:{i}       {p.Name}, {p.Arch}, {p.MultiprocessorCount} SMs, {p.TotalMemory / (1 << 20)} MiB, " +
                                  $"{p.MaxSharedMemoryPerBlockOptin / 1024} KiB shared/block");
            }
        }
        else Console.WriteLine($"  GPU          none: {why}");

        int[] archs = [80, 90];
        if (NativeLibraries.TryLoad(NativeLib.Nvrtc, out var nvrtcWhy))
        {
            var (major, minor) = CudaRuntimeCompiler.Version;
            Console.WriteLine($"  NVRTC        {major}.{minor} ({NativeLibraries.LoadedPath(NativeLib.Nvrtc)}), archs {string.Join(' ', CudaRuntimeCompiler.SupportedArchs())}");
            if (gpu && CudaRuntimeCompiler.CheckAgainstDriver(CudaContext.DriverVersion()) is { } warn) Console.WriteLine($"  WARNING      {warn}");
            if (gpu) archs = [CudaContext.GetProperties(0).ArchNumber];
        }
        else Console.WriteLine($"  NVRTC        none: {nvrtcWhy}");
        Console.WriteLine(NativeLibraries.TryLoad(NativeLib.Cublas, out var blasWhy)
            ? $"  cuBLAS       {NativeLibraries.LoadedPath(NativeLib.Cublas)}" : $"  cuBLAS       none: {blasWhy}");

        Console.WriteLine($"  kernel cache {KernelLibrary.CacheDirectory}");
        if (nvrtcWhy is not null) return;
        foreach (var src in KernelLibrary.Sources)
            foreach (var arch in archs)
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                try
                {
                    var img = KernelLibrary.Compile(src, arch);
                    Console.WriteLine($"  kernel       {src,-16} sm_{arch}: ok, {img.Image.Length / 1024} KiB {(img.IsCubin ? "CUBIN" : "PTX")}, {sw.ElapsedMilliseconds} ms");
                }
                catch (NvrtcCompileException e)
                {
                    Console.WriteLine($"  kernel       {src,-16} sm_{arch}: FAILED\n{e.Log}");
                }
            }
    }
}
