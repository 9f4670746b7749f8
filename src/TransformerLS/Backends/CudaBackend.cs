using TransformerLS.Cuda;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Backends;

/// <summary>
/// The GPU backend: one context, one stream, cuBLAS bound to it, kernels from <see cref="KernelLibrary"/>
/// loaded per source file on first use. Launch paths allocate nothing on the managed heap and never
/// synchronize; host copies do.
/// </summary>
public sealed class CudaBackend : IBackend
{
    readonly Dictionary<string, CudaModule> _modules = [];
    readonly Dictionary<string, CudaKernel> _kernels = [];
    readonly Lock _gate = new();
    CudaBlas? _blas;

    public CudaContext Context { get; }
    public CudaStream Stream => Context.Stream;
    public Device Device { get; }
    public AllocatorStats MemoryStats => Context.Allocator.Stats;
    public void ResetPeak() => Context.Allocator.ResetPeak();

    /// <summary>Let float32 matmuls use TF32 tensor cores (off by default: full fp32).</summary>
    public bool AllowTf32 { get; set; }

    public CudaBackend(int ordinal = 0)
    {
        Context = new CudaContext(ordinal);
        Device = Device.Cuda(ordinal);
        if (CudaRuntimeCompiler.CheckAgainstDriver(CudaContext.DriverVersion()) is { } warning
            && Environment.GetEnvironmentVariable(KernelLibrary.FatbinDirVariable) is null)
            throw new InvalidOperationException(warning);
    }

    public CudaBlas Blas
    {
        get { lock (_gate) return _blas ??= new CudaBlas(Context, Stream); }
    }

    /// <summary>The kernel <paramref name="name"/> of kernels/<paramref name="file"/>, compiled or loaded on first use.</summary>
    public CudaKernel Kernel(string file, string name)
    {
        lock (_gate)
        {
            if (_kernels.TryGetValue(name, out var k)) return k;
            if (!_modules.TryGetValue(file, out var module))
            {
                var (image, _) = KernelLibrary.GetImage(file, Context.Device.ArchNumber);
                _modules[file] = module = Context.LoadModule(image, file);
            }
            return _kernels[name] = module.GetKernel(name);
        }
    }

    public Tensor Empty(Shape shape, DType dtype) => dtype == DType.Float64
        ? throw new ArgumentException($"float64 tensors exist only on the CPU backend (the finite-difference reference); asked for {shape} float64 on {Device}", nameof(dtype))
        : new(this, shape, dtype, null, Context.Allocator.Allocate(shape.Count * dtype.Size()), owns: true);

    public void Fill(Tensor t, float value)
    {
        Check.On(this, t, nameof(t));
        if (t.DType == DType.Float32)
            CudaMemory.Fill32(Stream, t.DevicePointer, BitConverter.SingleToUInt32Bits(value), t.Count);
        else CudaMemory.Fill16(Stream, t.DevicePointer, BFloat16.FromFloat(value), t.Count);
    }

    public void CopyFromHost(Tensor t, ReadOnlySpan<byte> bytes) => CudaMemory.CopyHostToDevice(Stream, t.DevicePointer, bytes);
    public void CopyToHost(Tensor t, Span<byte> bytes) => CudaMemory.CopyDeviceToHost(Stream, bytes, t.DevicePointer);
    void IBackend.Free(ulong devicePointer, long bytes) => Context.Allocator.Free(devicePointer, bytes);
    public void Synchronize() => Stream.Synchronize();

    public void Axpby(Tensor a, float alpha, Tensor? b, float beta, Tensor y) => ElementwiseCuda.Axpby(this, a, alpha, b, beta, y);
    public void Gelu(Tensor x, Tensor y) => ElementwiseCuda.Gelu(this, x, y);
    public void GeluBackward(Tensor x, Tensor dy, Tensor dx) => ElementwiseCuda.GeluBackward(this, x, dy, dx);
    public void Relu(Tensor x, Tensor y) => ElementwiseCuda.Relu(this, x, y);
    public void ReluBackward(Tensor x, Tensor dy, Tensor dx) => ElementwiseCuda.ReluBackward(this, x, dy, dx);
    public void Dropout(Tensor x, Tensor y, float p, ulong seed) => ElementwiseCuda.Dropout(this, x, y, p, seed);

