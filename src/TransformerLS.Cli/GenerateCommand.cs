using TransformerLS.Backends;
using System.Text;
using TransformerLS.Checkpoints;
using TransformerLS.Cuda;
using TransformerLS.Models;
using TransformerLS.Training;

namespace TransformerLS.Cli;

/// <summary>The options of `tls generate` beyond the checkpoint and device.</summary>
sealed record GenerateOptions(string Prompt = "", int MaxBytes = 200, float Temperature = 0.8f, int? Seed = null, int TopK = 0, float TopP = 1f,
    string? Stop = null, string? PromptsFile = null);

/// <summary>
/// `tls generate`: bytes sampled from a causal LM checkpoint by the incremental decoder (CausalLmDecoder). One prompt
/// streams its bytes as they are drawn; a prompts file (one per line) runs them as one batch and prints each
/// completion on its own line. Prefill and decode tokens/s go to stderr.
/// </summary>
static class GenerateCommand
{
    const int MaxBytes = 10_000_000, MaxBatch = 4096;

    public static int Run(string checkpoint, string device, GenerateOptions o)
    {
        try
        {
            if (o.MaxBytes is < 0 or > MaxBytes) throw new ArgumentOutOfRangeException("max-bytes", o.MaxBytes, $"--max-bytes is {o.MaxBytes}; expected 0 to {MaxBytes:N0}");
            var sampling = new SamplingOptions
            {
                Temperature = o.Temperature, TopK = o.TopK, TopP = o.TopP, MaxBytes = o.MaxBytes,
                Stop = o.Stop is null ? null : Encoding.UTF8.GetBytes(o.Stop),
            };
            sampling.Validate();
            var prompts = o.PromptsFile is null ? [Encoding.UTF8.GetBytes(o.Prompt)] : ReadPrompts(o.PromptsFile);
            var cfg = Trainer.ConfigOf(checkpoint);
            if (cfg.Task != "lm") throw new ArgumentException($"{checkpoint} holds a {cfg.Task} model; generate needs an lm checkpoint", nameof(checkpoint));
            using var be = BackendFactory.Open(device);
            using var model = new CausalLm(be, cfg.Lm, cfg.ParsedDType, cfg.Seed);
            SafeTensors.Open(checkpoint).ReadEach(model.Parameters.Tensors);
            using var generator = new LmGenerator(model, prompts.Length);
            var seed = o.Seed ?? Random.Shared.Next();
            Console.Out.Flush();
            using var stdout = Console.OpenStandardOutput();
            byte[][] outputs;
            if (prompts.Length == 1)
            {
                // Each byte goes out as it is drawn (raw bytes: a multi-byte UTF-8 character completes when its last byte does).
                stdout.Write(prompts[0]);
                stdout.Flush();
                outputs = generator.Generate(prompts, sampling, seed, (_, b) => { stdout.WriteByte(b); stdout.Flush(); });
                stdout.WriteByte((byte)'\n');
            }
            else
            {
                outputs = generator.Generate(prompts, sampling, seed);
                for (var i = 0; i < prompts.Length; i++)
                {
                    stdout.Write(prompts[i]);
                    stdout.Write(outputs[i]);
                    stdout.WriteByte((byte)'\n');
                }
            }
            stdout.Flush();
            var s = generator.LastStats!;
            Console.Error.WriteLine($"prefill: {s.PrefillTokens} tokens in {s.PrefillSeconds:F3} s ({s.PrefillTokensPerSecond:F0} tokens/s); "
                + $"decode: {s.DecodeTokens} tokens in {s.DecodeSeconds:F3} s ({s.DecodeTokensPerSecond:F0} tokens/s), batch {prompts.Length}, seed {seed}");
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or CheckpointException or CudaException or CudaLibraryNotFoundException)
        {
            Console.Error.WriteLine($"tls generate: {CliErrors.Message(e)}");
            return 2;
        }
    }

    static byte[][] ReadPrompts(string path)
    {
        if (!File.Exists(path)) throw new ArgumentException($"--prompts: the file '{path}' does not exist", "prompts");
        var lines = File.ReadAllLines(path, Encoding.UTF8);
        if (lines.Length is 0 or > MaxBatch) throw new ArgumentException($"--prompts: '{path}' holds {lines.Length} lines; expected 1 to {MaxBatch} prompts, one per line", "prompts");
        return [.. lines.Select(Encoding.UTF8.GetBytes)];
    }
}
