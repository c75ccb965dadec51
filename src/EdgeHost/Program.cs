using Microsoft.Extensions.Hosting;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Web;

namespace Pinhole.EdgeHost;

/// <summary>
/// <c>pinhole-edge --config edge.json</c> runs the edge host; <c>pinhole-edge check-config FILE</c>
/// validates a config; <c>pinhole-edge hash-password</c> turns a password on stdin into the stored
/// PBKDF2 form for <c>web.password</c>. Hand-rolled: three commands do not need a parser library,
/// and start-up time matters on a Pi.
/// </summary>
public static class Program
{
    /// <summary>Exit code for a config with problems.</summary>
    public const int ExitConfigInvalid = 1;

    /// <summary>Exit code for a command line that makes no sense.</summary>
    public const int ExitUsage = 2;

    /// <summary>Exit code when the host could not start or failed.</summary>
    public const int ExitFailed = 3;

    internal const string Usage = """
        Usage:
          pinhole-edge --config FILE         run the edge host with FILE (edge.json)
          pinhole-edge check-config FILE     validate FILE; print every problem, one per line; exit 1 on any
          pinhole-edge hash-password         read a password on stdin, print its PBKDF2 hash for web.password
          pinhole-edge --help                show this help
          pinhole-edge --version             show the version

        Under systemd (Type=notify) it sends READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 on $NOTIFY_SOCKET.
        """;

    /// <summary>Entry point.</summary>
    public static Task<int> Main(string[] args) =>
        RunAsync(args, Console.Out, Console.Error, configure: null);

    /// <summary>The whole command line, with output streams and extra service registrations injectable (tests, benchmarks).</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, Action<EdgeHostOptions>? configure)
    {
        try
        {
            switch (args)
            {
                case [] :
                    await stderr.WriteLineAsync("pinhole-edge: missing --config FILE (see pinhole-edge --help)");
                    return ExitUsage;
                case ["--help" or "-h" or "help" or "-?"]:
                    await stdout.WriteLineAsync(Usage);
                    return 0;
                case ["--version"]:
                    await stdout.WriteLineAsync($"pinhole-edge {Updates.ReleaseInfo.Version}");
                    return 0;
                case ["check-config", var file]:
                    return await CheckConfigAsync(file, stdout);
                case ["check-config", ..]:
                    await stderr.WriteLineAsync("pinhole-edge: usage: pinhole-edge check-config FILE");
                    return ExitUsage;
                case ["hash-password"]:
                    return await HashPasswordAsync(stdout, stderr);
                case ["--config", var file]:
                    return await RunHostAsync(file, stderr, configure);
                case [var single] when single.StartsWith("--config=", StringComparison.Ordinal):
                    return await RunHostAsync(single["--config=".Length..], stderr, configure);
                case ["--config"]:
                    await stderr.WriteLineAsync("pinhole-edge: --config needs a FILE");
                    return ExitUsage;
                default:
                    await stderr.WriteLineAsync($"pinhole-edge: unknown arguments: {string.Join(' ', args)} (see pinhole-edge --help)");
                    return ExitUsage;
            }
        }
        catch (Exception e)
        {
            // Last resort: one line, no stack trace. Anything that reaches here is a bug worth its message.
            await stderr.WriteLineAsync($"pinhole-edge: fatal: {e.GetType().Name}: {e.Message}");
            return ExitFailed;
        }
    }

    private static async Task<int> CheckConfigAsync(string file, TextWriter stdout)
    {
        var result = EdgeConfigLoader.LoadFile(file);
        foreach (var problem in result.Problems)
            await stdout.WriteLineAsync(problem.Path.Length == 0 ? $"{file}: {problem.Message}" : problem.ToString());
        if (!result.IsValid)
            return ExitConfigInvalid;
        await stdout.WriteLineAsync($"{file}: ok");
        return 0;
    }

    private static async Task<int> HashPasswordAsync(TextWriter stdout, TextWriter stderr)
    {
        var password = (await Console.In.ReadLineAsync())?.TrimEnd('\r', '\n');
        if (string.IsNullOrEmpty(password))
        {
            await stderr.WriteLineAsync("pinhole-edge: hash-password reads the password from stdin (one line)");
            return ExitUsage;
        }
        await stdout.WriteLineAsync(PasswordHash.Create(password).ToString());
        return 0;
    }

    private static async Task<int> RunHostAsync(string file, TextWriter stderr, Action<EdgeHostOptions>? configure)
    {
        var result = EdgeConfigLoader.LoadFile(file);
        if (!result.IsValid)
        {
            foreach (var problem in result.Problems)
                await stderr.WriteLineAsync($"pinhole-edge: {file}: {problem}");
            return ExitConfigInvalid;
        }

        var options = new EdgeHostOptions { ConfigPath = file, Config = result.Config! };
        configure?.Invoke(options);
        await using var app = EdgeApp.Build(options);
        try
        {
            await app.StartAsync();
        }
        catch (IOException e)
        {
            // Typically "address already in use" for web.listen.
            await stderr.WriteLineAsync($"pinhole-edge: cannot listen on {result.Config!.Web.Listen}: {e.Message}");
            return ExitFailed;
        }
        await app.WaitForShutdownAsync();
        return 0;
    }
}
