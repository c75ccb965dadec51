using System.Runtime.InteropServices;

namespace Pinhole.EdgeHost.Telemetry.Outbox;

// A new file's directory entry is durable only once the directory itself is fsynced (POSIX);
// .NET has no API for it, so open the directory read-only and fsync it through libc.
internal static partial class DirectorySync
{
    private const int O_RDONLY = 0;

    public static void Fsync(string directory)
    {
        if (!OperatingSystem.IsLinux()) return;
        // O_DIRECTORY's value differs between architectures; O_RDONLY alone opens a directory fine.
        var fd = open(directory, O_RDONLY);
        if (fd < 0) return; // best effort: the data itself was fsynced
        fsync(fd);
        close(fd);
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int fsync(int fd);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int close(int fd);
}
