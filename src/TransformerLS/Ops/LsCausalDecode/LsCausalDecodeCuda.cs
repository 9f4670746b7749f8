using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LsDecodeParams in kernels/ls_causal_decode/ls_causal_decode.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LsDecodeParams
{
    public ulong Q, KW, VW, U, VB, Rel, KRing, VRing, KBlock, VBlock, RelC, State, O;
    public int B, H, D, W, R, Mc, C, Lb, Nr;
    public float Scale;
    public ulong Part;
    public int Splits, SplitKeys;
    public ulong Arrived;
    public ulong KRaw, VRaw, Gamma, Beta, RowsW, RowsChunk, HIn, SIn, HBuf, SBuf, KRBuf, VRBuf;
    public int L;
    public float Eps;
}

/// <summary>
/// kernels/ls_causal_decode/: blocks of (sequence, head) x a split of the key list, CUDA cores, fp32 accumulation, the
/// splits combined in order (flash-decoding; deterministic). The vector kernel (ls_causal_decode_vec.cu: 16-byte rows, the
/// combine fused into the last split block) where d and the pointers allow; else the scalar kernel and its combine
/// (ls_causal_decode.cu).
/// </summary>
static class LsCausalDecodeCuda
{
    const string File = "ls_causal_decode/ls_causal_decode.cu", VecFile = "ls_causal_decode/ls_causal_decode_vec.cu";

    /// <summary>The scalar kernel's keys per split: small enough that a batch of one spreads a long key list over many SMs.</summary>
    const int SplitKeys = 64;

    /// <summary>The vector kernel's splits: at least this many keys each, at most <see cref="MaxSplitKeys"/> (its row table's shared memory).</summary>
    const int MinSplitKeys = 32, MaxSplitKeys = 4096;

    /// <summary>Blocks per SM the vector kernel's splits aim for (B·H blocks alone when they reach it: one split, no combine).</summary>
    const int BlocksPerSm = 3;

    /// <summary>TLS_DECODE_SPLITS (tuning, read once): the vector kernel's splits of each (sequence, head)'s key list instead
    /// of the launcher's choice, so that one benchmark process per value sweeps them; clamped to what its row table allows
    /// (at most <see cref="MaxSplitKeys"/> keys a split, at least one key).</summary>
    static readonly Lazy<int?> SplitsOverride = new(() => ParseSplits(Environment.GetEnvironmentVariable("TLS_DECODE_SPLITS")));

    /// <summary>TLS_DECODE_REL=pre (opt-in, read once): the vector kernels' _rp builds, which compute the split's relative
    /// logits first and stage only the key and value rows in the key loop (a third less shared memory a block); unset or 0
    /// the relative rows are staged with them. Not yet run on a GPU (written in session 33 without one).</summary>
    static readonly Lazy<bool> RelativeFirst = new(() => ParseRel(Environment.GetEnvironmentVariable("TLS_DECODE_REL")));

    /// <summary>A TLS_DECODE_REL value: unset, empty or 0 false; pre or 1 true; anything else is refused by name.</summary>
    internal static bool ParseRel(string? value) => (value ?? "").Trim().ToLowerInvariant() switch
    {
        "" or "0" => false,
        "pre" or "1" => true,
        _ => throw new ArgumentException($"TLS_DECODE_REL is '{value}': expected pre (or 1) for the relative logits first, 0 or unset for the staged relative rows.", "TLS_DECODE_REL"),
    };

