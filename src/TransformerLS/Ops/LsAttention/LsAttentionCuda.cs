using System.Runtime.InteropServices;
using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Tensors;

namespace TransformerLS.Ops;

/// <summary>Mirror of LsAttentionParams in kernels/ls_attention/ls_attention.cuh (its layout line is the contract).</summary>
[StructLayout(LayoutKind.Sequential)]
struct LsAttentionParams
{
    public ulong Q, K, V, KBar, VBar, Mask, O, Lse, DOut, DQ, DK, DV, DKBar, DVBar, Dd, LPartK, LPartV, Lse64;
    public int B, H, N, D, W, R, E, Chunks;
    public int Groups, GroupTokens;
    public float Scale;
    public int QLd;
}

/// <summary>
/// The backward's scratch on the GPU (<see cref="ScratchPieces"/>): D = dO·O [B·H·n] (tensor cores), the landmark
/// gradients' partials dK̄, dV̄ [G, B·H, r, d] fp32 (G query groups, <see cref="TokenGroups"/>), and each query's
/// log-sum-exp in double [B·H·n] (the CUDA-core passes).
/// </summary>
static class LsAttentionScratch
{
    public static ScratchPieces Of(Shape k, Shape kbar)
    {
        var part = 4L * TokenGroups.Of(k[2]).Groups * kbar.Count;
        return new(4 * k.Product(0, 3), part, part, 8 * k.Product(0, 3));
    }
}

/// <summary>
/// float32 (and bf16 at head dims off the tensor cores) runs kernels/ls_attention/ls_attention.cu on the CUDA cores; bfloat16
/// runs kernels/ls_attention/ls_attention_mma.cu (forward) and ls_attention_bwd_mma.cu on the tensor cores, one instantiation per
/// head dim. Both backwards are deterministic, in the same three passes: dQ, the window keys, the landmarks per query group
/// with a fixed-order sum over the groups; no float atomics.
/// </summary>
static class LsAttentionCuda
{
    const string File = "ls_attention/ls_attention.cu", MmaFile = "ls_attention/ls_attention_mma.cu", BwdFile = "ls_attention/ls_attention_bwd_mma.cu";
    static readonly string[] MmaForward = ["ls_attention_fwd_mma_d16", "ls_attention_fwd_mma_d32", "ls_attention_fwd_mma_d48", "ls_attention_fwd_mma_d64", "ls_attention_fwd_mma_d80", "ls_attention_fwd_mma_d96", "ls_attention_fwd_mma_d112", "ls_attention_fwd_mma_d128"];
    static readonly string[] MmaDq = ["ls_attention_bwd_dq_mma_d16", "ls_attention_bwd_dq_mma_d32", "ls_attention_bwd_dq_mma_d48", "ls_attention_bwd_dq_mma_d64", "ls_attention_bwd_dq_mma_d80", "ls_attention_bwd_dq_mma_d96", "ls_attention_bwd_dq_mma_d112", "ls_attention_bwd_dq_mma_d128"];
    static readonly string[] MmaForwardWide = ["ls_attention_fwd_mma_wide_d16", "ls_attention_fwd_mma_wide_d32", "ls_attention_fwd_mma_wide_d48", "ls_attention_fwd_mma_wide_d64", "ls_attention_fwd_mma_wide_d80", "ls_attention_fwd_mma_wide_d96", "ls_attention_fwd_mma_wide_d112", "ls_attention_fwd_mma_wide_d128"];
    static readonly string[] MmaDqWide = ["ls_attention_bwd_dq_mma_wide_d16", "ls_attention_bwd_dq_mma_wide_d32", "ls_attention_bwd_dq_mma_wide_d48", "ls_attention_bwd_dq_mma_wide_d64", "ls_attention_bwd_dq_mma_wide_d80", "ls_attention_bwd_dq_mma_wide_d96", "ls_attention_bwd_dq_mma_wide_d112", "ls_attention_bwd_dq_mma_wide_d128"];
    static readonly string[] MmaKv = ["ls_attention_bwd_kv_mma_d16", "ls_attention_bwd_kv_mma_d32", "ls_attention_bwd_kv_mma_d48", "ls_attention_bwd_kv_mma_d64", "ls_attention_bwd_kv_mma_d80", "ls_attention_bwd_kv_mma_d96", "ls_attention_bwd_kv_mma_d112", "ls_attention_bwd_kv_mma_d128"];
    static readonly string[] MmaLm = ["ls_attention_bwd_lm_mma_d16", "ls_attention_bwd_lm_mma_d32", "ls_attention_bwd_lm_mma_d48", "ls_attention_bwd_lm_mma_d64", "ls_attention_bwd_lm_mma_d80", "ls_attention_bwd_lm_mma_d96", "ls_attention_bwd_lm_mma_d112", "ls_attention_bwd_lm_mma_d128"];

