using TransformerLS.Tensors;

namespace TransformerLS.Backends;

/// <summary>
/// One op interface, two implementations: the CPU backend (the reference: float64 accumulation, results
/// rounded to the tensor's dtype) and the CUDA backend (NVRTC kernels and cuBLAS). Every op validates its
/// arguments the same way on both (the checks live beside each op's reference in Ops/).
/// Outputs are written, never read, unless an op says it accumulates.
/// </summary>
public interface IBackend : IDisposable
{
    Device Device { get; }

    /// <summary>A tensor whose contents are undefined.</summary>
    Tensor Empty(Shape shape, DType dtype);
    void Fill(Tensor t, float value);
    void CopyFromHost(Tensor t, ReadOnlySpan<byte> bytes);
    void CopyToHost(Tensor t, Span<byte> bytes);
    internal void Free(ulong devicePointer, long bytes);
    /// <summary>Waits for all queued work (a no-op on the CPU).</summary>
    void Synchronize();
    /// <summary>Bytes of tensors and op scratch live on this backend, and their high-water mark.</summary>
    Cuda.AllocatorStats MemoryStats { get; }
    /// <summary>Starts a new high-water mark at the current live size.</summary>
    void ResetPeak();

    // ---- elementwise family (kernels/elementwise.cu) ----
    /// <summary>y = alpha·a + beta·b (b may be null).</summary>
    void Axpby(Tensor a, float alpha, Tensor? b, float beta, Tensor y);
    /// <summary>y = GELU(x), the erf form (torch.nn.GELU()).</summary>
    void Gelu(Tensor x, Tensor y);
    void GeluBackward(Tensor x, Tensor dy, Tensor dx);
    void Relu(Tensor x, Tensor y);
    void ReluBackward(Tensor x, Tensor dy, Tensor dx);
    /// <summary>
    /// y = x·keep/(1 − p), keep a pure function of (seed, element index), so the backward is Dropout(dy, dx, p, seed)
    /// with the same seed, and CPU and GPU drop the same elements.
    /// </summary>
    void Dropout(Tensor x, Tensor y, float p, ulong seed);
    /// <summary>y[..., c] = x[..., c] + bias[c].</summary>
    void BiasAdd(Tensor x, Tensor bias, Tensor y);
    /// <summary>y = x converted to y's dtype (rounded to nearest even for bf16); same shape.</summary>
    void Cast(Tensor x, Tensor y);
    /// <summary>y[c] = beta·y[c] + Σ_rows x[..., c] (reads y only when beta ≠ 0); y has x's dtype or float32.</summary>
    void ColumnSum(Tensor x, Tensor y, float beta = 0f);
    /// <summary>y += x, y of x's dtype or float32 (gradient accumulation into fp32 parameter gradients).</summary>
    void AddTo(Tensor x, Tensor y);

    // ---- layout (kernels/layout.cu) ----
    /// <summary>x [A, B, C, D] → y [A, C, B, D]: split heads ([B, T, H, d] → [B, H, T, d]) and merge them back.</summary>
    void SwapAxes12(Tensor x, Tensor y);
    /// <summary>
    /// dst[.., dstOffset + j, ..] = src[.., srcOffset + j, ..] for j &lt; length along <paramref name="axis"/> (added to
    /// dst with <paramref name="accumulate"/>); the shapes agree on every other axis. Concatenation and slicing.
    /// </summary>
    void CopySlice(Tensor src, int srcOffset, Tensor dst, int dstOffset, int axis, int length, bool accumulate = false);

    // ---- dual layernorm of the LS attention (kernels/dual_layernorm.cu) ----
    /// <summary>
    /// LayerNorm over all H·d channels of each token of xk (and xv, same weights) into head-split yk/yv [B, H, T, d].
    /// x: token-major [B, T, H·d] or head-split [B, H, T, d]; mean, rstd: [S, B, T] float32 (S = 2 with xv, else 1).
    /// </summary>
    void DualLayerNorm(Tensor xk, Tensor? xv, Tensor gamma, Tensor beta, Tensor yk, Tensor? yv, Tensor mean, Tensor rstd, float eps);
    /// <summary>dxk/dxv in x's layout; dgamma and dbeta (summed over K and V) are overwritten.</summary>
    void DualLayerNormBackward(Tensor dyk, Tensor? dyv, Tensor xk, Tensor? xv, Tensor gamma, Tensor mean, Tensor rstd,
        Tensor dxk, Tensor? dxv, Tensor dgamma, Tensor dbeta);

