namespace TransformerLS.Cli;

/// <summary>
/// One run writes a checkpoint path at a time: `&lt;path&gt;.lock` is created exclusively and held open (deleted on close)
/// for the run; a second run on the same path is refused by name. Temp files a killed save left beside the path
/// (`&lt;path&gt;.&lt;pid&gt;.tmp` of a process that no longer runs) are removed when the lock is taken.
/// </summary>
sealed class CheckpointLock : IDisposable
{
    readonly FileStream _file;

    CheckpointLock(FileStream file) => _file = file;

    public static CheckpointLock Take(string checkpoint)
    {
        var full = Path.GetFullPath(checkpoint);
        FileStream file;
        try
        {
            file = new FileStream(full + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ArgumentException($"--checkpoint '{checkpoint}': cannot write in '{Path.GetDirectoryName(full)}' ({e.Message})", "checkpoint");
        }
        catch (IOException e)
        {
            throw new ArgumentException($"--checkpoint '{checkpoint}' is being written by another run (it holds {full}.lock: {e.Message}); " +
                "choose another path or wait for that run to end", "checkpoint");
        }
        using (var w = new StreamWriter(file, leaveOpen: true)) w.Write(Environment.ProcessId);
        foreach (var tmp in Directory.GetFiles(Path.GetDirectoryName(full)!, Path.GetFileName(full) + ".*.tmp"))
            if (int.TryParse(Path.GetFileName(tmp)[(Path.GetFileName(full).Length + 1)..^4], out var pid) && !Alive(pid))
                File.Delete(tmp);
        return new CheckpointLock(file);
    }

    static bool Alive(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; } // no such process
    }

    public void Dispose() => _file.Dispose();
}