    /// <summary>A kernel's block: QB queries, Threads threads; read from its module (TLS_EXPORT), so the kernel is the one source.</summary>
    readonly record struct Tiles(int QB, int Threads);

    /// <summary>A query-major tensor-core pass (the forward or the dQ pass) in one block size: its kernels by d / 16 − 1 and the
    /// names of its block's and shared memory's exports.</summary>
    sealed record QueryPass(string File, string[] Kernels, string Qb, string Threads, string SmemFixed, string SmemPerD)
    {
        public Tiles TilesOf(CudaBackend be) => new(be.Constant(File, Qb), be.Constant(File, Threads));
        public uint Smem(CudaBackend be, int d) => KernelShared.Bytes(be, File, SmemFixed, SmemPerD, d);
    }

    static readonly QueryPass ForwardNarrow = new(MmaFile, MmaForward, "ls_attention_mma_qb", "ls_attention_mma_threads", "ls_attention_fwd_mma_smem_fixed", "ls_attention_fwd_mma_smem_per_d");
    static readonly QueryPass ForwardWide = new(MmaFile, MmaForwardWide, "ls_attention_mma_wide_qb", "ls_attention_mma_wide_threads", "ls_attention_fwd_mma_wide_smem_fixed", "ls_attention_fwd_mma_wide_smem_per_d");
    static readonly QueryPass DqNarrow = new(BwdFile, MmaDq, "ls_attention_bwd_mma_qb", "ls_attention_bwd_mma_threads", "ls_attention_bwd_dq_mma_smem_fixed", "ls_attention_bwd_dq_mma_smem_per_d");
    static readonly QueryPass DqWide = new(BwdFile, MmaDqWide, "ls_attention_bwd_dq_mma_wide_qb", "ls_attention_bwd_dq_mma_wide_threads", "ls_attention_bwd_dq_mma_wide_smem_fixed", "ls_attention_bwd_dq_mma_wide_smem_per_d");

    /// <summary>Whether the query-major tensor-core kernels (forward, dQ pass) take their wide blocks: where a window is longer than
    /// a narrow block, so that a block holds a whole segment of 128 (kernels/ls_attention/ls_attention_mma.cuh).</summary>
    static bool Wide(CudaBackend be, LsAttentionGeometry g) => g.W > be.Constant(MmaFile, "ls_attention_mma_qb");

    static QueryPass ForwardPass(CudaBackend be, LsAttentionGeometry g) => Wide(be, g) ? ForwardWide : ForwardNarrow;

    /// <summary>The Hopper kernels (wgmma): the forward, dQ pass and key passes at their one head dim, for wide blocks (kernels/ls_attention/*_sm90a.cu), where
    /// the device is sm_90 and their modules were built for sm_90a. Opt-in until they pass the GPU suite (session 32's first run,
    /// on an H100, failed every wide d = 64 conformance row: bench/results/2026-12-07-h100/session32). TLS_WGMMA=1 (or all)
    /// turns on all three passes, a comma list of fwd, dq and keys some of them, 0 or unset none; the others run on mma.sync.</summary>
    const string WgmmaFile = "ls_attention/ls_attention_fwd_sm90a.cu", WgmmaDqFile = "ls_attention/ls_attention_bwd_dq_sm90a.cu",
        WgmmaKeysFile = "ls_attention/ls_attention_bwd_keys_sm90a.cu";
    static readonly string[] WgmmaPasses = ["fwd", "dq", "keys"];
    static readonly Lazy<HashSet<string>> WgmmaAllowed = new(() => ParseWgmma(Environment.GetEnvironmentVariable("TLS_WGMMA")));

