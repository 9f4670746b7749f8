using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Graph.Nodes;

// Nodes of the LS attention ops. Workspace figures mirror the CUDA launchers' internal allocations
// (Float32Accumulators: fp32 sums for bf16 outputs; the projection backward's double column dots).

/// <summary>DualLN: one LayerNorm (weights shared) over xk and xv into head-split yk, yv; statistics [2, B, T].</summary>
sealed class DualLayerNormNode(Value xk, Value xv, Value gamma, Value beta, Value yk, Value yv, Value mean, Value rstd, float eps)
    : Node($"dual-layernorm {gamma.Name}", [xk, xv, gamma, beta], [yk, yv], [mean, rstd], [xk, xv, gamma, mean, rstd])
{
    public override void Forward(RunContext c) =>
        DualLayerNorm.Forward(c.Backend, c[xk], c[xv], c[gamma], c[beta], c[yk], c[yv], c[mean], c[rstd], eps);

    public override void Backward(RunContext c)
    {
        using Tensor? sk = Grads.Scratch(c, c.Target(0), xk), sv = Grads.Scratch(c, c.Target(1), xv);
        DualLayerNorm.Backward(c.Backend, c.Grad(yk), c.Grad(yv), c[xk], c[xv], c[gamma], c[mean], c[rstd],
            c.Target(0).Tensor ?? sk!, c.Target(1).Tensor ?? sv!, c.Target(2).Tensor!, c.Target(3).Tensor!);
    }

    public override long Workspace(Device device, bool backward) => backward ? Grads.ScratchBytes(this, 0, 1) : 0;
}

/// <summary>K̄ = P·K, V̄ = P·V, P the softmax over the sequence of the projection scores (LRA, section 1.3).</summary>
sealed class LsProjectionNode(Value scores, Value k, Value v, Value? mask, Value kbar, Value vbar, Value colmax, Value colsum)
    : Node("ls-projection", mask is null ? [scores, k, v] : [scores, k, v, mask], [kbar, vbar], [colmax, colsum],
        mask is null ? [scores, k, v, colmax, colsum] : [scores, k, v, mask, colmax, colsum])
{
    public override void Forward(RunContext c) =>
        LsProjection.Forward(c.Backend, c[scores], c[k], c[v], mask is null ? null : c[mask], c[kbar], c[vbar], c[colmax], c[colsum]);

    public override void Backward(RunContext c)
    {
        var acc = Grads.OneFlag(c, c.Target(1), c.Target(2));
        LsProjection.Backward(c.Backend, c[scores], c[k], c[v], mask is null ? null : c[mask], c[colmax], c[colsum], c.Grad(kbar), c.Grad(vbar),
            c.Target(0).Tensor!, c.Target(1).Tensor!, c.Target(2).Tensor!, acc);
    }

    public override bool Accumulates(int input) => input is 1 or 2;

    public override long Workspace(Device device, bool backward) => device.Kind != DeviceKind.Cuda ? 0
        : backward ? 8 * kbar.Shape.Product(0, 3) : k.DType == DType.BFloat16 ? 4 * (kbar.Shape.Count + vbar.Shape.Count) : 0;
}

/// <summary>The bidirectional LS attention: one softmax over landmarks and the segment window (section 1.4-1.5).</summary>
sealed class LsAttentionNode(LsAttentionConfig cfg, Value q, Value k, Value v, Value kbar, Value vbar, Value? mask, Value o, Value lse)
    : Node("ls-attention", mask is null ? [q, k, v, kbar, vbar] : [q, k, v, kbar, vbar, mask], [o], [lse],
        mask is null ? [q, k, v, kbar, vbar, o, lse] : [q, k, v, kbar, vbar, mask, o, lse])
{
    public override void Forward(RunContext c) =>
        LsAttention.Forward(c.Backend, cfg, c[q], c[k], c[v], c[kbar], c[vbar], mask is null ? null : c[mask], c[o], c[lse]);

    public override void Backward(RunContext c) =>
        LsAttention.Backward(c.Backend, cfg, c[q], c[k], c[v], c[kbar], c[vbar], mask is null ? null : c[mask], c[o], c[lse], c.Grad(o),
            c.Target(0).Tensor!, c.Target(1).Tensor!, c.Target(2).Tensor!, c.Target(3).Tensor!, c.Target(4).Tensor!);

    public override long Workspace(Device device, bool backward) => backward && device.Kind == DeviceKind.Cuda && q.DType == DType.BFloat16
        ? 4 * (k.Shape.Count + v.Shape.Count + kbar.Shape.Count + vbar.Shape.Count) : 0;
}

/// <summary>The CLS query of the LRA last layer over its own key and the tokens' attention outputs c (section 1.6); [B, H, 1, d] values.</summary>
sealed class LsClsAttentionNode(Value q, Value k, Value v, Value ctx, Value? mask, Value o, Value lse)
    : Node("ls-cls-attention", mask is null ? [q, k, v, ctx] : [q, k, v, ctx, mask], [o], [lse],
        mask is null ? [q, k, v, ctx, o, lse] : [q, k, v, ctx, mask, o, lse])
{
    int[] Row => [q.Shape[0], q.Shape[1], q.Shape[3]];

    public override void Forward(RunContext c)
    {
        using Tensor q3 = c[q].Reshape(Row), k3 = c[k].Reshape(Row), v3 = c[v].Reshape(Row), o3 = c[o].Reshape(Row);
        LsClsAttention.Forward(c.Backend, q3, k3, v3, c[ctx], mask is null ? null : c[mask], o3, c[lse]);
    }

    public override void Backward(RunContext c)
    {
        using Tensor q3 = c[q].Reshape(Row), k3 = c[k].Reshape(Row), v3 = c[v].Reshape(Row), o3 = c[o].Reshape(Row), do3 = c.Grad(o).Reshape(Row),
            dq = c.Target(0).Tensor!.Reshape(Row), dk = c.Target(1).Tensor!.Reshape(Row), dv = c.Target(2).Tensor!.Reshape(Row);
        LsClsAttention.Backward(c.Backend, q3, k3, v3, c[ctx], mask is null ? null : c[mask], o3, c[lse], do3, dq, dk, dv,
            c.Target(3).Tensor!, c.Target(3).Accumulate);
    }

    public override bool Accumulates(int input) => input == 3;
}

/// <summary>Per-chunk dynamic projection of the causal attention (section 3.3): y [B, H, chunks·r, d].</summary>
sealed class LsChunkProjectionNode(int chunk, Value scores, Value x, Value y)
    : Node("ls-chunk-projection", [scores, x], [y], saved: [scores, x])
{
    public override void Forward(RunContext c) => LsChunkProjection.Forward(c.Backend, chunk, c[scores], c[x], null, c[y]);

    public override void Backward(RunContext c)
    {
        using Tensor? ss = Grads.Scratch(c, c.Target(0), scores), sx = Grads.Scratch(c, c.Target(1), x);
        var acc = Grads.OneFlag(c, c.Target(0), c.Target(1));
        LsChunkProjection.Backward(c.Backend, chunk, c[scores], c[x], null, c.Grad(y), c.Target(0).Tensor ?? ss!, c.Target(1).Tensor ?? sx!, acc);
    }

    public override bool Accumulates(int input) => true;
    public override long Workspace(Device device, bool backward) => backward ? Grads.ScratchBytes(this, 0, 1) : 0;
}

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
        // Everything but dq sums atomically in fp32 for bf16.
        if (device.Kind == DeviceKind.Cuda && Inputs[0].DType == DType.BFloat16) bytes += 4 * Inputs[1..].Sum(v => v.Shape.Count);
        return bytes;
    }
}
