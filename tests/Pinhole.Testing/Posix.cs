using System.Runtime.InteropServices;

namespace Pinhole.Testing;

/// <summary>The few libc calls the harness needs that .NET does not expose.</summary>
internal static partial class Posix
{
    internal const int SIGTERM = 15;
    internal const int SIGKILL = 9;
    internal const int SIGCONT = 18;
    internal const int SIGSTOP = 19;
    internal const int CLONE_NEWNET = 0x40000000;

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint geteuid();

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    internal static uint GetEffectiveUserId() => geteuid();

    /// <summary>Sends <paramref name="signal"/> to every process in the group led by <paramref name="processGroupId"/>; false when none is left.</summary>
    internal static bool KillProcessGroup(int processGroupId, int signal) => processGroupId > 1 && kill(-processGroupId, signal) == 0;

    /// <summary>Sends <paramref name="signal"/> to one process; false when it is gone.</summary>
    internal static bool Kill(int pid, int signal) => pid > 1 && kill(pid, signal) == 0;

    /// <summary>True while a process with this id exists and is not a zombie.</summary>
    internal static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Field 3 follows the command name in parentheses: "pid (comm) S ...".
            var close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length && stat[close + 2] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Moves the calling thread into the network namespace opened as <paramref name="namespaceFile"/>.</summary>
    internal static void EnterNetworkNamespace(SafeHandle namespaceFile)
    {
        var added = false;
        namespaceFile.DangerousAddRef(ref added);
        try
        {
            if (setns((int)namespaceFile.DangerousGetHandle(), CLONE_NEWNET) != 0)
                throw new IOException($"setns failed: errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            if (added)
                namespaceFile.DangerousRelease();
        }
    }
}
