using TransformerLS.Backends;
using TransformerLS.Tensors;

namespace TransformerLS.Conformance;

internal enum InputKind
{
    /// <summary>N(0, scale²).</summary>
    Normal,
    /// <summary>A probability vector along the case's softmax axis (inputs of softmax backward).</summary>
    SoftmaxOfNormal,
    /// <summary>A [B, n] 0/1 padding mask: a random padded tail per row plus scattered holes; row 0 has no padding.</summary>
    PaddingMask,
    /// <summary>float32 class indices in [0, Scale), about 10% of them −1 (ignored rows).</summary>
    ClassIndex,
    /// <summary>Uniform draws in [0, 1), about 10% of them −1 (inactive rows of a sampler).</summary>
    Uniform01,
}

/// <summary>
/// The reference to hold a backend's output <paramref name="output"/> to, given the inputs, what the backend got and the
/// float64 reference: each element the backend got that is as right as the reference's (e.g. a draw within rounding of a
/// boundary between two tokens) is taken as it came, every other one is the reference's.
/// </summary>
internal delegate double[] AdmissibleReference(double[][] inputs, int output, double[] got, double[] reference);

internal sealed record InputSpec(string Name, Shape Shape, DType DType, InputKind Kind = InputKind.Normal, double Scale = 1.0, int Axis = -1);

internal sealed record OutputSpec(string Name, Shape Shape, DType DType);

/// <summary>
/// One case of an op: named inputs, outputs, how a backend runs it, its reference at two precisions (float64, the
/// truth; float32, a same-precision CPU computation whose error sets the bar), its tolerance rule, and its useful
/// FLOPs and minimal bytes. Each family defines its cases once, in Ops/&lt;Family&gt;/&lt;Family&gt;Cases.cs, as a function
/// of the shape: the tests and `tls check` run them at small shapes (test mode, checked), `tls-bench kernels` at
/// the bench shapes (perf mode, timed).
/// </summary>
internal sealed class OpCase
{
    /// <summary>The facade method the case runs, "Family.Method" (e.g. "LayerNorm.Backward").</summary>
    public required string Facade { get; init; }
    /// <summary>The op in the kernels' spelling (layer_norm_backward).</summary>
    public required string Op { get; init; }
    public required DType DType { get; init; }
    public required string Shape { get; init; }
    public required string Name { get; init; }
    public required InputSpec[] Inputs { get; init; }
    public required OutputSpec[] Outputs { get; init; }
    /// <summary>Untimed setup on the backend (scratch, a forward for the saved statistics a backward reads), returning the launch that is checked or timed.</summary>
    public required Func<IBackend, Tensor[], Tensor[], Action> Prepare { get; init; }
    public required Func<double[][], double[][]> Reference64 { get; init; }
    public required Func<float[][], float[][]> Reference32 { get; init; }
    /// <summary>How the same-precision computation sees the inputs (e.g. rounded to TF32).</summary>
    public Func<float, float>? SamePrecisionInput { get; init; }
    public ToleranceRule Tolerance { get; init; } = ToleranceRule.TwiceSamePrecision;
    /// <summary>For discrete outputs (a drawn token): see <see cref="AdmissibleReference"/>. Null: the float64 reference.</summary>
    public AdmissibleReference? Admissible { get; init; }
    /// <summary>Useful FLOPs of one launch (bench/README.md); 0 for a bandwidth-bound op.</summary>
    public double Flops { get; init; }
    /// <summary>Minimal bytes one launch must move.</summary>
    public double Bytes { get; init; }

    /// <summary>"forward" or "backward": the bench's kernel column.</summary>
    public string Direction => Op.EndsWith("_backward", StringComparison.Ordinal) ? "backward" : "forward";
    /// <summary>The op without its direction: the bench's family column (ls_attention).</summary>
    public string Stem => Op.EndsWith("_backward", StringComparison.Ordinal) ? Op[..^"_backward".Length] : Op;

    public override string ToString() => Name;
}

/// <summary>
/// The FlashAttention rule: the backend's error against float64 at most <see cref="Factor"/> times the same-precision
/// CPU error, plus <see cref="RelativeFloor"/> of the output's magnitude (one float32 ulp: 2^-23·max(1, max|ref|)).
/// </summary>
internal sealed record ToleranceRule(double Factor, double RelativeFloor)
{
    public static readonly ToleranceRule TwiceSamePrecision = new(2.0, 1.0 / (1 << 23));

    public double Bound(double samePrecisionError, double magnitude) => Factor * samePrecisionError + RelativeFloor * Math.Max(1.0, magnitude);
}

/// <summary>The outcome for one output of one case on one backend.</summary>
internal sealed record OutputResult(string Output, double BackendError, double SamePrecisionError, double Bound, bool HasNaN)
{
    public bool Passed => !HasNaN && BackendError <= Bound;
}

internal sealed record CaseResult(OpCase Case, Device Device, IReadOnlyList<OutputResult> Outputs)
{
    public bool Passed => Outputs.All(o => o.Passed);
    public double MaxError => Outputs.Max(o => o.BackendError);

