using System.Globalization;
using System.Runtime.InteropServices;

namespace Pinhole.EdgeHost.Updates;

/// <summary>A trial in progress, as the launcher reads it from <c>ROOT/trial</c>.</summary>
/// <param name="Version">The release on trial.</param>
/// <param name="Previous">The release to go back to.</param>
/// <param name="TimeoutSeconds">How long the release has to commit.</param>
public sealed record TrialRecord(string Version, string Previous, int TimeoutSeconds);

/// <summary>A rollback the launcher did, from <c>ROOT/rollback</c>.</summary>
/// <param name="Version">The release that failed.</param>
/// <param name="Reason">Why, in the launcher's words.</param>
public sealed record RollbackRecord(string Version, string Reason);

/// <summary>
/// The install layout the device and <c>pinhole-launch</c> share (docs/updates.md): <c>releases/VERSION/</c>,
/// the <c>current</c> symlink, and the small <c>trial</c>, <c>rollback</c>, <c>committed</c> files. Every change
/// is a write to a temporary name, an fsync and one rename, so a power cut leaves the old or the new state.
/// </summary>
public sealed partial class InstallRoot(string root)
{
    /// <summary>The root folder.</summary>
    public string Root { get; } = root;

    /// <summary><c>ROOT/releases</c>.</summary>
    public string Releases => Path.Combine(Root, "releases");

    /// <summary><c>ROOT/trial</c>.</summary>
    public string TrialPath => Path.Combine(Root, "trial");

    /// <summary>The release folder of <paramref name="version"/>.</summary>
    public string ReleaseDir(string version) => Path.Combine(Releases, version);

    /// <summary>The version <c>ROOT/current</c> points at, or null when there is no link.</summary>
    public string? CurrentVersion()
    {
        var info = new FileInfo(Path.Combine(Root, "current"));
        var target = info.LinkTarget;
        if (target is null) return null;
        return Path.GetFileName(target.TrimEnd('/'));
    }

    /// <summary>Points <c>ROOT/current</c> at <paramref name="version"/> in one rename.</summary>
    public void SwitchTo(string version)
    {
        var temp = Path.Combine(Root, "current.update");
        if (new FileInfo(temp).LinkTarget is not null || File.Exists(temp)) File.Delete(temp);
        File.CreateSymbolicLink(temp, "releases/" + version);
        // rename(2) of the link itself: .NET's File.Move follows a link to a folder and refuses it.
        if (rename(temp, Path.Combine(Root, "current")) != 0)
            throw new IOException($"cannot switch {Root}/current to {version}: errno {Marshal.GetLastPInvokeError()}");
        SyncDirectory(Root);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int rename([MarshalAs(UnmanagedType.LPUTF8Str)] string from, [MarshalAs(UnmanagedType.LPUTF8Str)] string to);

    /// <summary>The trial in progress, or null.</summary>
    public TrialRecord? ReadTrial()
    {
        var values = ReadValues(TrialPath);
        if (values is null || !values.TryGetValue("version", out var v) || !values.TryGetValue("previous", out var p)) return null;
        var timeout = values.TryGetValue("timeout", out var t) && int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : 180;
        return new TrialRecord(v, p, timeout);
    }

    /// <summary>Writes <c>ROOT/trial</c> (before the switch: the launcher ignores a trial whose version is not current).</summary>
    public void WriteTrial(TrialRecord trial)
    {
        ArgumentNullException.ThrowIfNull(trial);
        WriteAtomically(TrialPath, $"version={trial.Version}\nprevious={trial.Previous}\ntimeout={trial.TimeoutSeconds}\nattempts=0\n");
    }

    /// <summary>Ends the trial: records the committed version, then deletes <c>ROOT/trial</c> (which is what the launcher watches).</summary>
    public void Commit(string version)
    {
        WriteAtomically(Path.Combine(Root, "committed"), version + "\n");
        File.Delete(TrialPath);
        File.Delete(Path.Combine(Root, "trial-status"));
        SyncDirectory(Root);
    }

    /// <summary>Writes why the trial has not passed yet; the launcher quotes it when it rolls back.</summary>
    public void WriteTrialStatus(string status) => WriteAtomically(Path.Combine(Root, "trial-status"), status + "\n", sync: false);

    /// <summary>The last rollback not yet reported to the relay, or null.</summary>
    public RollbackRecord? ReadRollback(bool reported = false)
    {
        var values = ReadValues(Path.Combine(Root, reported ? "rollback.reported" : "rollback"));
        return values is not null && values.TryGetValue("version", out var v) ? new RollbackRecord(v, values.GetValueOrDefault("reason", "")) : null;
    }

    /// <summary>Marks the last rollback reported (kept, so the same release is not installed again unless forced).</summary>
    public void MarkRollbackReported()
    {
        File.Move(Path.Combine(Root, "rollback"), Path.Combine(Root, "rollback.reported"), overwrite: true);
        SyncDirectory(Root);
    }

    /// <summary>Deletes release folders other than the current and the previous one (and leftovers of interrupted unpacks).</summary>
    public void Prune(string current, string? previous)
    {
        if (!Directory.Exists(Releases)) return;
        foreach (var dir in Directory.EnumerateDirectories(Releases))
        {
            var name = Path.GetFileName(dir);
            if (name == current || name == previous) continue;
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static Dictionary<string, string>? ReadValues(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0) values.TryAdd(line[..eq], line[(eq + 1)..]);
        }
        return values;
    }

    /// <summary>Writes a small file whole or not at all: temp file, fsync, rename, fsync of the folder.</summary>
    public static void WriteAtomically(string path, string text, bool sync = true)
    {
        var temp = path + ".tmp";
        using (var f = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            f.Write(System.Text.Encoding.UTF8.GetBytes(text));
            if (sync) f.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        if (sync) SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>fsync of a folder, so a rename in it survives a power cut.</summary>
    public static void SyncDirectory(string dir)
    {
        Telemetry.Outbox.DirectorySync.Fsync(dir);
    }
}
