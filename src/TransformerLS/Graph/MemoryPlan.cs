using TransformerLS.Tensors;

namespace TransformerLS.Graphs;

public enum StepKind { Forward, Recompute, Backward }

/// <summary>How one backward writes one input's gradient.</summary>
enum TargetMode { None, Overwrite, Accumulate, Temporary }

/// <summary>One step of a schedule, with the buffers born before it and freed after it.</summary>
sealed class PlannedStep(StepKind kind, Node node)
{
    public StepKind Kind { get; } = kind;
    public Node Node { get; } = node;
    public List<int> Births { get; } = [];
    /// <summary>Gradient slots born zero (outputs of this backward that no consumer fed).</summary>
    public List<int> Zeroed { get; } = [];
    public List<int> Deaths { get; } = [];
    public TargetMode[] Targets { get; set; } = [];
    public long TemporaryBytes { get; set; }
    public long Workspace { get; set; }
    public long LiveBytes { get; set; }
}

/// <summary>Bytes live during one step: <see cref="Bytes"/> includes its temporaries and op scratch.</summary>
public readonly record struct StepMemory(string Node, StepKind Kind, long Bytes);

/// <summary>
/// The schedule of a run and where every activation and activation gradient lives: each buffer is allocated
/// just before the first step that writes it and freed after the last step that reads it (a recomputed block
/// writes its values again). Bytes are counted like the allocators count them, so the measured high-water
/// mark of a run, above what was live before it, equals <see cref="PeakBytes"/>.
/// </summary>
public sealed class MemoryPlan
{
    internal List<PlannedStep> Steps { get; } = [];
    internal Value? Loss { get; private init; }

    /// <summary>The planned high-water mark of executor-owned memory (activations, gradients, temporaries, scratch).</summary>
    public long PeakBytes { get; private set; }
    /// <summary>The same run with every buffer kept to the end: what the plan saves is NoReuseBytes − PeakBytes.</summary>
    public long NoReuseBytes { get; private set; }
    /// <summary>Activation bytes alive when the forward pass ends (what a backward must keep, or the outputs of inference).</summary>
    public long BytesAfterForward { get; private set; }
    public IReadOnlyList<StepMemory> Memory => [.. Steps.Select(s => new StepMemory(s.Node.Name, s.Kind, s.LiveBytes))];

    internal static MemoryPlan Build(Graph g, IReadOnlyCollection<Value> keep, Value? loss, bool recompute, Device device)
    {
        var plan = new MemoryPlan { Loss = loss };
        var steps = plan.Steps;
        foreach (var n in g.Nodes) steps.Add(new PlannedStep(StepKind.Forward, n));
        var forwardSteps = steps.Count;
        var hasGrad = new bool[g.Values.Count];
        if (loss is not null)
        {
            hasGrad[loss.Id] = true;
            var recomputed = new HashSet<int>();
            for (var i = g.Nodes.Count - 1; i >= 0; i--)
            {
                var n = g.Nodes[i];
                if (!n.Outputs.Any(o => hasGrad[o.Id]) || !n.Inputs.Any(v => v.RequiresGrad)) continue;
                // A block's activations are recomputed just before the first of its backward steps.
                if (recompute && n.Block >= 0 && recomputed.Add(n.Block))
                    foreach (var r in g.Nodes.Where(m => m.Block == n.Block)) steps.Add(new PlannedStep(StepKind.Recompute, r));
                var s = new PlannedStep(StepKind.Backward, n) { Targets = new TargetMode[n.Inputs.Length] };
                for (var k = 0; k < n.Inputs.Length; k++)
                {
                    var v = n.Inputs[k];
                    if (!v.RequiresGrad || n.Inputs[..k].Contains(v)) continue;
                    // Parameter gradients are zeroed before a backward (or hold earlier micro-batches), so every contribution adds.
                    var fresh = v.Kind == ValueKind.Activation && !hasGrad[v.Id];
                    s.Targets[k] = fresh ? TargetMode.Overwrite : n.Accumulates(k) ? TargetMode.Accumulate : TargetMode.Temporary;
                    if (s.Targets[k] == TargetMode.Temporary) s.TemporaryBytes += v.Bytes;
                    hasGrad[v.Id] = true;
                }
                steps.Add(s);
            }
        }
        plan.Place(g.Values.Count, keep, forwardSteps, device);
        return plan;
    }

    /// <summary>Births and deaths from each slot's first and last use (value slots: id; gradient slots: count + id); then the bytes of every step.</summary>
    void Place(int nv, IReadOnlyCollection<Value> keep, int forwardSteps, Device device)
    {
        var first = new int[2 * nv];
        var last = new int[2 * nv];
        var bytes = new long[2 * nv];
        Array.Fill(first, -1);
        var fed = new bool[nv]; // gradient slots that something writes (or the loss seed) before their first read
        if (Loss is not null) fed[Loss.Id] = true;
        long intervals = 0;
        var kept = keep.Select(v => v.Id).ToHashSet();
        var ended = false;
        void Close(int slot)
        {
            if (first[slot] < 0) return;
            Steps[first[slot]].Births.Add(slot);
            if (!(ended && slot < nv && kept.Contains(slot))) Steps[last[slot]].Deaths.Add(slot); // kept values outlive the run
            intervals += bytes[slot];
            first[slot] = -1;
        }
        void Use(int slot, int step, long size, bool rewrite)
        {
            if (rewrite && first[slot] >= 0) Close(slot); // a recomputed value starts a new life
            if (first[slot] < 0) { first[slot] = step; bytes[slot] = size; }
            last[slot] = step;
        }
        for (var i = 0; i < Steps.Count; i++)
        {
            var s = Steps[i];
            var n = s.Node;
            if (s.Kind != StepKind.Backward)
            {
                foreach (var v in n.Inputs) if (v.Kind == ValueKind.Activation) Use(v.Id, i, v.Bytes, false);
                foreach (var v in n.Outputs.Concat(n.Aux)) Use(v.Id, i, v.Bytes, true);
                continue;
            }
            foreach (var v in n.Saved) if (v.Kind == ValueKind.Activation) Use(v.Id, i, v.Bytes, false);
            foreach (var v in n.Outputs)
            {
                if (!fed[v.Id]) { fed[v.Id] = true; s.Zeroed.Add(nv + v.Id); }
                Use(nv + v.Id, i, v.Bytes, false);
            }
            for (var k = 0; k < n.Inputs.Length; k++)
                if (s.Targets[k] != TargetMode.None && n.Inputs[k].Kind == ValueKind.Activation)
                {
                    fed[n.Inputs[k].Id] = true;
                    Use(nv + n.Inputs[k].Id, i, n.Inputs[k].Bytes, false);
                }
        }
        ended = true;
        for (var slot = 0; slot < 2 * nv; slot++) Close(slot);

        long live = 0, extra = 0;
        for (var i = 0; i < Steps.Count; i++)
        {
            var s = Steps[i];
            foreach (var slot in s.Births) live += bytes[slot];
            s.Workspace = s.Node.Workspace(device, s.Kind == StepKind.Backward);
            s.LiveBytes = live + s.TemporaryBytes + s.Workspace;
            PeakBytes = Math.Max(PeakBytes, s.LiveBytes);
            extra = Math.Max(extra, s.TemporaryBytes + s.Workspace);
            foreach (var slot in s.Deaths) live -= bytes[slot];
            if (i == forwardSteps - 1) BytesAfterForward = live;
        }
        NoReuseBytes = intervals + extra;
    }
}