    public string Describe() => $"{Case.Name} on {Device}: " + string.Join("; ", Outputs.Select(o =>
        $"{o.Output} err {o.BackendError:E2} (same-precision {o.SamePrecisionError:E2}, bound {o.Bound:E2}){(o.HasNaN ? " NaN!" : "")}"));
}

/// <summary>
/// Runs a case in test mode: fresh random inputs, outputs poisoned with NaN, and the backend's error against
/// float64 held to the case's tolerance rule.
/// </summary>
internal static class ConformanceRunner
{

    public static CaseResult Run(OpCase c, IBackend backend, int seed)
    {
        var rng = new Random(seed);
        var inputs = c.Inputs.Select(s => MakeInput(s, rng)).ToArray();
        var doubles = inputs.Select(v => v.Select(x => (double)x).ToArray()).ToArray();
        var ref64 = c.Reference64(doubles);
        var same = c.Reference32([.. inputs.Select(v => c.SamePrecisionInput is { } f ? v.Select(f).ToArray() : v)]);
        var got = RunOnBackend(c, backend, inputs);
        var results = new List<OutputResult>();
        for (var o = 0; o < c.Outputs.Length; o++)
        {
            var dt = c.Outputs[o].DType;
            var sameRounded = same[o].Select(x => (double)dt.Round(x)).ToArray();
            var truth = c.Admissible is { } admit ? admit(doubles, o, got[o], ref64[o]) : ref64[o];
            var errBackend = MaxAbsDiff(got[o], truth, out var nan);
            var errSame = MaxAbsDiff(sameRounded, ref64[o], out _);
            var magnitude = ref64[o].Length == 0 ? 0 : ref64[o].Max(Math.Abs);
            var bound = c.Tolerance.Bound(errSame, magnitude);
            results.Add(new OutputResult(c.Outputs[o].Name, errBackend, errSame, bound, nan));
        }
        return new CaseResult(c, backend.Device, results);
    }

    /// <summary>Creates inputs and NaN-poisoned outputs on <paramref name="backend"/>, runs, reads back.</summary>
    public static double[][] RunOnBackend(OpCase c, IBackend backend, float[][] inputs)
    {
        using var scope = new TensorScope();
        var ins = new Tensor[c.Inputs.Length];
        for (var i = 0; i < ins.Length; i++)
        {
            ins[i] = backend.Empty(c.Inputs[i].Shape, c.Inputs[i].DType);
            ins[i].CopyFrom(inputs[i]);
        }
        var outs = c.Outputs.Select(o => backend.Empty(o.Shape, o.DType)).ToArray();
        foreach (var t in outs) backend.Fill(t, float.NaN);
        c.Prepare(backend, ins, outs)();
        backend.Synchronize();
        return [.. outs.Select(t => t.ToArray().Select(x => (double)x).ToArray())];
    }

    /// <summary>Random values, already representable in the input's dtype.</summary>
    public static float[] MakeInput(InputSpec s, Random rng)
    {
        var v = new float[s.Shape.Count];
        for (var i = 0; i < v.Length; i++) v[i] = (float)(RandomDraw.Normal(rng) * s.Scale);
        if (s.Kind == InputKind.SoftmaxOfNormal)
        {
            var ax = s.Shape.Axis(s.Axis, nameof(s.Axis));
            var g = new Ops.SoftmaxGeometry(s.Shape.Product(0, ax), s.Shape[ax], s.Shape.Product(ax + 1, s.Shape.Rank));
            var p = new float[v.Length];
            Ops.Softmax.Forward<float>(g, v, p);
            v = p;
        }
        if (s.Kind == InputKind.PaddingMask)
        {
            int rows = s.Shape[0], n = s.Shape[1];
            for (var b = 0; b < rows; b++)
            {
                var tail = b == 0 ? 0 : rng.Next(1, Math.Max(2, n / 2));
                for (var j = 0; j < n; j++) v[b * n + j] = b > 0 && (j >= n - tail || rng.NextDouble() < 0.1) ? 0f : 1f;
            }
        }
        if (s.Kind == InputKind.ClassIndex)
            for (var i = 0; i < v.Length; i++) v[i] = rng.NextDouble() < 0.1 ? -1 : rng.Next((int)s.Scale);
        if (s.Kind == InputKind.Uniform01)
            for (var i = 0; i < v.Length; i++) v[i] = rng.NextDouble() < 0.1 ? -1 : (float)rng.NextDouble();
        for (var i = 0; i < v.Length; i++) v[i] = (float)s.DType.Round(v[i]);
        return v;
    }

    static double MaxAbsDiff(double[] a, double[] b, out bool nan)
    {
        nan = false;
        double m = 0;
        for (var i = 0; i < a.Length; i++)
        {
            if (double.IsNaN(a[i])) { nan = true; continue; }
            m = Math.Max(m, Math.Abs(a[i] - b[i]));
        }
        return m;
    }
}