    /// <summary>A TLS_DECODE_SPLITS value: unset or empty, the launcher's choice (null); else a whole number from 1 to 4096.</summary>
    internal static int? ParseSplits(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return null;
        if (int.TryParse(value.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 4096) return n;
        throw new ArgumentException($"TLS_DECODE_SPLITS is '{value}': expected a whole number of splits from 1 to 4096, or unset for the launcher's choice.", "TLS_DECODE_SPLITS");
    }

    /// <summary>The vector kernels by dtype (fp32, then bf16) and shape: G = 1, 2, 4 lanes a key row with one vector a lane,
    /// then G = 4, 8, 16, 32 with two; then the same fourteen with the relative logits first (_rp, TLS_DECODE_REL=pre).</summary>
    static readonly string[] VectorKernels =
    [
        "ls_causal_decode_vec_g1_v1_f32", "ls_causal_decode_vec_g2_v1_f32", "ls_causal_decode_vec_g4_v1_f32",
        "ls_causal_decode_vec_g4_v2_f32", "ls_causal_decode_vec_g8_v2_f32", "ls_causal_decode_vec_g16_v2_f32", "ls_causal_decode_vec_g32_v2_f32",
        "ls_causal_decode_vec_g1_v1_bf16", "ls_causal_decode_vec_g2_v1_bf16", "ls_causal_decode_vec_g4_v1_bf16",
        "ls_causal_decode_vec_g4_v2_bf16", "ls_causal_decode_vec_g8_v2_bf16", "ls_causal_decode_vec_g16_v2_bf16", "ls_causal_decode_vec_g32_v2_bf16",
        "ls_causal_decode_vec_g1_v1_f32_rp", "ls_causal_decode_vec_g2_v1_f32_rp", "ls_causal_decode_vec_g4_v1_f32_rp",
        "ls_causal_decode_vec_g4_v2_f32_rp", "ls_causal_decode_vec_g8_v2_f32_rp", "ls_causal_decode_vec_g16_v2_f32_rp", "ls_causal_decode_vec_g32_v2_f32_rp",
        "ls_causal_decode_vec_g1_v1_bf16_rp", "ls_causal_decode_vec_g2_v1_bf16_rp", "ls_causal_decode_vec_g4_v1_bf16_rp",
        "ls_causal_decode_vec_g4_v2_bf16_rp", "ls_causal_decode_vec_g8_v2_bf16_rp", "ls_causal_decode_vec_g16_v2_bf16_rp", "ls_causal_decode_vec_g32_v2_bf16_rp",
    ];

    /// <summary>The most keys a query can see: w window keys and (Mc + Lb)·r compressed ones.</summary>
    static long MaxKeys(LsDecodeGeometry g) => g.W + (long)(g.Mc + g.Lb) * g.R;

    /// <summary>The vector kernel's (lanes per key row G, vectors per lane), or null where d or an address rules it out.</summary>
    static (int G, int Vpl)? VectorShape(LsDecodeGeometry g, in LsDecodeInputs x, Tensor o)
    {
        var n = x.Q.DType == DType.Float32 ? 4 : 8;
        if (g.D % n != 0 || g.D > 64 * n) return null;
        var any = x.Q.DevicePointer | x.KW.DevicePointer | x.VW.DevicePointer | x.U.DevicePointer | x.VBias.DevicePointer | x.Rel.DevicePointer
            | x.KRing.DevicePointer | x.VRing.DevicePointer | x.KBlock.DevicePointer | x.VBlock.DevicePointer | x.RelC.DevicePointer | o.DevicePointer;
        if (any % 16 != 0) return null; // every pointer 16-byte aligned (no array: the launch path allocates nothing)
        // Up to 4 vectors a row: one a lane. More: two a lane, so a warp covers twice the keys at once (the per-key work
        // of the softmax and the copies' addresses is shared by fewer lanes) while σq, σq + u, σq + v fit in registers.
        var vectors = g.D / n;
        var perLane = vectors > 4 ? 2 : 1;
        var lanes = 1;
        while (lanes * perLane < vectors) lanes *= 2;
        return (lanes, perLane);
    }

    /// <summary>Whether the vector kernel runs (and so takes a step's append itself).</summary>
    public static bool Vectorized(LsDecodeGeometry g, in LsDecodeInputs x, Tensor o) => VectorShape(g, x, o) is not null;

    /// <summary>The decode attention; with <paramref name="a"/> (the vector kernel only: see <see cref="Vectorized"/>) the append fused in.</summary>
    public static void Forward(CudaBackend be, LsDecodeGeometry g, in LsDecodeInputs x, Tensor o, LsDecodeAppend? a = null)
    {
        var p = new LsDecodeParams
        {
            Q = x.Q.DevicePointer, KW = x.KW.DevicePointer, VW = x.VW.DevicePointer, U = x.U.DevicePointer, VB = x.VBias.DevicePointer,
            Rel = x.Rel.DevicePointer, KRing = x.KRing.DevicePointer, VRing = x.VRing.DevicePointer, KBlock = x.KBlock.DevicePointer,
            VBlock = x.VBlock.DevicePointer, RelC = x.RelC.DevicePointer, State = x.State.DevicePointer, O = o.DevicePointer,
            B = g.B, H = g.H, D = g.D, W = g.W, R = g.R, Mc = g.Mc, C = g.C, Lb = g.Lb, Nr = g.Nr, Scale = g.Scale,
        };
        ulong counters = 0;
        if (a is { } ap)
        {
            (p.KRaw, p.VRaw, p.Gamma, p.Beta, p.RowsW, p.RowsChunk) = (ap.KRaw.DevicePointer, ap.VRaw.DevicePointer, ap.Gamma.DevicePointer,
                ap.Beta.DevicePointer, ap.RowsW.DevicePointer, ap.RowsChunk.DevicePointer);
            (p.HIn, p.SIn, p.HBuf, p.SBuf, p.KRBuf, p.VRBuf) = (ap.H.DevicePointer, ap.S.DevicePointer, ap.HBuf.DevicePointer, ap.SBuf.DevicePointer,
                ap.KRawBuf.DevicePointer, ap.VRawBuf.DevicePointer);
            (p.L, p.Eps) = (ap.HBuf.Shape[2], ap.Eps);
            counters = ap.Counters?.DevicePointer ?? 0;
        }
        var f32 = x.Q.DType == DType.Float32;
        var pairs = (long)g.B * g.H;
        var keys = MaxKeys(g);
        if (VectorShape(g, x, o) is { } v)
        {
            // Splits: enough blocks for BlocksPerSm an SM, each at least MinSplitKeys keys, at most MaxSplitKeys (or TLS_DECODE_SPLITS).
            var want = Math.Max(1, (BlocksPerSm * (long)be.Context.Device.MultiprocessorCount + pairs - 1) / pairs);
            var fewest = (keys + MaxSplitKeys - 1) / MaxSplitKeys;
            var splits = SplitsOverride.Value is { } forced ? Math.Clamp(forced, fewest, Math.Max(1, keys))
                : Math.Clamp(want, fewest, Math.Max(1, (keys + MinSplitKeys - 1) / MinSplitKeys));
            var splitKeys = (keys + splits - 1) / splits;
            (p.Splits, p.SplitKeys) = ((int)((keys + splitKeys - 1) / splitKeys), (int)splitKeys);
            var pre = RelativeFirst.Value;
            var smem = (uint)(be.Constant(VecFile, pre ? "ls_causal_decode_vec_smem_stages_pre" : "ls_causal_decode_vec_smem_stages")
                + be.Constant(VecFile, pre ? "ls_causal_decode_vec_pre_smem_per_key" : "ls_causal_decode_vec_smem_per_key") * p.SplitKeys
                + be.Constant(VecFile, "ls_causal_decode_vec_smem_per_d") * g.D + be.Constant(VecFile, "ls_causal_decode_vec_smem_per_split") * p.Splits);
            var vecThreads = (uint)be.Constant(VecFile, "ls_causal_decode_vec_threads");
            var name = VectorKernels[(pre ? 14 : 0) + (f32 ? 0 : 7) + System.Numerics.BitOperations.Log2((uint)v.G) + (v.Vpl == 2 ? 1 : 0)];
            if (p.Splits == 1)
            {
                be.Kernel(VecFile, name).LaunchDependent(new Dim3((uint)pairs, 1, 1), vecThreads, smem, be.Stream, p);
                return;
            }
            // The split counts: the caller's zeroed counters (the kernel leaves them zeroed), else cleared here.
            var partBytes = 4L * pairs * p.Splits * (g.D + 2);
            var bytes = partBytes + (counters == 0 ? 4 * pairs : 0);
            var scratch = be.Context.Allocator.Allocate(bytes);
            try
            {
                (p.Part, p.Arrived) = (scratch, counters != 0 ? counters : scratch + (ulong)partBytes);
                if (counters == 0) CudaMemory.Fill32(be.Stream, p.Arrived, 0, pairs);
                be.Kernel(VecFile, name).LaunchDependent(new Dim3((uint)pairs, (uint)p.Splits, 1), vecThreads, smem, be.Stream, p);
            }
            finally
            {
                be.Context.Allocator.Free(scratch, bytes);
            }
            return;
        }
        if (a is not null) throw new InvalidOperationException("the scalar decode kernel takes no append (LsCausalDecode.Forward composes it)");
        (p.Splits, p.SplitKeys) = ((int)((keys + SplitKeys - 1) / SplitKeys), SplitKeys);
        // Shared memory of the split block's carve-up, per key and per head-dim channel as the kernel exports it (one source).
        var threads = (uint)be.Constant(File, "ls_causal_decode_threads");
        var scalarSmem = (uint)(be.Constant(File, "ls_causal_decode_smem_per_key") * SplitKeys + be.Constant(File, "ls_causal_decode_smem_per_d") * g.D);
        var scalarBytes = 4L * pairs * p.Splits * (g.D + 2);
        var part = be.Context.Allocator.Allocate(scalarBytes);
        try
        {
            p.Part = part;
            be.Kernel(File, f32 ? "ls_causal_decode_f32" : "ls_causal_decode_bf16").Launch(new Dim3((uint)pairs, (uint)p.Splits, 1), threads, scalarSmem, be.Stream, p);
            be.Kernel(File, f32 ? "ls_causal_decode_combine_f32" : "ls_causal_decode_combine_bf16").Launch((uint)pairs, threads, 0, be.Stream, p);
        }
        finally
        {
            be.Context.Allocator.Free(part, scalarBytes);
        }
    }
}
