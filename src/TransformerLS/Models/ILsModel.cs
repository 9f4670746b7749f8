using TransformerLS.Checkpoints;
using TransformerLS.Layers;

namespace TransformerLS.Models;

/// <summary>
/// The front door every model has, in torch's shape: its parameters under the reference state_dict names, loading a
/// state_dict (the official code's or this library's) and saving one.
/// </summary>
public interface ILsModel : IDisposable
{
    ParameterSet Parameters { get; }

    /// <summary>Loads a safetensors state_dict (<see cref="StateDict"/>): strict names every missing, unexpected or mis-shaped key.</summary>
    StateDictReport LoadStateDict(string path, bool strict = true);

    /// <summary>Writes the parameters as a plain safetensors state_dict (reference names; atomic, per-tensor checksums)
    /// that <see cref="LoadStateDict"/> and the reference code's loaders read.</summary>
    void Save(string path);
}
