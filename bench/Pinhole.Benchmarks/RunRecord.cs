using System.Diagnostics;
using System.Globalization;
using Pinhole.Testing;

namespace Pinhole.Benchmarks;

/// <summary>
/// When, how loaded and with what a benchmark ran: the first line of its section, so that a figure
/// can be read against the machine's state and the versions of the code and of its peers. Made when
/// the benchmark starts (date, 1-minute load average, commit) and read when it writes its section
/// (load average again, versions).
/// </summary>
internal sealed class RunRecord
{
    private readonly string _name;
    private readonly DateTime _startedUtc = DateTime.UtcNow;
    private readonly string _loadAtStart = LoadAverage();
    private readonly string _commit = Commit();

    private RunRecord(string name) => _name = name;

    /// <summary>Starts the record of the benchmark <paramref name="name"/> (its command-line name).</summary>
    public static RunRecord Start(string name) => new(name);

    /// <summary>
    /// One Markdown paragraph: the command, the start time (UTC), the load average at the start and
    /// now, the commit, .NET's version and <paramref name="peers"/> (e.g. <see cref="Tool"/>'s answers).
    /// </summary>
    public string Line(params string?[] peers)
    {
        var versions = new List<string> { $".NET {Environment.Version}" };
        versions.AddRange(peers.Where(p => !string.IsNullOrWhiteSpace(p))!);
        return string.Create(CultureInfo.InvariantCulture,
            $"`dotnet run --project bench/Pinhole.Benchmarks -c Release -- --out docs/benchmarks.md {_name}` on {_startedUtc:yyyy-MM-dd HH:mm} UTC at commit {_commit}, {Environment.ProcessorCount} cores (shared), 1-minute load average {_loadAtStart} at the start and {LoadAverage()} at the end; {string.Join(", ", versions)}.\n\n");
    }

    /// <summary>The 1-minute load average from /proc/loadavg ("unknown" where there is none).</summary>
    public static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "unknown"; }
        catch (UnauthorizedAccessException) { return "unknown"; }
    }

    /// <summary>
    /// A peer program's version, as <paramref name="label"/> followed by the first token of its
    /// answer to <paramref name="args"/> that starts with a digit (<c>ffmpeg -version</c> → "ffmpeg
    /// 5.1.6-0+deb12u1"); null when the program is missing or says nothing of the kind.
    /// </summary>
    public static string? Tool(string label, string program, params string[] args)
    {
        var output = Run(program, args);
        if (output is null) return null;
        var firstLine = output.Split('\n').FirstOrDefault(l => l.Trim().Length > 0) ?? "";
        var version = firstLine.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(t => char.IsAsciiDigit(t[0]));
        return version is null ? null : $"{label} {version}";
    }

    private static string Commit()
    {
        var head = Run("git", "-C", RepoPaths.Root, "rev-parse", "--short", "HEAD")?.Trim();
        if (string.IsNullOrEmpty(head)) return "unknown";
        // A benchmark run on uncommitted changes says so: its figures belong to no commit.
        var dirty = Run("git", "-C", RepoPaths.Root, "status", "--porcelain", "--untracked-files=no", "--", "src", "bench");
        return string.IsNullOrWhiteSpace(dirty) ? head : head + " (with uncommitted changes)";
    }

    private static string? Run(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var process = Process.Start(psi)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(10_000))
            {
                process.Kill(entireProcessTree: true);
                return null;
            }
            return process.ExitCode == 0 ? stdout.GetAwaiter().GetResult() : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
