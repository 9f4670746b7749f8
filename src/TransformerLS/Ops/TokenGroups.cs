namespace TransformerLS.Ops;

/// <summary>
/// The token groups of a deterministic two-stage sum over the sequence on the GPU (the projection's reductions, the
/// attention's landmark gradients): G = clamp(ceil(n / 512), 1, 1024) groups of ceil(n / G) consecutive tokens. Stage 1
/// reduces each group into a partial, stage 2 adds the partials in group order, so the bits do not depend on
/// scheduling. Depends on n alone, so the launchers and the nodes' workspace agree.
/// </summary>
static class TokenGroups
{
    const int TokensPerGroup = 512, MaxGroups = 1024;

    public static (int Groups, int Tokens) Of(int n)
    {
        var groups = (int)Math.Clamp((n + TokensPerGroup - 1L) / TokensPerGroup, 1, MaxGroups);
        return (groups, (int)((n + (long)groups - 1) / groups));
    }
}
