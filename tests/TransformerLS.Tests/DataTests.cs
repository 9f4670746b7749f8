using TransformerLS.Data;

namespace TransformerLS.Tests;

public class ListOpsTests
{
    [Theory]
    [InlineData("[MAX 2 9 [MIN 4 7 ] 0 ]", 9)]
    [InlineData("[MED 1 2 3 4 ]", 2)]          // numpy median 2.5, truncated
    [InlineData("[MED 7 1 5 ]", 5)]
    [InlineData("[SM 9 8 [SM 5 6 ] ]", 8)]     // (9 + 8 + 1) mod 10
    [InlineData("( ( ( [MIN 3 ) 1 ) ] )", 1)]  // LRA's text form with parentheses
    [InlineData("7", 7)]
    public void Evaluates_hand_written_expressions(string text, int value) => Assert.Equal(value, ListOps.Evaluate(ListOps.Parse(text)));

    [Theory]
    [InlineData("[MAX 2 9")]
    [InlineData("[MAX ]")]
    [InlineData("2 ]")]
    [InlineData("1 2")]
    public void Malformed_expressions_are_refused(string text) => Assert.Throws<FormatException>(() => ListOps.Evaluate(ListOps.Parse(text)));

    [Fact]
    public void Generated_examples_obey_the_config_and_their_labels_evaluate()
    {
        var cfg = new ListOpsConfig(MaxDepth: 6, MaxArgs: 5, MinLength: 20, MaxLength: 120);
        var examples = ListOps.Generate(cfg, seed: 7).Take(300).ToList();
        var labels = new int[10];
        foreach (var e in examples)
        {
            Assert.InRange(e.Tokens.Length, cfg.MinLength + 1, cfg.MaxLength - 1);
            Assert.Equal(ListOps.Evaluate(e.Tokens), e.Label);
            Assert.All(e.Tokens, t => Assert.InRange(t, ListOps.Digit0, ListOps.Close));
            Assert.True(Depth(e.Tokens) <= cfg.MaxDepth, $"depth {Depth(e.Tokens)} > {cfg.MaxDepth}: {ListOps.ToText(e.Tokens)}");
            labels[e.Label]++;
        }
        Assert.Equal(examples.Count, examples.Select(e => ListOps.ToText(e.Tokens)).Distinct().Count());
        Assert.True(labels.Count(c => c > 0) >= 8, $"labels spread over too few values: {string.Join(",", labels)}");
    }

    static int Depth(int[] tokens)
    {
        int depth = 0, max = 0;
        foreach (var t in tokens)
        {
            if (t >= ListOps.Min && t <= ListOps.SumMod) max = Math.Max(max, ++depth);
            else if (t == ListOps.Close) depth--;
        }
        return max + 1; // leaves sit one below the deepest operator
    }

    [Fact]
    public void Same_seed_same_examples_other_seed_other_examples()
    {
        var cfg = new ListOpsConfig(MinLength: 10, MaxLength: 200);
        string[] Take(int seed) => [.. ListOps.Generate(cfg, seed).Take(20).Select(e => ListOps.ToText(e.Tokens))];
        Assert.Equal(Take(3), Take(3));
        Assert.NotEqual(Take(3), Take(4));
    }

    [Fact]
    public void Lra_defaults_generate_long_examples()
    {
        var e = ListOps.Generate(new ListOpsConfig(), seed: 1).First();
        Assert.InRange(e.Tokens.Length, 501, 1999);
    }

    [Fact]
    public void Bad_configs_are_named()
    {
        Assert.Contains("MaxArgs", Assert.Throws<ArgumentOutOfRangeException>(() => ListOps.Generate(new ListOpsConfig(MaxArgs: 1), 0).First()).Message);
        Assert.Contains("MaxLength", Assert.Throws<ArgumentOutOfRangeException>(() => ListOps.Generate(new ListOpsConfig(MinLength: 10, MaxLength: 11), 0).First()).Message);
    }
}

public class ByteCorpusTests
{
    [Fact]
    public void Enwik8_gets_the_usual_split_other_files_the_same_proportions()
    {
        Assert.Equal((90_000_000L, 5_000_000L), ByteCorpus.Split(ByteCorpus.Enwik8Bytes));
        Assert.Equal((9_001L, 500L), ByteCorpus.Split(10_001));
        var c = ByteCorpus.FromBytes([.. Enumerable.Range(0, 2000).Select(i => (byte)i)]);
        Assert.Equal(1800, c.Train.Length);
        Assert.Equal(100, c.Valid.Length);
        Assert.Equal(100, c.Test.Length);
        Assert.Equal((byte)(1800 % 256), c.Valid.Span[0]);
    }

    [Fact]
    public void Bptt_rows_continue_across_steps_and_targets_are_shifted()
    {
        var data = Enumerable.Range(0, 1000).Select(i => (byte)(i % 251)).ToArray();
        var batches = new BpttBatches(data, batch: 3, length: 10);
        Assert.Equal(33, batches.Steps); // streams of 333 bytes: (333 - 1) / 10
        int[] x0 = new int[30], y0 = new int[30], x1 = new int[30], y1 = new int[30];
        batches.Fill(0, x0, y0);
        batches.Fill(1, x1, y1);
        for (var b = 0; b < 3; b++)
        {
            Assert.Equal(data[b * 333], x0[b * 10]);
            Assert.Equal(y0[b * 10 + 9], x1[b * 10]);                     // the next step picks up where this one ended
            for (var t = 0; t < 9; t++) Assert.Equal(x0[b * 10 + t + 1], y0[b * 10 + t]);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => batches.Fill(33, x0, y0));
        Assert.Contains("streams", Assert.Throws<ArgumentException>(() => new BpttBatches(data, batch: 100, length: 10)).Message);
    }

    [Fact]
    public void Missing_or_tiny_files_are_named()
    {
        Assert.Throws<FileNotFoundException>(() => ByteCorpus.Load("/nonexistent/corpus.txt"));
        var tiny = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(tiny, new byte[10]);
            Assert.Contains("10 bytes", Assert.Throws<ArgumentException>(() => ByteCorpus.Load(tiny)).Message);
        }
        finally { File.Delete(tiny); }
    }
}
