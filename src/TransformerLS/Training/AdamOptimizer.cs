using TransformerLS.Backends;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Training;

/// <summary>
/// Adam / AdamW over a model's parameters, on their backend. float32 parameters are updated in place; a
/// bfloat16 parameter gets a float32 master copy (mixed precision) that the step updates and rounds back into
/// the parameter. The global gradient norm is summed on the device every step: with <see cref="ClipNorm"/> the
/// gradients are clipped to it, and a step whose norm is not finite changes nothing and is recorded
/// (<see cref="FirstNonFiniteStep"/>). On the GPU a step is two launches for all parameters (Optimizer.AdamStepAll: the sum
/// in a fixed order, then every tensor's update); nothing comes back to the host.
/// </summary>
public sealed class AdamOptimizer : IDisposable
{
    sealed record Slot(Tensor Param, Tensor? Master, Tensor M, Tensor V);

    readonly IBackend _be;
    readonly Dictionary<string, Slot> _slots = [];
    readonly Tensor _sumSquares;
    readonly Tensor _badStep; // float32 [1]: the first step with a non-finite gradient norm, 0 while there is none
    readonly Tensor _hyper;   // float32 [4]: the step's lr, 1 − β1^t, 1 − β2^t and t, read by the update on the device
    AdamGroup? _group;

    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.999f;
    public float Eps { get; init; } = 1e-8f;
    public float WeightDecay { get; init; } = 0.01f;
    /// <summary>AdamW (decay on the weights, the default) or Adam (decay added to the gradient).</summary>
    public bool Decoupled { get; init; } = true;
    /// <summary>Global gradient-norm clip; null: none.</summary>
    public float? ClipNorm { get; init; } = 1f;
    /// <summary>Steps taken; the next step is Steps + 1.</summary>
    public int Steps { get; private set; }

    public AdamOptimizer(IBackend be, IReadOnlyDictionary<string, Tensor> parameters)
    {
        _be = be;
        foreach (var (name, p) in parameters.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            Tensor? master = null;
            if (p.DType == DType.BFloat16)
            {
                master = be.Empty(p.Shape, DType.Float32);
                Elementwise.Cast(be, p, master);
            }
            var m = be.Empty(p.Shape, p.DType.Wide());
            var v = be.Empty(p.Shape, p.DType.Wide());
            be.Fill(m, 0); be.Fill(v, 0);
            _slots.Add(name, new Slot(p, master, m, v));
        }
        _sumSquares = be.Empty(new Shape(1), DType.Float32);
        _badStep = be.Empty(new Shape(1), DType.Float32);
        be.Fill(_badStep, 0);
        _hyper = be.Empty(new Shape(4), DType.Float32);
        be.Fill(_hyper, 0);
    }

    /// <summary>
    /// Starts the optimizer over from the parameters as they are now (after loading weights from elsewhere): the
    /// float32 masters of bf16 parameters recast from them, the moments, the step count and the divergence record zeroed.
    /// </summary>
    public void ResetFromParameters()
    {
        foreach (var s in _slots.Values)
        {
            if (s.Master is not null) Elementwise.Cast(_be, s.Param, s.Master);
            _be.Fill(s.M, 0);
            _be.Fill(s.V, 0);
        }
        _be.Fill(_badStep, 0);
        Steps = 0;
    }

    /// <summary>
    /// The first step whose gradient norm was not finite (that step and every later one changed nothing), or null.
    /// Reads one float from the device: call it where the host waits anyway (a logged step, a save).
    /// </summary>
    public int? FirstNonFiniteStep()
    {
        var at = _badStep.ToArray()[0];
        return at == 0 ? null : (int)at;
    }

    /// <summary>One step with learning rate <paramref name="lr"/>; <paramref name="grads"/> has one gradient per parameter.</summary>
    public void Step(IReadOnlyDictionary<string, Tensor> grads, float lr)
    {
        CheckGradients(grads);
        BeginStep(lr);
        Update(grads);
    }

