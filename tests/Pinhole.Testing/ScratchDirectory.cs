namespace Pinhole.Testing;

/// <summary>The temporary folders peers and tests write their configs and data into.</summary>
public static class ScratchDirectory
{
    /// <summary>Deletes <paramref name="dir"/> and everything in it, best effort: a file still held
    /// open or not ours is left behind rather than failing the cleanup.</summary>
    public static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