    /// <summary>The passes a TLS_WGMMA value turns on; anything but 0, 1, all or a comma list of fwd, dq, keys is refused.</summary>
    internal static HashSet<string> ParseWgmma(string? value)
    {
        var v = (value ?? "").Trim().ToLowerInvariant();
        if (v is "" or "0") return [];
        if (v is "1" or "all") return [.. WgmmaPasses];
        var set = new HashSet<string>();
        foreach (var part in v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            if (!WgmmaPasses.Contains(part) || !set.Add(part))
                throw new ArgumentException($"TLS_WGMMA is '{value}': expected 0, 1, all or a comma list of distinct passes from fwd, dq, keys.", "TLS_WGMMA");
        return set;
    }

    static bool Wgmma(CudaBackend be, LsAttentionGeometry g, string pass, string file, string headDim) =>
        WgmmaAllowed.Value.Contains(pass) && be.Context.Device.ArchNumber == 90 && Wide(be, g)
        && be.Constant(file, "tls_sm90a") == 1 && g.D == be.Constant(file, headDim);

    static bool WgmmaForward(CudaBackend be, LsAttentionGeometry g) => Wgmma(be, g, "fwd", WgmmaFile, "ls_attention_fwd_wgmma_d");
    static bool WgmmaDq(CudaBackend be, LsAttentionGeometry g) => Wgmma(be, g, "dq", WgmmaDqFile, "ls_attention_bwd_dq_wgmma_d");
    static bool WgmmaKeys(CudaBackend be, LsAttentionGeometry g) => Wgmma(be, g, "keys", WgmmaKeysFile, "ls_attention_bwd_keys_wgmma_d");

    static Tiles TilesOf(CudaBackend be, LsAttentionGeometry g, Tensor q) => UsesMma(g, q)
        ? ForwardPass(be, g).TilesOf(be)
        : new(be.Constant(File, "ls_attention_f32_qb"), be.Constant(File, "ls_attention_f32_threads"));

    /// <summary>The tensor-core kernels' head dims: multiples of 16 up to 128 (the tables above, by d / 16 − 1).</summary>
    internal static bool MmaHeadDim(int d) => d % 16 == 0 && d is >= 16 and <= 128;

    static LsAttentionParams Params(LsAttentionGeometry g, Tiles t, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask, Tensor o, Tensor lse) => new()
    {
        Q = q.DevicePointer, K = k.DevicePointer, V = v.DevicePointer, KBar = kbar.DevicePointer, VBar = vbar.DevicePointer,
        Mask = mask?.DevicePointer ?? 0, O = o.DevicePointer, Lse = lse.DevicePointer,
        B = g.B, H = g.H, N = g.N, D = g.D, W = g.W, R = g.R, E = g.E, Chunks = Chunks(g, t), Scale = g.Scale, QLd = g.QLd,
    };

    static bool UsesMma(LsAttentionGeometry g, Tensor q) => q.DType == DType.BFloat16 && MmaHeadDim(g.D);

    /// <summary>Query chunks per segment; the kernel splits blockIdx.x by the same number.</summary>
    static int Chunks(LsAttentionGeometry g, Tiles t) => (g.W + t.QB - 1) / t.QB;

    static Dim3 Grid(LsAttentionGeometry g, Tiles t) => new((uint)(g.Segments * Chunks(g, t)), 1, (uint)(g.B * g.H));

    public static void Forward(CudaBackend be, LsAttentionGeometry g, LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask, Tensor o, Tensor lse)
    {
        var t = TilesOf(be, g, q);
        var p = Params(g, t, q, k, v, kbar, vbar, mask, o, lse);
        if (UsesMma(g, q) && WgmmaForward(be, g))
        {
            var wt = new Tiles(be.Constant(WgmmaFile, "ls_attention_fwd_wgmma_qb"), be.Constant(WgmmaFile, "ls_attention_fwd_wgmma_threads"));
            p.Chunks = Chunks(g, wt);
            be.Kernel(WgmmaFile, "ls_attention_fwd_wgmma_d64").Launch(Grid(g, wt), (uint)wt.Threads, (uint)be.Constant(WgmmaFile, "ls_attention_fwd_wgmma_smem"), be.Stream, p);
        }
        else if (UsesMma(g, q))
        {
            var pass = ForwardPass(be, g);
            be.Kernel(pass.File, pass.Kernels[g.D / 16 - 1]).Launch(Grid(g, t), (uint)t.Threads, pass.Smem(be, g.D), be.Stream, p);
        }
        else
            be.Kernel(File, q.DType == DType.Float32 ? "ls_attention_fwd_f32" : "ls_attention_fwd_bf16").Launch(Grid(g, t), (uint)t.Threads, KernelShared.Checked(be, File, "ls_attention_fwd_f32_smem_fixed", "ls_attention_fwd_f32_smem_per_d", g.D, q.DType, "LS attention forward"), be.Stream, p);
    }

    public static void Backward(CudaBackend be, LsAttentionGeometry g, LsAttentionConfig cfg, Tensor q, Tensor k, Tensor v, Tensor kbar, Tensor vbar, Tensor? mask,
        Tensor o, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv, Tensor dkbar, Tensor dvbar)
    {
        var t = TilesOf(be, g, q);
        var p = Params(g, t, q, k, v, kbar, vbar, mask, o, lse);
        p.DOut = dout.DevicePointer; p.DQ = dq.DevicePointer;
        p.DK = dk.DevicePointer; p.DV = dv.DevicePointer; p.DKBar = dkbar.DevicePointer; p.DVBar = dvbar.DevicePointer;
        (p.Groups, p.GroupTokens) = TokenGroups.Of(g.N);
        var (mma, f32) = (UsesMma(g, q), q.DType == DType.Float32);
        var scratch = LsAttentionScratch.Of(k.Shape, kbar.Shape);
        // The CUDA-core passes' shared memory, checked before anything is allocated or launched.
        var (simtDq, simtKv) = mma ? (0u, 0u) : (KernelShared.Checked(be, File, "ls_attention_bwd_dq_f32_smem_fixed", "ls_attention_bwd_dq_f32_smem_per_d", g.D, q.DType, "LS attention backward"), KernelShared.Checked(be, File, "ls_attention_bwd_kv_f32_smem_fixed", "ls_attention_bwd_kv_f32_smem_per_d", g.D, q.DType, "LS attention backward"));
        var block = be.Context.Allocator.Allocate(scratch.Bytes);
        try
        {
            (p.Dd, p.LPartK, p.LPartV, p.Lse64) = (scratch.At(block, 0), scratch.At(block, 1), scratch.At(block, 2), scratch.At(block, 3));
            if (!mma)
            {
                // The same three passes on the CUDA cores (float32, and bf16 at head dims off the tensor cores).
                var kt = be.Constant(File, "ls_attention_f32_kt");
                be.Kernel(File, f32 ? "ls_attention_bwd_dq_f32" : "ls_attention_bwd_dq_bf16").Launch(Grid(g, t), (uint)t.Threads, simtDq, be.Stream, p);
                be.Kernel(File, f32 ? "ls_attention_bwd_kv_f32" : "ls_attention_bwd_kv_bf16").Launch(new Dim3((uint)((g.N + kt - 1) / kt), 1, (uint)(g.B * g.H)), (uint)t.Threads, simtKv, be.Stream, p);
                be.Kernel(File, f32 ? "ls_attention_bwd_lm_f32" : "ls_attention_bwd_lm_bf16").Launch(new Dim3((uint)((g.R + kt - 1) / kt), (uint)p.Groups, (uint)(g.B * g.H)), (uint)t.Threads, simtKv, be.Stream, p);
            }
            else
            {
                var threads = (uint)be.Constant(BwdFile, "ls_attention_bwd_mma_threads");
                var kt = be.Constant(BwdFile, "ls_attention_bwd_mma_kt");
                if (WgmmaDq(be, g))
                {
                    var wt = new Tiles(be.Constant(WgmmaDqFile, "ls_attention_bwd_dq_wgmma_qb"), be.Constant(WgmmaDqFile, "ls_attention_bwd_dq_wgmma_threads"));
                    p.Chunks = Chunks(g, wt);
                    be.Kernel(WgmmaDqFile, "ls_attention_bwd_dq_wgmma_d64").Launch(Grid(g, wt), (uint)wt.Threads, (uint)be.Constant(WgmmaDqFile, "ls_attention_bwd_dq_wgmma_smem"), be.Stream, p);
                }
                else
                {
                    var dqPass = Wide(be, g) ? DqWide : DqNarrow;
                    var dqt = dqPass.TilesOf(be);
                    p.Chunks = Chunks(g, dqt);
                    be.Kernel(BwdFile, dqPass.Kernels[g.D / 16 - 1]).Launch(Grid(g, dqt), (uint)dqt.Threads, dqPass.Smem(be, g.D), be.Stream, p);
                }
                var (keysFile, kv, lm, kvSmem) = WgmmaKeys(be, g)
                    ? (WgmmaKeysFile, "ls_attention_bwd_kv_wgmma_d64", "ls_attention_bwd_lm_wgmma_d64", (uint)be.Constant(WgmmaKeysFile, "ls_attention_bwd_keys_wgmma_smem"))
                    : (BwdFile, MmaKv[g.D / 16 - 1], MmaLm[g.D / 16 - 1], KernelShared.Bytes(be, BwdFile, "ls_attention_bwd_kv_mma_smem_fixed", "ls_attention_bwd_kv_mma_smem_per_d", g.D));
                be.Kernel(keysFile, kv).Launch(new Dim3((uint)((g.N + kt - 1) / kt), 1, (uint)(g.B * g.H)), threads, kvSmem, be.Stream, p);
                be.Kernel(keysFile, lm).Launch(new Dim3((uint)((g.R + kt - 1) / kt), (uint)p.Groups, (uint)(g.B * g.H)), threads, kvSmem, be.Stream, p);
            }
            // Stage 2 of the landmark gradients for both: the groups' fp32 partials added in group order.
            var outputs = (long)g.B * g.H * g.R * g.D;
            be.Kernel(File, f32 ? "ls_attention_bwd_lm_sum_f32" : "ls_attention_bwd_lm_sum_bf16")
                .Launch((uint)Math.Clamp((outputs + 255) / 256, 1, 65535L * 16), 256, 0, be.Stream, p);
        }
        finally
        {
            be.Context.Allocator.Free(block, scratch.Bytes);
        }
    }
}
