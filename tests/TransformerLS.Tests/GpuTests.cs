using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>The binding itself on a real device: properties, allocator statistics, errors, launches.</summary>
[Collection(GpuCollection.Name)]
public class GpuTests
{
    [Fact]
    public void Device_properties_are_plausible()
    {
        var gpu = TestEnv.RequireGpu();
        var p = gpu.Context.Device;
        Assert.False(string.IsNullOrWhiteSpace(p.Name));
        Assert.True(p.Major >= 7, $"compute capability {p.Major}.{p.Minor}");
        Assert.True(p.MultiprocessorCount > 0);
        Assert.True(p.TotalMemory > 1L << 30);
        Assert.True(p.MaxSharedMemoryPerBlockOptin >= 48 * 1024);
        Assert.True(CudaContext.DriverVersion() >= 11020);
        Assert.Null(CudaRuntimeCompiler.CheckAgainstDriver(CudaContext.DriverVersion()));
        Assert.True(gpu.Blas.Version > 0);
    }

    [Fact]
    public void Allocator_statistics_return_to_zero_after_disposal()
    {
        var gpu = TestEnv.RequireGpu();
        var start = gpu.MemoryStats;
        gpu.Context.Allocator.ResetPeak();
        using (var scope = new TensorScope())
        {
            gpu.Empty(new(1024), DType.Float32);
            gpu.Empty(new(3, 333), DType.BFloat16);
            var s = gpu.MemoryStats;
            Assert.Equal(start.LiveBytes + 4096 + 1998, s.LiveBytes);
            Assert.Equal(start.LiveAllocations + 2, s.LiveAllocations);
            Assert.True(s.PeakBytes >= s.LiveBytes);
        }
        using (var v = new CudaDeviceVariable<float>(gpu.Context, 100))
        {
            v.CopyToDevice(Enumerable.Range(0, 100).Select(i => (float)i).ToArray());
            Assert.Equal(99f, v.ToArray()[99]);
        }
        var end = gpu.MemoryStats;
        Assert.Equal(start.LiveBytes, end.LiveBytes);
        Assert.Equal(start.LiveAllocations, end.LiveAllocations);
        Assert.Equal(start.TotalAllocations + 3, end.TotalAllocations);
        Assert.True(end.PeakBytes >= start.LiveBytes + 4096 + 1998);
    }

    [Fact]
    public void Float64_is_refused_on_the_gpu_by_name()
    {
        var gpu = TestEnv.RequireGpu();
        var before = gpu.MemoryStats;
        var e = Assert.Throws<ArgumentException>(() => gpu.Empty(new(3, 4), DType.Float64));
        Assert.Equal("dtype", e.ParamName);
        Assert.Contains("float64 tensors exist only on the CPU backend", e.Message);
        Assert.Equal(before.LiveBytes, gpu.MemoryStats.LiveBytes);
    }

    [Fact]
    public void Out_of_memory_says_how_much_was_asked_and_is_free()
    {
        var gpu = TestEnv.RequireGpu();
        var before = gpu.MemoryStats;
        var e = Assert.Throws<CudaOutOfMemoryException>(() => gpu.Empty(new(1 << 30, 1 << 10), DType.Float32)); // 4 TiB
        Assert.Equal(4L << 40, e.RequestedBytes);
        Assert.Contains("asked for 4096.00 GiB", e.Message);
        Assert.Contains("free of", e.Message);
        Assert.Equal(before.LiveBytes, gpu.MemoryStats.LiveBytes);
    }

    [Fact]
    public void Launch_errors_name_the_call_the_error_and_the_kernel()
    {
        var gpu = TestEnv.RequireGpu();
        var k = gpu.Kernel("elementwise/elementwise.cu", "axpby_f32");
        var e = Assert.Throws<CudaException>(() => k.Launch(1, 4096, 0, gpu.Stream, 0L)); // 4096 threads > 1024
        Assert.Equal("cuLaunchKernel", e.Call);
        Assert.Equal("axpby_f32", e.Kernel);
        Assert.Contains("CUDA_ERROR_INVALID_VALUE", e.Message);
        var missing = Assert.Throws<CudaException>(() => gpu.Kernel("elementwise/elementwise.cu", "no_such_kernel"));
        Assert.Contains("CUDA_ERROR_NOT_FOUND", missing.Message);
        Assert.Contains("no_such_kernel", missing.Message);
    }

