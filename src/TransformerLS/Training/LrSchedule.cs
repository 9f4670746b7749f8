namespace TransformerLS.Training;

public enum LrDecay { Constant, Linear, Cosine }

/// <summary>
/// Linear warm-up from 0 to <see cref="Peak"/> over <see cref="Warmup"/> steps, then constant, linear or cosine
/// decay towards Peak·<see cref="FinalFraction"/>, as torch's schedulers step it: the first step after the warm-up
/// runs at the peak and step <see cref="Total"/> one decay step short of the floor (reached after it), so every step
/// of a run, a 1-step run included, has a nonzero rate. Steps count from 1.
/// </summary>
public sealed record LrSchedule(float Peak, int Warmup, int Total, LrDecay Decay = LrDecay.Cosine, float FinalFraction = 0f)
{
    public void Validate()
    {
        if (!(Peak > 0) || float.IsInfinity(Peak)) throw new ArgumentOutOfRangeException(nameof(Peak), Peak, "the peak learning rate must be finite and > 0");
        if (Warmup < 0) throw new ArgumentOutOfRangeException(nameof(Warmup), Warmup, "expected >= 0 warm-up steps");
        if (Total < Warmup) throw new ArgumentOutOfRangeException(nameof(Total), Total, $"expected total steps >= warm-up steps ({Warmup})");
        if (!(FinalFraction >= 0 && FinalFraction <= 1)) throw new ArgumentOutOfRangeException(nameof(FinalFraction), FinalFraction, "expected 0 <= final fraction <= 1");
    }

    public float At(int step)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, "steps count from 1");
        if (step <= Warmup) return Peak * step / Warmup;
        var progress = Math.Clamp((double)(step - Warmup - 1) / Math.Max(1, Total - Warmup), 0, 1);
        var f = Decay switch
        {
            LrDecay.Constant => 1.0,
            LrDecay.Linear => 1 - (1 - FinalFraction) * progress,
            LrDecay.Cosine => FinalFraction + (1 - FinalFraction) * 0.5 * (1 + Math.Cos(Math.PI * progress)),
            _ => throw new ArgumentOutOfRangeException(nameof(Decay), Decay, "unknown decay"),
        };
        return (float)(Peak * f);
    }
}
