namespace TransformerLS.Layers;

/// <summary>Pieces the attention modules share.</summary>
public static class AttentionParts
{
    /// <summary>Transformer-XL's sinusoid of position δ: [sin(δ·f_i) for i &lt; D/2, cos(δ·f_i)], f_i = 10000^(−2i/D).</summary>
    public static float[] Sinusoids(int count, int dim)
    {
        var table = new float[count * dim];
        for (var p = 0; p < count; p++)
            for (var i = 0; i < dim / 2; i++)
            {
                var angle = p / Math.Pow(10000, 2.0 * i / dim);
                table[p * dim + i] = (float)Math.Sin(angle);
                table[p * dim + dim / 2 + i] = (float)Math.Cos(angle);
            }
        return table;
    }
}