    void CheckGradients(IReadOnlyDictionary<string, Tensor> grads)
    {
        foreach (var name in _slots.Keys)
            if (!grads.ContainsKey(name)) throw new ArgumentException($"no gradient for parameter '{name}'", nameof(grads));
    }

    AdamHyper Hyper(float lr, int step) => new(lr, step, Beta1, Beta2, Eps, WeightDecay, Decoupled, ClipNorm ?? float.PositiveInfinity);

    /// <summary>
    /// The first half of <see cref="Step"/>: counts the step and writes its learning rate, bias corrections and number to
    /// device memory (stream-ordered, no host wait), where <see cref="EnqueueUpdate"/> reads them. A training step recorded
    /// as one CUDA graph with the update inside replays with the values written here before each launch.
    /// </summary>
    public void BeginStep(float lr)
    {
        var h = Hyper(lr, Steps + 1);
        Optimizer.WriteAdamHyper(_be, _hyper, h);
        Steps++;
    }

    /// <summary>
    /// The second half of <see cref="Step"/>: queues the update of every parameter (two launches on the GPU) with the
    /// hyperparameters <see cref="BeginStep"/> wrote. Allocates nothing once the group is built (the first call), so it
    /// can run inside a CUDA-graph capture.
    /// </summary>
    public void EnqueueUpdate(IReadOnlyDictionary<string, Tensor> grads)
    {
        CheckGradients(grads);
        if (Steps == 0) throw new InvalidOperationException("EnqueueUpdate before the first BeginStep: nothing says which step to take");
        Update(grads);
    }

    // The update with the gradients checked; h carries the constants, the step's lr and number are read from _hyper.
    void Update(IReadOnlyDictionary<string, Tensor> grads) =>
        Optimizer.AdamStepAll(_be, Hyper(1f, Steps), GroupFor(grads), _sumSquares, _badStep, _hyper);

    /// <summary>
    /// The multi-tensor group of the parameters and these gradients: built at the first step and again only when a
    /// gradient tensor changes (a trainer keeps its gradients, so a step normally checks references and allocates nothing).
    /// </summary>
    AdamGroup GroupFor(IReadOnlyDictionary<string, Tensor> grads)
    {
        if (_group is not null)
        {
            var i = 0;
            var same = true;
            foreach (var (name, s) in _slots) same &= _group.Holds(i++, s.Master ?? s.Param, grads[name]);
            if (same) return _group;
            _group.Dispose();
        }
        var entries = new List<AdamGroup.Entry>(_slots.Count);
        foreach (var (name, s) in _slots) entries.Add(new AdamGroup.Entry(s.Master ?? s.Param, grads[name], s.M, s.V, s.Master is null ? null : s.Param));
        return _group = new AdamGroup(_be, entries);
    }

    /// <summary>
    /// The optimizer's tensors under checkpoint names ("{param}.exp_avg", "{param}.exp_avg_sq", "{param}.master"),
    /// for saving and for loading in place; <see cref="Steps"/> travels in the checkpoint's metadata.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> State()
    {
        var d = new Dictionary<string, Tensor>();
        foreach (var (name, s) in _slots)
        {
            d[$"{name}.exp_avg"] = s.M;
            d[$"{name}.exp_avg_sq"] = s.V;
            if (s.Master is not null) d[$"{name}.master"] = s.Master;
        }
        return d;
    }

    /// <summary>Sets the step count after loading <see cref="State"/> from a checkpoint.</summary>
    public void Resume(int steps) => Steps = steps >= 0 ? steps : throw new ArgumentOutOfRangeException(nameof(steps), steps, "expected >= 0");

    public void Dispose()
    {
        foreach (var s in _slots.Values) { s.Master?.Dispose(); s.M.Dispose(); s.V.Dispose(); }
        _slots.Clear();
        _group?.Dispose();
        _group = null;
        _sumSquares.Dispose();
        _badStep.Dispose();
        _hyper.Dispose();
    }
}
