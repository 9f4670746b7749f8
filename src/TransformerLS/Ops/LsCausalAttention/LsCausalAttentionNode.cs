using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graphs.Nodes;

// The graph nodes of the LsCausalAttention family and their builders (the graph's vocabulary keeps one namespace, Graphs.Nodes,
// wherever a family's node lives).

/// <summary>The causal LS attention (sections 3.2-3.4). Inputs in <see cref="LsCausalInputs"/> order.</summary>
sealed class LsCausalAttentionNode(LsCausalConfig cfg, Value[] inputs, Value o, Value lse)
    : Node("ls-causal-attention", inputs, [o], [lse], [.. inputs, o, lse])
{
    LsCausalInputs Bind(RunContext c)
    {
        var x = Inputs;
        return new(c[x[0]], c[x[1]], c[x[2]], c[x[3]], c[x[4]], c[x[5]], c[x[6]], c[x[7]], c[x[8]], null);
    }

    public override void Forward(RunContext c) => LsCausalAttention.Forward(c.Backend, cfg, Bind(c), c[o], c[lse]);

    public override void Backward(RunContext c)
    {
        var scratch = new Tensor?[9];
        try
        {
            var g = new Tensor[9];
            for (var i = 0; i < 9; i++) g[i] = c.Target(i).Tensor ?? (scratch[i] = Grads.Scratch(c, c.Target(i), Inputs[i]))!;
            LsCausalAttention.Backward(c.Backend, cfg, Bind(c), c[o], c[lse], c.Grad(o), new LsCausalGradients(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]));
        }
        finally
        {
            foreach (var s in scratch) s?.Dispose();
        }
    }

    public override long Workspace(Device device, bool backward)
    {
        if (!backward) return 0;
        var bytes = Grads.ScratchBytes(this, 0, 1, 2, 3, 4, 5, 6, 7, 8);
        return bytes + Ops.LsCausalAttention.BackwardWorkspace(device, Inputs[0].DType, [.. Inputs.Select(v => v.Shape)]);
    }
}

public static partial class Builders
{
    /// <summary>The causal attention over <paramref name="x"/> = [q, k, v, u, vbias, rel, kc, vc, relc] (see <see cref="LsCausalInputs"/>).</summary>
    public static Value LsCausalAttention(this Graph g, LsCausalConfig cfg, params Value[] x)
    {
        if (x.Length != 9) throw new ArgumentException($"expected the 9 inputs of LsCausalInputs, got {x.Length}", nameof(x));
        var q = x[0];
        var o = Act(g, "attn", q.Shape, q.DType, x);
        g.Add(new LsCausalAttentionNode(cfg, x, o, Aux(g, q, "attn.lse", q.Shape[0], q.Shape[1], q.Shape[2])));
        return o;
    }
}
