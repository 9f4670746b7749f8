using System.Diagnostics;
using TransformerLS.Backends;
using TransformerLS.Checkpoints;
using TransformerLS.Cuda;
using TransformerLS.Data;
using TransformerLS.Models;
using TransformerLS.Training;

namespace TransformerLS.Cli;

/// <summary>`tls classify`: a listops checkpoint over a file of expressions, one per line (LRA's text form).</summary>
static class ClassifyCommand
{
    public static int Run(string checkpoint, string input, int batch, string device)
    {
        try
        {
            if (batch < 1) throw new ArgumentOutOfRangeException("batch", batch, $"--batch is {batch}; expected at least 1 sequence");
            var cfg = Trainer.ConfigOf(checkpoint);
            if (cfg.Task != "listops") throw new ArgumentException($"{checkpoint} holds a {cfg.Task} model; classify needs a listops checkpoint", nameof(checkpoint));
            if (!File.Exists(input)) throw new FileNotFoundException($"--input '{input}' does not exist", input);
            var lines = File.ReadAllLines(input);
            var sequences = new List<int[]>();
            for (var i = 0; i < lines.Length; i++)
            {
                if (string.IsNullOrWhiteSpace(lines[i])) continue;
                try { sequences.Add(ListOps.Parse(lines[i])); }
                catch (FormatException e) { throw new ArgumentException($"--input '{input}' line {i + 1}: {e.Message}", "input"); }
            }
            var model = cfg.ListOpsModel();
            var tooLong = sequences.FindIndex(s => s.Length > model.MaxLength);
            if (tooLong >= 0)
                throw new ArgumentException($"--input '{input}': expression {tooLong + 1} has {sequences[tooLong].Length} tokens; the model takes at most {model.MaxLength}", "input");
            using var be = BackendFactory.Open(device);
            using var classifier = new LraClassifier(be, model, cfg.ParsedDType, cfg.Seed);
            SafeTensors.Open(checkpoint).ReadEach(classifier.Parameters.Tensors);
            var clock = Stopwatch.StartNew();
            for (var at = 0; at < sequences.Count; at += batch)
            {
                var probs = classifier.Classify(sequences.GetRange(at, Math.Min(batch, sequences.Count - at)), ListOps.Pad);
                foreach (var p in probs)
                {
                    var best = Array.IndexOf(p, p.Max());
                    Console.WriteLine($"{best}\t{p[best]:F4}");
                }
            }
            Console.Error.WriteLine($"tls classify: {sequences.Count:N0} expressions in {clock.Elapsed.TotalSeconds:F2} s " +
                $"({sequences.Count / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):N0} per second) on {be.Device}; each line: class, probability");
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or CheckpointException or CudaException or CudaLibraryNotFoundException)
        {
            Console.Error.WriteLine($"tls classify: {CliErrors.Message(e)}");
            return 2;
        }
    }
}
