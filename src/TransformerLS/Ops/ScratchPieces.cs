namespace TransformerLS.Ops;

/// <summary>
/// A launcher's scratch: one device allocation carved into up to four pieces, each starting on a 256-byte boundary.
/// The sizes come from the shapes alone, so a node's planned workspace and the launcher's allocation are the same number.
/// </summary>
readonly record struct ScratchPieces(long P0, long P1 = 0, long P2 = 0, long P3 = 0)
{
    static long Align(long bytes) => (bytes + 255) / 256 * 256;

    public long Bytes => Align(P0) + Align(P1) + Align(P2) + Align(P3);

    /// <summary>The device address of piece <paramref name="piece"/> (0 to 3) in the allocation at <paramref name="block"/>.</summary>
    public ulong At(ulong block, int piece) => block + (ulong)(piece switch
    {
        0 => 0,
        1 => Align(P0),
        2 => Align(P0) + Align(P1),
        3 => Align(P0) + Align(P1) + Align(P2),
        _ => throw new ArgumentOutOfRangeException(nameof(piece), piece, "a scratch block has pieces 0 to 3"),
    });
}
