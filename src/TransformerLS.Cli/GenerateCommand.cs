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
    public static int Run(string checkpoint, string prompt, int count, float temperature, int? seed, string device)
    {
        try
        {
            var cfg = Trainer.ConfigOf(checkpoint);
            if (cfg.Task != "lm") throw new ArgumentException($"{checkpoint} holds a {cfg.Task} model; generate needs an lm checkpoint", nameof(checkpoint));
            using var be = BackendFactory.Open(device);
            using var model = new CausalLm(be, cfg.Lm, cfg.ParsedDType, cfg.Seed);
            var file = SafeTensors.Open(checkpoint);
            foreach (var (name, t) in model.Parameters.Tensors) file.ReadInto(name, t);
            using var sampler = new LmSampler(model);
            var bytes = sampler.Generate(Encoding.UTF8.GetBytes(prompt), count, temperature, seed ?? Random.Shared.Next());
            Console.Write(prompt);
            Console.WriteLine(Encoding.UTF8.GetString(bytes));
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or CheckpointException or CudaException or CudaLibraryNotFoundException)
        {
            Console.Error.WriteLine($"tls generate: {CliErrors.Message(e)}");
            return 2;
        }
    }
}
