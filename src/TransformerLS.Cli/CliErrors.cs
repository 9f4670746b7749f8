namespace TransformerLS.Cli;

/// <summary>How a verb reports a named error: the message in plain words, without .NET's "(Parameter 'x')" and "Actual value was" tails.</summary>
static class CliErrors
{
    public static string Message(Exception e)
    {
        var m = e.Message;
        if (e is ArgumentException { ParamName: { } p }) m = m.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal);
        if (e is ArgumentOutOfRangeException) m = m.Split(Environment.NewLine + "Actual value was", 2)[0];
        return m.Trim();
    }
}
