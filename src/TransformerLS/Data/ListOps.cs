namespace TransformerLS.Data;

/// <summary>
/// Generation knobs of the Long Range Arena ListOps task (lra_benchmarks/data/listops.py): trees of MIN, MAX,
/// MED and SM (sum mod 10) over digits, an operator with probability 0.25 below <see cref="MaxDepth"/>, 2 to
/// <see cref="MaxArgs"/> arguments, kept when MinLength &lt; tokens &lt; MaxLength. The defaults are LRA's.
/// </summary>
public sealed record ListOpsConfig(int MaxDepth = 10, int MaxArgs = 10, int MinLength = 500, int MaxLength = 2000)
{
    public const double OperatorProbability = 0.25;

    public void Validate()
    {
        if (MaxDepth < 1) throw new ArgumentOutOfRangeException(nameof(MaxDepth), MaxDepth, "expected >= 1");
        if (MaxArgs < 2) throw new ArgumentOutOfRangeException(nameof(MaxArgs), MaxArgs, "expected >= 2 (an operator takes 2 or more arguments)");
        if (MinLength < 0 || MaxLength <= MinLength + 1)
            throw new ArgumentOutOfRangeException(nameof(MaxLength), MaxLength, $"expected MinLength ({MinLength}) >= 0 and MaxLength > MinLength + 1 (lengths are strictly between)");
    }
}

/// <summary>One example: tokens (see <see cref="ListOps"/> for the vocabulary) and the value 0..9.</summary>
public sealed record ListOpsExample(int[] Tokens, int Label);

/// <summary>
/// The ListOps generator, deterministic by seed. Tokens are what LRA's input pipeline feeds the model once the
/// parentheses of its tree strings are stripped: operators, digits and "]". Vocabulary: 0 = padding,
/// 1..10 = digits 0..9, 11..14 = [MIN [MAX [MED [SM, 15 = ], 16 = CLS (for classifiers that prepend one).
/// </summary>
public static class ListOps
{
    public const int Pad = 0, Digit0 = 1, Min = 11, Max = 12, Med = 13, SumMod = 14, Close = 15, Cls = 16, VocabSize = 17;
    static readonly string[] Names = ["<pad>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "[MIN", "[MAX", "[MED", "[SM", "]", "<cls>"];

    /// <summary>
    /// An endless stream of distinct examples (a repeated token sequence is drawn again, as LRA's set does),
    /// the same for the same seed and config.
    /// </summary>
    public static IEnumerable<ListOpsExample> Generate(ListOpsConfig cfg, int seed)
    {
        cfg.Validate();
        var rng = new Random(seed);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var tokens = new List<int>();
        while (true)
        {
            tokens.Clear();
            var label = Tree(rng, cfg, 1, tokens);
            if (tokens.Count <= cfg.MinLength || tokens.Count >= cfg.MaxLength) continue;
            if (!seen.Add(ToText(tokens))) continue;
            yield return new ListOpsExample([.. tokens], label);
        }
    }

    /// <summary>Appends one subtree's tokens and returns its value, drawing in LRA's order (leaf test, arity, children, operator).</summary>
    static int Tree(Random rng, ListOpsConfig cfg, int depth, List<int> tokens)
    {
        var r = depth < cfg.MaxDepth ? rng.NextDouble() : 1.0;
        if (r > ListOpsConfig.OperatorProbability)
        {
            var digit = rng.Next(10);
            tokens.Add(Digit0 + digit);
            return digit;
        }
        var arity = rng.Next(2, cfg.MaxArgs + 1);
        var at = tokens.Count;
        tokens.Add(Pad); // the operator is drawn after its arguments; its slot is filled in below
        var values = new int[arity];
        for (var i = 0; i < arity; i++) values[i] = Tree(rng, cfg, depth + 1, tokens);
        var op = Min + rng.Next(4);
        tokens[at] = op;
        tokens.Add(Close);
        return Apply(op, values);
    }

    static int Apply(int op, int[] values) => op switch
    {
        Min => values.Min(),
        Max => values.Max(),
        // numpy's median (the mean of the middle two for an even count), truncated to int as LRA does.
        Med => (int)Median(values),
        SumMod => values.Sum() % 10,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "not a ListOps operator token"),
    };

    static double Median(int[] values)
    {
        var s = values.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2.0;
    }

    /// <summary>Evaluates a token sequence with a stack, independently of the generator; throws on malformed input.</summary>
    public static int Evaluate(ReadOnlySpan<int> tokens)
    {
        var stack = new Stack<(int Op, List<int> Args)>();
        int? result = null;
        foreach (var t in tokens)
        {
            if (result is not null) throw new FormatException("tokens continue after the expression ended");
            if (t >= Min && t <= SumMod) { stack.Push((t, [])); continue; }
            int value;
            if (t >= Digit0 && t < Digit0 + 10) value = t - Digit0;
            else if (t == Close)
            {
                if (stack.Count == 0) throw new FormatException("']' without an operator");
                var (op, args) = stack.Pop();
                if (args.Count == 0) throw new FormatException($"{Names[op]} closed without arguments");
                value = Apply(op, [.. args]);
            }
            else throw new FormatException($"token {t} is not part of an expression");
            if (stack.Count == 0) result = value;
            else stack.Peek().Args.Add(value);
        }
        if (result is null || stack.Count > 0) throw new FormatException("the expression is incomplete");
        return result.Value;
    }

    public static string ToText(IEnumerable<int> tokens) => string.Join(' ', tokens.Select(t => Names[t]));

    /// <summary>Parses LRA's text form (parentheses are ignored, as LRA's pipeline strips them).</summary>
    public static int[] Parse(string text) =>
        [.. text.Replace("(", " ").Replace(")", " ").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w =>
        {
            var i = Array.IndexOf(Names, w);
            return i is > 0 and < Cls ? i : throw new FormatException($"'{w}' is not a ListOps token");
        })];
}
