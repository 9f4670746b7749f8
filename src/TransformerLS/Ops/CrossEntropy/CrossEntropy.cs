using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

// The CrossEntropy family: this facade; CrossEntropy.Reference.cs (checks, reference);
// CrossEntropyCuda.cs (launcher, params mirror); CrossEntropyNode.cs (graph node, builder); CrossEntropyCases.cs (test and bench cases). See Ops/README.md.

/// <summary>Cross-entropy and its mean (kernels/cross_entropy/); checks once, then CUDA or the CPU reference.</summary>
public static partial class CrossEntropy
{
    /// <summary>
    /// loss_i = logsumexp(logits_i) − logits_i[target_i] over logits [N, V]; target: float32 [N] class indices, negative =
    /// ignored (loss 0); loss and lse: float32 [N] (lse is saved for the backward).
    /// </summary>
    public static void Forward(IBackend be, Tensor logits, Tensor target, Tensor loss, Tensor lse)
    {
        var (n, v) = CheckShapes(be, logits, target, loss, lse);
        if (be is CudaBackend cuda) { CrossEntropyCuda.Forward(cuda, n, v, logits, target, loss, lse); return; }
        CpuReference.Run([logits, target], [loss, lse], v, static (s, i, o) => {
            var v = s;
            CheckTargets(i[1], v);
            Forward<double>(v, i[0], i[1], o[0], o[1]);
        });
    }

    /// <summary>dlogits = dloss_i·(softmax(logits_i) − onehot(target_i)), zero on ignored rows; overwritten.</summary>
    public static void Backward(IBackend be, Tensor logits, Tensor target, Tensor lse, Tensor dloss, Tensor dlogits)
    {
        var (n, v) = CheckShapes(be, logits, target, dloss, lse, nameof(dloss));
        Check.Like(be, dlogits, logits, nameof(dlogits));
        if (be is CudaBackend cuda) { CrossEntropyCuda.Backward(cuda, n, v, logits, target, lse, dloss, dlogits); return; }
        CpuReference.Run([logits, target, lse, dloss], [dlogits], v, static (s, i, o) => {
            var v = s;
            CheckTargets(i[1], v);
            Backward<double>(v, i[0], i[1], i[2], i[3], o[0]);
        });
    }

    /// <summary>
    /// mean [1] = Σ loss_i over rows whose target is not ignored / count, count [1] = those rows (0 and 0 when all are
    /// ignored): torch's CrossEntropyLoss mean, with the count found on the device. All float32.
    /// </summary>
    public static void LossMean(IBackend be, Tensor loss, Tensor target, Tensor mean, Tensor count)
    {
        var n = CheckMean(be, loss, target, mean, count);
        if (be is CudaBackend cuda) CrossEntropyCuda.Mean(cuda, n, loss, target, mean, count);
        else CpuReference.Run([loss, target], [mean, count], static (i, o) => Mean<double>(i[0], i[1], out o[0][0], out o[1][0]));
    }

    /// <summary>dloss_i = dmean / count on rows with a target, 0 on ignored rows; overwritten.</summary>
    public static void LossMeanBackward(IBackend be, Tensor target, Tensor count, Tensor dmean, Tensor dloss)
    {
        var n = CheckMean(be, dloss, target, dmean, count, nameof(dloss), nameof(dmean));
        if (be is CudaBackend cuda) CrossEntropyCuda.MeanBackward(cuda, n, target, count, dmean, dloss);
        else CpuReference.Run([target, count, dmean], [dloss], static (i, o) => MeanBackward<double>(i[0], i[1][0], i[2][0], o[0]));
    }
}