    /// <summary>Dropout whose seed is runSeed·φ64 + <paramref name="salt"/>, runSeed read from device memory when the kernel runs (a captured graph's replays).</summary>
    public void Dropout(Tensor x, Tensor y, float p, ulong salt, ulong runSeedAddress) => ElementwiseCuda.Dropout(this, x, y, p, salt, runSeedAddress);
    public void BiasAdd(Tensor x, Tensor bias, Tensor y) => ElementwiseCuda.BiasAdd(this, x, bias, y);
    public void Cast(Tensor x, Tensor y) => ElementwiseCuda.Cast(this, x, y);
    public void CrossEntropy(Tensor logits, Tensor target, Tensor loss, Tensor lse) => Ops.CrossEntropyCuda.Forward(this, logits, target, loss, lse);
    public void CrossEntropyBackward(Tensor logits, Tensor target, Tensor lse, Tensor dloss, Tensor dlogits) =>
        Ops.CrossEntropyCuda.Backward(this, logits, target, lse, dloss, dlogits);
    public void LossMean(Tensor loss, Tensor target, Tensor mean, Tensor count) => Ops.CrossEntropyCuda.Mean(this, loss, target, mean, count);
    public void LossMeanBackward(Tensor target, Tensor count, Tensor dmean, Tensor dloss) => Ops.CrossEntropyCuda.MeanBackward(this, target, count, dmean, dloss);
    public void Embedding(Tensor weight, Tensor tokens, Tensor y) => Ops.EmbeddingCuda.Forward(this, weight, tokens, y);
    public void EmbeddingBackward(Tensor tokens, Tensor dy, Tensor dweight, bool accumulate = false) =>
        Ops.EmbeddingCuda.Backward(this, tokens, dy, dweight, accumulate);
    public void SumOfSquares(Tensor x, Tensor acc) => Ops.OptimizerCuda.SumOfSquares(this, x, acc);
    public void AdamStep(in Ops.AdamHyper h, Tensor param, Tensor grad, Tensor m, Tensor v, Tensor? sumSquares = null, Tensor? copy = null) =>
        Ops.OptimizerCuda.AdamStep(this, h, param, grad, m, v, sumSquares, copy);
    public void ColumnSum(Tensor x, Tensor y, float beta = 0f) => ElementwiseCuda.ColumnSum(this, x, y, beta);
    public void AddTo(Tensor x, Tensor y) => ElementwiseCuda.AddTo(this, x, y);
    public void SwapAxes12(Tensor x, Tensor y) => LayoutCuda.SwapAxes12(this, x, y);
    public void CopySlice(Tensor src, int srcOffset, Tensor dst, int dstOffset, int axis, int length, bool accumulate = false) =>
        LayoutCuda.CopySlice(this, src, srcOffset, dst, dstOffset, axis, length, accumulate);
    public void DualLayerNorm(Tensor xk, Tensor? xv, Tensor gamma, Tensor beta, Tensor yk, Tensor? yv, Tensor mean, Tensor rstd, float eps) =>
        DualLayerNormCuda.Forward(this, xk, xv, gamma, beta, yk, yv, mean, rstd, eps);
    public void DualLayerNormBackward(Tensor dyk, Tensor? dyv, Tensor xk, Tensor? xv, Tensor gamma, Tensor mean, Tensor rstd,
        Tensor dxk, Tensor? dxv, Tensor dgamma, Tensor dbeta) => DualLayerNormCuda.Backward(this, dyk, dyv, xk, xv, gamma, mean, rstd, dxk, dxv, dgamma, dbeta);
    public void MatMul(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha = 1f, float beta = 0f) =>
        MatMulCuda.Run(this, a, transA, b, transB, c, alpha, beta);
    public void LayerNorm(Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor? mean, Tensor? rstd, float eps) =>
        LayerNormCuda.Forward(this, x, gamma, beta, y, mean, rstd, eps);
    public void LayerNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx, Tensor dgamma, Tensor dbeta, bool accumulate = false) =>
        LayerNormCuda.Backward(this, dy, x, gamma, mean, rstd, dx, dgamma, dbeta, accumulate);
    public void Softmax(Tensor x, Tensor y, int axis) => SoftmaxCuda.Forward(this, x, y, axis);
    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx, int axis) => SoftmaxCuda.Backward(this, y, dy, dx, axis);

    public void LsAttention(LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask, Tensor o, Tensor lse) =>
        LsAttentionCuda.Forward(this, cfg, q, k, v, kbar, vbar, mask, o, lse);
    public void LsAttentionBackward(LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask,
        Tensor o, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv, Tensor dkbar, Tensor dvbar) =>
        LsAttentionCuda.Backward(this, cfg, q, k, v, kbar, vbar, mask, o, lse, dout, dq, dk, dv, dkbar, dvbar);

    public void LsClsAttention(Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse) =>
        LsClsAttentionCuda.Forward(this, q, k, v, c, mask, o, lse);
    public void LsClsAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse, Tensor dout,
        Tensor dq, Tensor dk, Tensor dv, Tensor dc, bool accumulate = false) =>
        LsClsAttentionCuda.Backward(this, q, k, v, c, mask, o, lse, dout, dq, dk, dv, dc, accumulate);

    public void LsCausalAttention(LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse) => LsCausalAttentionCuda.Forward(this, cfg, x, o, lse);
    public void LsCausalAttentionBackward(LsCausalConfig cfg, in LsCausalInputs x, Tensor o, Tensor lse, Tensor dout, in LsCausalGradients grads) =>
        LsCausalAttentionCuda.Backward(this, cfg, x, o, lse, dout, grads);

    public void LsChunkProjection(int chunk, Tensor scores, Tensor x, Tensor? mask, Tensor y) => LsChunkProjectionCuda.Forward(this, chunk, scores, x, mask, y);
    public void LsChunkProjectionBackward(int chunk, Tensor scores, Tensor x, Tensor? mask, Tensor dy, Tensor dscores, Tensor dx, bool accumulate = false) =>
        LsChunkProjectionCuda.Backward(this, chunk, scores, x, mask, dy, dscores, dx, accumulate);

    public void LsProjection(Tensor scores, Tensor k, Tensor v, Tensor? mask, Tensor kbar, Tensor vbar, Tensor colmax, Tensor colsum) =>
        LsProjectionCuda.Forward(this, scores, k, v, mask, kbar, vbar, colmax, colsum);
    public void LsProjectionBackward(Tensor scores, Tensor k, Tensor v, Tensor? mask, Tensor colmax, Tensor colsum,
        Tensor dkbar, Tensor dvbar, Tensor dscores, Tensor dk, Tensor dv, bool accumulate = false) =>
        LsProjectionCuda.Backward(this, scores, k, v, mask, colmax, colsum, dkbar, dvbar, dscores, dk, dv, accumulate);

    public void Dispose()
    {
        lock (_gate)
        {
            _blas?.Dispose();
            _blas = null;
            foreach (var m in _modules.Values) m.Dispose();
            _modules.Clear();
            _kernels.Clear();
        }
        Context.Dispose();
    }
}
