using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

// Host-visible times with BenchmarkDotNet: what a .NET caller waits for, launches and synchronization included.
// In-process, so a GPU host with only the .NET runtime (no SDK) runs it:
//   dotnet tls-bench-host.dll --filter '*'            (TLS_BENCH_DEVICE=cpu|cuda|auto, default auto)
// Device times per kernel come from tls-bench (CUDA events); this project answers "how long does my call take".
var config = DefaultConfig.Instance
    .AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(15).WithToolchain(InProcessEmitToolchain.Instance))
    .WithOptions(ConfigOptions.DisableOptimizationsValidator);
BenchmarkSwitcher.FromAssembly(typeof(TransformerLS.Bench.Host.LayerBenchmarks).Assembly).Run(args, config);
