using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs;

/// <summary>
/// One op of a graph: a forward that writes its outputs (and auxiliary results such as saved statistics), and a
/// backward that reads the gradients of its outputs and writes those of its inputs. Subclasses live in Nodes/,
/// each beside the builder that adds it.
/// </summary>
public abstract class Node
{
    protected Node(string name, Value[] inputs, Value[] outputs, Value[]? aux = null, Value[]? saved = null)
    {
        Name = name; Inputs = inputs; Outputs = outputs; Aux = aux ?? []; Saved = saved ?? [];
    }

    public string Name { get; }
    public Value[] Inputs { get; }
    /// <summary>Outputs that carry gradients.</summary>
    public Value[] Outputs { get; }
    /// <summary>Outputs without gradients (statistics the backward reuses, log-sum-exps).</summary>
    public Value[] Aux { get; }
    /// <summary>What the backward reads besides the output gradients: inputs, outputs or aux values.</summary>
    public Value[] Saved { get; }
    internal int Block { get; set; } = -1;

    public abstract void Forward(RunContext c);
    public abstract void Backward(RunContext c);

    /// <summary>Whether the backward can add input <paramref name="input"/>'s gradient into an existing one (else the executor sums a temporary).</summary>
    public virtual bool Accumulates(int input) => false;

    /// <summary>
    /// Scratch bytes the ops of this node allocate internally at their peak on <paramref name="device"/>
    /// (beyond outputs and gradients), so the planned peak equals the measured one.
    /// </summary>
    public virtual long Workspace(Device device, bool backward) => 0;

    public override string ToString() => Name;
}

/// <summary>Where a backward writes an input's gradient: nowhere (null), overwriting, or adding.</summary>
public readonly record struct GradTarget(Tensor? Tensor, bool Accumulate)
{
    public bool Wanted => Tensor is not null;
}

/// <summary>What a node sees while it runs: the tensors of its values, gradients, the backend and the run's seed.</summary>
public sealed class RunContext
{
    internal readonly Tensor?[] Tensors;
    internal readonly Tensor?[] Grads;
    internal readonly GradTarget[] Targets;

    internal RunContext(IBackend backend, int values, int maxInputs)
    {
        Backend = backend;
        Targets = new GradTarget[maxInputs];
        Tensors = new Tensor?[values];
        Grads = new Tensor?[values];
    }

    public IBackend Backend { get; }
    /// <summary>True while training: dropout is active.</summary>
    public bool Training { get; internal set; }
    /// <summary>The run's seed; a dropout node draws its mask from (seed, node).</summary>
    public ulong Seed { get; internal set; }
    /// <summary>While a CUDA graph is recorded: the device run seed (8 bytes), which each replay rewrites; else null.</summary>
    public Tensor? RunSeed { get; internal set; }

    public Tensor this[Value v] => v.Bound ?? Tensors[v.Id] ?? throw new InvalidOperationException($"{v} is not live at this step (a memory plan error)");

    /// <summary>The gradient of an output of the running node (zeros when nothing flowed into it).</summary>
    public Tensor Grad(Value output) => Grads[output.Id] ?? throw new InvalidOperationException($"no gradient for {output} at this step (a memory plan error)");

    /// <summary>Where the running backward writes the gradient of its input number <paramref name="input"/>.</summary>
    public GradTarget Target(int input) => Targets[input];
}