    // ---- matmul (cuBLAS on the GPU) ----
    /// <summary>
    /// Batched row-major c = alpha·op(a)·op(b) + beta·c over the leading axes; b may be 2-D (one matrix for the
    /// whole batch). Reads c only when beta ≠ 0. c has a's dtype, or float32 when a and b are bfloat16.
    /// </summary>
    void MatMul(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha = 1f, float beta = 0f);

    // ---- layernorm family (kernels/layernorm.cu) ----
    /// <summary>LayerNorm over the last axis; gamma, beta, mean and rstd are float32. mean/rstd may be null.</summary>
    void LayerNorm(Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor? mean, Tensor? rstd, float eps);
    void LayerNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx, Tensor dgamma, Tensor dbeta, bool accumulate = false);

    // ---- softmax family (kernels/softmax.cu) ----
    void Softmax(Tensor x, Tensor y, int axis);
    void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx, int axis);

    // ---- bidirectional LS attention (kernels/ls_attention_bidir.cu) ----
    /// <summary>
    /// One softmax over the r landmarks and the segment window of each query (reference section 1.4-1.5).
    /// q, k, v: [B, H, n, d] (q unscaled; the op applies 1/√d); kbar, vbar: [B, H, r, d]; mask: [B, n] float32
    /// (1 token, 0 pad) or null; o: [B, H, n, d]; lse: [B, H, n] float32.
    /// </summary>
    void LsAttention(Ops.LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask, Tensor o, Tensor lse);
    /// <summary>Gradients of the LS attention from its saved output and log-sum-exp; every gradient is overwritten.</summary>
    void LsAttentionBackward(Ops.LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask,
        Tensor o, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv, Tensor dkbar, Tensor dvbar);

    // ---- CLS attention of the LRA last layer (kernels/ls_cls_attention.cu) ----
    /// <summary>
    /// o = softmax([σq·k, σq·C_t for real tokens t])·[v; C_t] (reference section 1.6). q, k, v, o: [B, H, d] (q unscaled);
    /// c: [B, H, n, d], the tokens' attention outputs; mask [B, n] or null; lse: [B, H] float32.
    /// </summary>
    void LsClsAttention(Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse);
    /// <summary>dq, dk, dv overwritten; dc overwritten or, with <paramref name="accumulate"/>, added to.</summary>
    void LsClsAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor c, Tensor? mask, Tensor o, Tensor lse, Tensor dout,
        Tensor dq, Tensor dk, Tensor dv, Tensor dc, bool accumulate = false);

    // ---- causal LS attention (kernels/ls_attention_causal.cu) ----
    /// <summary>
    /// One softmax over the compressed keys of earlier chunks and the band of the last w positions, with the
    /// Transformer-XL relative terms (reference section 3.2-3.4). Shapes: <see cref="Ops.LsCausalInputs"/>;
    /// o: like q; lse: [B, H, L] float32.
    /// </summary>
    void LsCausalAttention(Ops.LsCausalConfig cfg, in Ops.LsCausalInputs x, Tensor o, Tensor lse);
    /// <summary>Gradients of the causal LS attention from its saved output and log-sum-exp; every gradient is overwritten.</summary>
    void LsCausalAttentionBackward(Ops.LsCausalConfig cfg, in Ops.LsCausalInputs x, Tensor o, Tensor lse,
        Tensor dout, in Ops.LsCausalGradients grads);

    // ---- chunked dynamic projection of the causal attention (kernels/ls_projection_chunked.cu) ----
    /// <summary>
    /// y[c·r + k] = Σ_t P_t·x_t, P = softmax over the tokens of chunk c (l positions) of scores[:, h·r + k], per head.
    /// scores [B, T, H·r]; x [B, H, T, d]; mask [B, T] or null; y [B, H, ⌈T/l⌉·r, d].
    /// </summary>
    void LsChunkProjection(int chunk, Tensor scores, Tensor x, Tensor? mask, Tensor y);
    /// <summary>dscores and dx, overwritten or, with <paramref name="accumulate"/>, added to.</summary>
    void LsChunkProjectionBackward(int chunk, Tensor scores, Tensor x, Tensor? mask, Tensor dy, Tensor dscores, Tensor dx, bool accumulate = false);

    // ---- dynamic projection (kernels/ls_projection.cu) ----
    /// <summary>
    /// K̄ = P·K, V̄ = P·V with P = softmax over the sequence of scores [B, n, H·r] (padding excluded), per head;
    /// k, v: [B, H, n, d]; kbar, vbar: [B, H, r, d]; colmax, colsum: [B, H·r] float32, saved for the backward.
    /// </summary>
    void LsProjection(Tensor scores, Tensor k, Tensor v, Tensor? mask, Tensor kbar, Tensor vbar, Tensor colmax, Tensor colsum);
    /// <summary>dscores (overwritten); dk, dv overwritten or, with <paramref name="accumulate"/>, added to.</summary>
    void LsProjectionBackward(Tensor scores, Tensor k, Tensor v, Tensor? mask, Tensor colmax, Tensor colsum,
        Tensor dkbar, Tensor dvbar, Tensor dscores, Tensor dk, Tensor dv, bool accumulate = false);

    // ---- optimizer (kernels/optimizer.cu) ----
    /// <summary>acc[0] += Σ x² (acc: float32 [1]): summed over all gradients, the global norm for clipping.</summary>
    void SumOfSquares(Tensor x, Tensor acc);
    /// <summary>
    /// One torch.optim.Adam / AdamW step, in place on the float32 param, m and v. With <paramref name="sumSquares"/>
    /// (Σ g² of all gradients, on the device) the gradient is clipped to the global norm h.MaxNorm without a host
    /// round trip; <paramref name="copy"/> (bf16) receives the updated weights when param is a master copy.
    /// </summary>
    void AdamStep(in Ops.AdamHyper h, Tensor param, Tensor grad, Tensor m, Tensor v, Tensor? sumSquares = null, Tensor? copy = null);

    // ---- cross-entropy (kernels/cross_entropy.cu) ----
    /// <summary>
    /// loss_i = logsumexp(logits_i) − logits_i[target_i] over logits [N, V]; target: float32 [N] class indices, negative =
    /// ignored (loss 0); loss and lse: float32 [N] (lse is saved for the backward).
    /// </summary>
    void CrossEntropy(Tensor logits, Tensor target, Tensor loss, Tensor lse);
    /// <summary>dlogits = dloss_i·(softmax(logits_i) − onehot(target_i)), zero on ignored rows; overwritten.</summary>
    void CrossEntropyBackward(Tensor logits, Tensor target, Tensor lse, Tensor dloss, Tensor dlogits);
    /// <summary>
    /// mean [1] = Σ loss_i over rows whose target is not ignored / count, count [1] = those rows (0 and 0 when all are
    /// ignored): torch's CrossEntropyLoss mean, with the count found on the device. All float32.
    /// </summary>
    void LossMean(Tensor loss, Tensor target, Tensor mean, Tensor count);
    /// <summary>dloss_i = dmean / count on rows with a target, 0 on ignored rows; overwritten.</summary>
    void LossMeanBackward(Tensor target, Tensor count, Tensor dmean, Tensor dloss);

    // ---- embedding (kernels/embedding.cu) ----
    /// <summary>y[i] = weight[tokens[i]] (weight [V, D], tokens float32 [N] indices, negative = padding: a zero row); y [N, D].</summary>
    void Embedding(Tensor weight, Tensor tokens, Tensor y);
    /// <summary>dweight (float32 [V, D]) = or += the sum of dy rows per token; padding tokens add nothing.</summary>
    void EmbeddingBackward(Tensor tokens, Tensor dy, Tensor dweight, bool accumulate = false);
}
