using TransformerLS.Backends;
using System.Text;
using TransformerLS.Checkpoints;
using TransformerLS.Cuda;
using TransformerLS.Models;
using TransformerLS.Training;

namespace TransformerLS.Cli;

/// <summary>`tls generate`: bytes sampled from a causal LM checkpoint.</summary>
static class GenerateCommand
{
    const int MaxBytes = 10_000_000;

    public static int Run(string checkpoint, string prompt, int count, float temperature, int? seed, string device)
    {
        try
        {
            if (count is < 0 or > MaxBytes) throw new ArgumentOutOfRangeException("bytes", count, $"--bytes is {count}; expected 0 to {MaxBytes:N0}");
            var cfg = Trainer.ConfigOf(checkpoint);
            if (cfg.Task != "lm") throw new ArgumentException($"{checkpoint} holds a {cfg.Task} model; generate needs an lm checkpoint", nameof(checkpoint));
            using var be = BackendFactory.Open(device);
            using var model = new CausalLm(be, cfg.Lm, cfg.ParsedDType, cfg.Seed);
            SafeTensors.Open(checkpoint).ReadEach(model.Parameters.Tensors);
            using var sampler = new LmSampler(model);
            // Each byte goes out as it is drawn (raw bytes: a multi-byte UTF-8 character completes when its last byte does).
            var promptBytes = Encoding.UTF8.GetBytes(prompt);
            Console.Out.Flush();
            using var stdout = Console.OpenStandardOutput();
            stdout.Write(promptBytes);
            stdout.Flush();
            sampler.Generate(promptBytes, count, temperature, seed ?? Random.Shared.Next(), b => { stdout.WriteByte(b); stdout.Flush(); });
            stdout.WriteByte((byte)'\n');
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or CheckpointException or CudaException or CudaLibraryNotFoundException)
        {
            Console.Error.WriteLine($"tls generate: {CliErrors.Message(e)}");
            return 2;
        }
    }
}