    [Fact]
    public void Launch_path_allocates_nothing_on_the_managed_heap()
    {
        var gpu = TestEnv.RequireGpu();
        using var scope = new TensorScope();
        var x = gpu.Empty(new(64, 96), DType.BFloat16);
        var y = gpu.Empty(new(64, 96), DType.BFloat16);
        var g = gpu.Empty(new(96), DType.Float32);
        gpu.Fill(x, 1); gpu.Fill(g, 1);
        LayerNorm.Forward(gpu, x, g, g, y, null, null, 1e-5f); // warm: compile and load
        Elementwise.Gelu(gpu, x, y);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            LayerNorm.Forward(gpu, x, g, g, y, null, null, 1e-5f);
            Elementwise.Gelu(gpu, y, x);
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        gpu.Synchronize();
        Assert.Equal(0, allocated);
    }

    /// <summary>The attention-side launch paths, checks included, allocate nothing either (float32: no accumulator scratch).</summary>
    [Fact]
    public void Attention_launch_paths_allocate_nothing_on_the_managed_heap()
    {
        var gpu = TestEnv.RequireGpu();
        using var scope = new TensorScope();
        Tensor T(params int[] s) { var t = gpu.Empty(new Shape(s), DType.Float32); gpu.Fill(t, 0.5f); return t; }
        const int B = 2, H = 2, L = 32, P = 7, d = 32, w = 8, l = 8, r = 2;
        var nc = (1 + L / l) * r;
        var x = new LsCausalInputs(T(B, H, L, d), T(B, H, P + L, d), T(B, H, P + L, d), T(H, d), T(H, d), T(H, w, d), T(B, H, nc, d), T(B, H, nc, d), T(H, nc, d), null);
        var cfg = new LsCausalConfig(w, l, r);
        Tensor o = T(B, H, L, d), lse = T(B, H, L), tok = T(B, L, H * d), split = T(B, H, L, d), split2 = T(B, H, L, d), stats = T(2, B, L), stats2 = T(2, B, L);
        Tensor gamma = T(H * d), scores = T(B, L, H * r), chunks = T(B, H, L / l * r, d), q1 = T(B, H, d), o1 = T(B, H, d), lse1 = T(B, H);
        using var view = tok.Reshape(B, L, H, d);
        void Launch() // a local function, not a delegate: calling it allocates nothing
        {
            LsCausalAttention.Forward(gpu, cfg, x, o, lse);
            DualLayerNorm.Forward(gpu, tok, tok, gamma, gamma, split, split2, stats, stats2, 1e-5f);
            Layout.SwapAxes12(gpu, split, view);
            Layout.CopySlice(gpu, split, 0, split2, 0, 2, L / 2);
            LsChunkProjection.Forward(gpu, l, scores, split, null, chunks);
            LsClsAttention.Forward(gpu, q1, q1, q1, split, null, o1, lse1);
        }
        Launch(); // warm: compile and load
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 50; i++) Launch();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        gpu.Synchronize();
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void Kernel_resources_are_reported()
    {
        var gpu = TestEnv.RequireGpu();
        foreach (var (file, name) in new[] { ("layer_norm/layer_norm.cu", "layer_norm_fwd_bf16"), ("softmax/softmax.cu", "softmax_cols_fwd_f32") })
        {
            var a = gpu.Kernel(file, name).Attributes;
            Assert.InRange(a.Registers, 1, 255);
            Assert.Equal(0, a.LocalBytes); // no spills
            Assert.Equal(gpu.Context.Device.ArchNumber, a.BinaryVersion);
        }
    }

    [Fact]
    public void Events_time_stream_work()
    {
        var gpu = TestEnv.RequireGpu();
        using var scope = new TensorScope();
        using var start = new CudaEvent(gpu.Context);
        using var end = new CudaEvent(gpu.Context);
        var x = gpu.Empty(new(1 << 20), DType.Float32);
        gpu.Fill(x, 0.5f);
        start.Record(gpu.Stream);
        for (var i = 0; i < 10; i++) Elementwise.Gelu(gpu, x, x);
        end.Record(gpu.Stream);
        var ms = CudaEvent.ElapsedMilliseconds(start, end);
        Assert.InRange(ms, 1e-4f, 10_000f);
    }
}
