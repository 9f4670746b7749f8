using TransformerLS.Backends;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Tests;

/// <summary>The decode attention's append checks (its numbers are the conformance rows ls_causal_decode_append).</summary>
public class LsCausalDecodeTests
{
    [Fact]
    public void Bad_append_arguments_are_named()
    {
        var be = CpuBackend.Instance;
        using var scope = new TensorScope();
        var f = DType.Float32;
        Tensor T(params int[] dims) => be.Empty(new Shape(dims), f);
        Tensor Rows(params float[] v) { var t = T(v.Length); t.CopyFrom(v); return t; }
        int B = 2, H = 2, d = 4, w = 3, r = 1, l = 2;
        var cfg = new LsCausalConfig(w, l, r);
        var state = T(B, 4);
        state.CopyFrom([1, 2, 0, 0, 2, 3, 1, 1]);
        var x = new LsDecodeInputs(T(B, H, 1, d), T(B, H, w, d), T(B, H, w, d), T(H, d), T(H, d), T(H, w, d),
            T(B, H, 2 * r, d), T(B, H, 2 * r, d), T(B, H, r, d), T(B, H, r, d), T(H, 2 * r, d), state);
        foreach (var t in new[] { x.Q, x.KW, x.VW, x.U, x.VBias, x.Rel, x.KRing, x.VRing, x.KBlock, x.VBlock, x.RelC }) be.Fill(t, 0.5f);
        var o = T(B, H, 1, d);
        LsDecodeAppend Good() => new(T(B, 1, H * d), T(B, 1, H * d), T(H * d), T(H * d), 1e-5f, Rows(1, 2), Rows(0, -1),
            T(B, 1, H * d), T(B, 1, H * r), T(B, 1, l, H * d), T(B, 1, l, H * r), T(B, 1, l, H * d), T(B, 1, l, H * d));
        LsCausalDecode.Forward(be, cfg, 1, x, Good(), o); // the good call runs
        void Named<TEx>(string name, LsDecodeAppend a, string? text = null) where TEx : ArgumentException
        {
            var e = Assert.Throws<TEx>(() => LsCausalDecode.Forward(be, cfg, 1, x, a, o));
            Assert.Equal(name, e.ParamName);
            if (text is not null) Assert.Contains(text, e.Message);
        }
        Named<ArgumentException>("kraw", Good() with { KRaw = T(B, 1, H * d + 1) });
        Named<ArgumentException>("gamma", Good() with { Gamma = be.Empty(new Shape(H * d), DType.BFloat16) });
        Named<ArgumentException>("sBuf", Good() with { SBuf = T(B, 1, l + 1, H * r) }, "expected [2, 1, 2, 2]");
        Named<ArgumentException>("counters", Good() with { Counters = T(B) });
        Named<ArgumentOutOfRangeException>("eps", Good() with { Eps = 0f });
        Named<ArgumentOutOfRangeException>("rowsW", Good() with { RowsW = Rows(0, 2) }, "the state's window slot 1");
        Named<ArgumentOutOfRangeException>("rowsChunk", Good() with { RowsChunk = Rows(0, 2) }, "[0, 2)");
    }
}
