using System.Collections.Concurrent;

namespace Pinhole.Testing;

/// <summary>
/// Finds the external programs the integration tests talk to (mosquitto, ffprobe, chromium, ip …)
/// and says why a test has to be skipped when one is missing.
/// </summary>
public static class Tools
{
    // sbin folders are searched too: mosquitto, ip and iptables live there and a test runner's
    // PATH does not always include them.
    private static readonly string[] ExtraDirectories = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"];
    private static readonly ConcurrentDictionary<string, string?> Cache = new(StringComparer.Ordinal);

    /// <summary>The full path of <paramref name="program"/> (a name looked up on PATH and the sbin folders, or an absolute path), or null when it is not there.</summary>
    public static string? Find(string program)
    {
        ArgumentException.ThrowIfNullOrEmpty(program);
        return Cache.GetOrAdd(program, static p =>
        {
            if (p.Contains('/', StringComparison.Ordinal))
                return IsExecutable(p) ? Path.GetFullPath(p) : null;
            var path = Environment.GetEnvironmentVariable("PATH") ?? "";
            foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(ExtraDirectories))
            {
                var candidate = Path.Combine(dir, p);
                if (IsExecutable(candidate))
                    return candidate;
            }
            return null;
        });
    }

    /// <summary>True when <paramref name="program"/> can be found and run.</summary>
    public static bool Exists(string program) => Find(program) is not null;

    /// <summary>The full path of <paramref name="program"/>; throws with a readable message when it is missing.</summary>
    public static string Require(string program) =>
        Find(program) ?? throw new InvalidOperationException($"required program '{program}' is not installed (see APT_PACKAGES in build.sh)");

    /// <summary>
    /// Null when every program is present, otherwise a skip reason naming the missing ones, such as
    /// "needs mosquitto_passwd (not installed; build.sh installs it as root)".
    /// </summary>
    public static string? SkipReason(params string[] programs)
    {
        ArgumentNullException.ThrowIfNull(programs);
        var missing = programs.Where(p => !Exists(p)).ToArray();
        return missing.Length == 0 ? null : $"needs {string.Join(", ", missing)} (not installed; build.sh installs it as root)";
    }

    /// <summary>True when the tests run as root (uid 0), which network namespaces and iptables need.</summary>
    public static bool IsRoot => Posix.GetEffectiveUserId() == 0;

    private static bool IsExecutable(string path)
    {
        try
        {
            if (!File.Exists(path))
                return false;
            if (OperatingSystem.IsWindows())
                return true;
            var mode = File.GetUnixFileMode(path);
            return (mode & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
