using TransformerLS.Backends;
using TransformerLS.Checkpoints;
using TransformerLS.Cuda;
using TransformerLS.Training;

namespace TransformerLS.Cli;

/// <summary>
/// `tls convert`: a library checkpoint (what tls train writes: model, a fresh optimizer state, the config) from a
/// state_dict of the official PyTorch code exported to safetensors, so tls eval, generate and train --resume take it.
/// </summary>
static class ConvertCommand
{
    public static int Run(string reference, string output, string? configPath, string? task, string? data, string? dtype, bool strict, string device)
    {
        try
        {
            var cfg = configPath is not null ? TrainConfig.Load(configPath) : new TrainConfig();
            cfg = cfg with { Task = task ?? cfg.Task, Data = data ?? cfg.Data, DType = dtype ?? cfg.DType };
            cfg.Validate();
            if (File.Exists(output))
                throw new ArgumentException($"--out '{output}' exists; tls convert does not overwrite a checkpoint: choose another path or delete it first", "out");
            TrainCommand.CheckWritable(output);
            using var be = BackendFactory.Open(device);
            using var trainer = new Trainer(be, cfg);
            var report = trainer.LoadStateDict(reference, strict);
            trainer.Save(output);
            Console.WriteLine($"tls convert: {reference} -> {output}: {cfg.Task}, {cfg.DType}, {trainer.Task.Parameters.Count:N0} parameters");
            if (report.Ignored.Count > 0) Console.WriteLine($"  set aside: {string.Join(", ", report.Ignored)}");
            if (report.Missing.Count > 0) Console.WriteLine($"  missing (kept at their initial values): {string.Join(", ", report.Missing)}");
            if (report.Unexpected.Count > 0) Console.WriteLine($"  unexpected (not loaded): {string.Join(", ", report.Unexpected)}");
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or CheckpointException or CudaException or CudaLibraryNotFoundException
            or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"tls convert: {CliErrors.Message(e)}");
            return 2;
        }
    }
}
