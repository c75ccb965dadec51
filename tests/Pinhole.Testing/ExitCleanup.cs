using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Pinhole.Testing;

/// <summary>
/// Makes sure a test run that ends without disposing its peers leaves nothing behind:
/// <list type="bullet">
/// <item>on a normal exit (AppDomain.ProcessExit), an unhandled exception, and SIGTERM, SIGINT,
/// SIGHUP and SIGQUIT (which do not raise ProcessExit by themselves; their default action still
/// follows), the registered cleanups run;</item>
/// <item>a run killed outright (SIGKILL, OOM) cannot clean up, so every peer's process group is
/// also recorded under /tmp/pinhole-testing/peers, and the next run that starts a peer kills the
/// groups whose owning test process is gone.</item>
/// </list>
/// </summary>
internal static class ExitCleanup
{
    private static readonly ConcurrentDictionary<object, Action> Actions = new(ReferenceEqualityComparer.Instance);
    private static readonly List<PosixSignalRegistration> Signals = [];
    private static readonly string PeerRecords = Path.Combine(Path.GetTempPath(), "pinhole-testing", "peers");
    private static int _installed;

    /// <summary>Runs <paramref name="cleanup"/> at exit unless <see cref="Unregister"/> is called first.</summary>
    internal static void Register(object owner, Action cleanup)
    {
        Install();
        Actions[owner] = cleanup;
    }

    /// <summary>Forgets the cleanup of <paramref name="owner"/> (it cleaned up itself).</summary>
    internal static void Unregister(object owner) => Actions.TryRemove(owner, out _);

    /// <summary>Records a peer's process group so a later run can kill it if this process dies without cleaning up.</summary>
    internal static void RecordProcessGroup(int processGroupId)
    {
        if (StartTime(processGroupId) is not { } start)
            return;
        try
        {
            Directory.CreateDirectory(PeerRecords);
            File.WriteAllText(RecordPath(processGroupId), start.ToString(CultureInfo.InvariantCulture));
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Forgets a peer's process group once it was killed.</summary>
    internal static void ForgetProcessGroup(int processGroupId)
    {
        try
        {
            File.Delete(RecordPath(processGroupId));
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Kills the recorded peer groups of test processes that no longer exist; returns how many groups were killed.</summary>
    internal static int SweepOrphanedPeers()
    {
        var killed = 0;
        if (!Directory.Exists(PeerRecords))
            return 0;
        foreach (var file in Directory.GetFiles(PeerRecords, "*-*"))
        {
            var parts = Path.GetFileName(file).Split('-');
            if (parts.Length != 2
                || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var owner)
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var group)
                || owner == Environment.ProcessId || Posix.IsAlive(owner))
            {
                continue;
            }
            try
            {
                // The start time guards against a recycled pid: only the very process we started is killed.
                var recorded = long.Parse(File.ReadAllText(file), CultureInfo.InvariantCulture);
                if (StartTime(group) == recorded && Posix.KillProcessGroup(group, Posix.SIGKILL))
                    killed++;
                File.Delete(file);
            }
            catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
            {
            }
        }
        return killed;
    }

    private static string RecordPath(int processGroupId) =>
        Path.Combine(PeerRecords, string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId}-{processGroupId}"));

    /// <summary>Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot.</summary>
    private static long? StartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[19], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException or IndexOutOfRangeException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) != 0)
            return;
        SweepOrphanedPeers();
        AppDomain.CurrentDomain.ProcessExit += static (_, _) => RunAll();
        AppDomain.CurrentDomain.UnhandledException += static (_, _) => RunAll();
        lock (Signals)
        {
            foreach (var signal in new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGHUP, PosixSignal.SIGQUIT })
                Signals.Add(PosixSignalRegistration.Create(signal, static _ => RunAll()));
        }
    }

    private static void RunAll()
    {
        foreach (var (owner, action) in Actions.ToArray())
        {
            try
            {
                action();
            }
            catch (Exception e)
            {
                // Keep going: one failed cleanup must not leave the other peers running.
                Console.Error.WriteLine($"Pinhole.Testing: cleanup of {owner} failed at exit: {e.Message}");
            }
            Actions.TryRemove(owner, out _);
        }
    }
}
