namespace TransformerLS.Tensors;

/// <summary>The library's one random draw: parameter init, the bench's random inputs and the conformance cases all take it from here.</summary>
public static class RandomDraw
{
    /// <summary>A standard normal sample (Box-Muller; 1 − u keeps the log finite).</summary>
    public static double Normal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
