using TransformerLS.Ops;
using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>The attention-side ops name the argument, the value and what was expected (both backends share the checks).</summary>
public class AttentionBadInputTests
{
    static readonly CpuBackend Be = CpuBackend.Instance;
    static Tensor T(params int[] s) => Be.Empty(new Shape(s), DType.Float32);

    static void Named<TE>(string param, string fragment, Action a) where TE : ArgumentException
    {
        var e = Assert.Throws<TE>(a);
        Assert.Equal(param, e.ParamName);
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void Dual_layernorm()
    {
        using var scope = new TensorScope();
        Named<ArgumentException>("xk", "[2, 5, 8]", () => DualLayerNorm.Forward(Be, T(2, 5, 7), null, T(8), T(8), T(2, 2, 5, 4), null, T(1, 2, 5), T(1, 2, 5), 1e-5f));
        Named<ArgumentException>("mean", "[2, 2, 5]", () => DualLayerNorm.Forward(Be, T(2, 5, 8), T(2, 5, 8), T(8), T(8), T(2, 2, 5, 4), T(2, 2, 5, 4), T(1, 2, 5), T(2, 2, 5), 1e-5f));
        Named<ArgumentException>("xv", "both", () => DualLayerNorm.Forward(Be, T(2, 5, 8), T(2, 5, 8), T(8), T(8), T(2, 2, 5, 4), null, T(2, 2, 5), T(2, 2, 5), 1e-5f));
    }

    [Fact]
    public void Chunk_projection_and_cls_attention()
    {
        using var scope = new TensorScope();
        Named<ArgumentOutOfRangeException>("chunk", "l must be >= 1", () => LsChunkProjection.Forward(Be, 0, T(1, 8, 2), T(1, 2, 8, 4), null, T(1, 2, 8, 4)));
        Named<ArgumentException>("y", "[1, 2, 2, 4]", () => LsChunkProjection.Forward(Be, 4, T(1, 8, 2), T(1, 2, 8, 4), null, T(1, 2, 3, 4)));
        Named<ArgumentException>("scores", "[1, 8, 2·r]", () => LsChunkProjection.Forward(Be, 4, T(1, 8, 3), T(1, 2, 8, 4), null, T(1, 2, 2, 4)));
        Named<ArgumentException>("q", "[1, 2, 4]", () => LsClsAttention.Forward(Be, T(1, 2, 5), T(1, 2, 4), T(1, 2, 4), T(1, 2, 6, 4), null, T(1, 2, 4), T(1, 2)));
        Named<ArgumentException>("mask", "[1, 6]", () => LsClsAttention.Forward(Be, T(1, 2, 4), T(1, 2, 4), T(1, 2, 4), T(1, 2, 6, 4), T(1, 5), T(1, 2, 4), T(1, 2)));
    }

    [Fact]
    public void Layout()
    {
        using var scope = new TensorScope();
        Named<ArgumentException>("y", "[2, 4, 3, 5]", () => Ops.Layout.SwapAxes12(Be, T(2, 3, 4, 5), T(2, 3, 4, 5)));
        Named<ArgumentOutOfRangeException>("dstOffset", "[3, 6)", () => Ops.Layout.CopySlice(Be, T(2, 3, 4), 0, T(2, 5, 4), 3, 1, 3));
        Named<ArgumentException>("dst", "except along axis 1", () => Ops.Layout.CopySlice(Be, T(2, 3, 4), 0, T(2, 5, 3), 0, 1, 3));
    }

    /// <summary>TLS_WGMMA picks the Hopper passes: 0 / unset none, 1 / all every one, a comma list some; anything else names the value.</summary>
    [Fact]
    public void Wgmma_switch_values()
    {
        Assert.Empty(LsAttentionCuda.ParseWgmma(null));
        Assert.Empty(LsAttentionCuda.ParseWgmma("0"));
        Assert.Equal(["dq", "fwd", "keys"], LsAttentionCuda.ParseWgmma("1").Order());
        Assert.Equal(["dq", "fwd", "keys"], LsAttentionCuda.ParseWgmma(" ALL ").Order());
        Assert.Equal(["fwd", "keys"], LsAttentionCuda.ParseWgmma("keys, fwd").Order());
        Named<ArgumentException>("TLS_WGMMA", "'fwd,bwd'", () => LsAttentionCuda.ParseWgmma("fwd,bwd"));
        Named<ArgumentException>("TLS_WGMMA", "distinct", () => LsAttentionCuda.ParseWgmma("dq,dq"));
    }

    /// <summary>TLS_DECODE_SPLITS overrides the decode attention's split count: unset the launcher's choice, 1..4096 that many; anything else names the value.</summary>
    [Fact]
    public void Decode_splits_switch_values()
    {
        Assert.Null(LsCausalDecodeCuda.ParseSplits(null));
        Assert.Null(LsCausalDecodeCuda.ParseSplits(" "));
        Assert.Equal(1, LsCausalDecodeCuda.ParseSplits("1"));
        Assert.Equal(12, LsCausalDecodeCuda.ParseSplits(" 12 "));
        Named<ArgumentException>("TLS_DECODE_SPLITS", "'0'", () => LsCausalDecodeCuda.ParseSplits("0"));
        Named<ArgumentException>("TLS_DECODE_SPLITS", "'-3'", () => LsCausalDecodeCuda.ParseSplits("-3"));
        Named<ArgumentException>("TLS_DECODE_SPLITS", "'4097'", () => LsCausalDecodeCuda.ParseSplits("4097"));
        Named<ArgumentException>("TLS_DECODE_SPLITS", "'auto'", () => LsCausalDecodeCuda.ParseSplits("auto"));
    }

    /// <summary>TLS_DECODE_REL picks the decode attention's relative logits first (pre, 1) or staged with the rows (0, unset); anything else names the value.</summary>
    [Fact]
    public void Decode_rel_switch_values()
    {
        Assert.False(LsCausalDecodeCuda.ParseRel(null));
        Assert.False(LsCausalDecodeCuda.ParseRel("0"));
        Assert.True(LsCausalDecodeCuda.ParseRel(" PRE "));
        Assert.True(LsCausalDecodeCuda.ParseRel("1"));
        Named<ArgumentException>("TLS_DECODE_REL", "'post'", () => LsCausalDecodeCuda.ParseRel("post"));
    }
}
