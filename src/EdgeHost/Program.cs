using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using Microsoft.Extensions.Hosting;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Web;

namespace Pinhole.EdgeHost;

/// <summary>
/// <c>pinhole-edge --config edge.json</c> runs the edge host; <c>pinhole-edge check-config FILE</c>
/// validates a config; <c>pinhole-edge hash-password</c> turns a password on stdin into the stored
/// PBKDF2 form for <c>web.password</c>. Parsed with System.CommandLine, as the relay's.
/// </summary>
public static class Program
{
    /// <summary>Exit code for a config with problems.</summary>
    public const int ExitConfigInvalid = 1;

    /// <summary>Exit code for a command line that makes no sense.</summary>
    public const int ExitUsage = 2;

    /// <summary>Exit code when the host could not start or failed.</summary>
    public const int ExitFailed = 3;

    /// <summary>Printed after System.CommandLine's own help.</summary>
    internal const string Examples = """
        Examples:
          pinhole-edge --config FILE         run the edge host with FILE (edge.json)
          pinhole-edge check-config FILE     validate FILE; print every problem, one per line; exit 1 on any
          pinhole-edge hash-password         read a password on stdin, print its PBKDF2 hash for web.password

        Under systemd (Type=notify) it sends READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 on $NOTIFY_SOCKET.
        """;

    /// <summary>Entry point.</summary>
    public static Task<int> Main(string[] args) =>
        RunAsync(args, Console.Out, Console.Error, configure: null);

    /// <summary>The whole command line, with output streams and extra service registrations injectable (tests, benchmarks).</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, Action<EdgeHostOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(args);
        try
        {
            // "pinhole-edge help" works too, as it always has.
            if (args is ["help"]) args = ["--help"];
            var parse = CreateCommandLine(stdout, stderr, configure).Parse(args);
            if (parse.Errors.Count > 0)
            {
                // One line and the usage exit code; System.CommandLine's default is every error plus the whole help, exit 1.
                await stderr.WriteLineAsync($"pinhole-edge: {string.Join("; ", parse.Errors.Select(e => e.Message.TrimEnd('.')).Distinct())}; see pinhole-edge --help");
                return ExitUsage;
            }
            return await parse.InvokeAsync(new InvocationConfiguration
            {
                Output = stdout,
                Error = stderr,
                // Failures end in the one line below, never System.CommandLine's stack trace.
                EnableDefaultExceptionHandler = false,
                // SIGTERM and Ctrl+C belong to the host (a clean stop with STOPPING=1 and exit 0), not to the parser.
                ProcessTerminationTimeout = null,
            });
        }
        catch (Exception e)
        {
            // Last resort: one line, no stack trace. Anything that reaches here is a bug worth its message.
            await stderr.WriteLineAsync($"pinhole-edge: fatal: {e.GetType().Name}: {e.Message}");
            return ExitFailed;
        }
    }

    private static RootCommand CreateCommandLine(TextWriter stdout, TextWriter stderr, Action<EdgeHostOptions>? configure)
    {
        var configOption = new Option<string>("--config", "-c") { Description = "edge.json to run with", HelpName = "FILE" };

        var root = new RootCommand("pinhole-edge: the Pinhole edge host (cameras and sensors out through NAT to a relay).");
        root.Options.Add(configOption);
        root.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(configOption) is not { } file)
            {
                await stderr.WriteLineAsync("pinhole-edge: missing --config FILE (see pinhole-edge --help)");
                return ExitUsage;
            }
            return await RunHostAsync(file, stderr, configure);
        });

        var checkFile = new Argument<string>("FILE") { Description = "edge.json to validate" };
        var check = new Command("check-config", "Validate an edge.json and print every problem, one per line; exit 1 on any.") { checkFile };
        check.SetAction((parse, ct) => CheckConfigAsync(parse.GetValue(checkFile)!, stdout));
        root.Subcommands.Add(check);

        var hashPassword = new Command("hash-password", "Read a password on stdin (one line) and print its PBKDF2 hash for web.password.");
        hashPassword.SetAction((parse, ct) => HashPasswordAsync(stdout, stderr));
        root.Subcommands.Add(hashPassword);

        foreach (var option in root.Options)
        {
            if (option is VersionOption version) version.Action = new PrintVersion(stdout);
            else if (option is HelpOption { Action: HelpAction help } helpOption) helpOption.Action = new HelpWithExamples(help, stdout);
        }
        return root;
    }

    /// <summary><c>--version</c>: the release version (the one updates compare), not the assembly's.</summary>
    private sealed class PrintVersion(TextWriter stdout) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            stdout.WriteLine($"pinhole-edge {Updates.ReleaseInfo.Version}");
            return 0;
        }
    }

    /// <summary><c>--help</c>: System.CommandLine's help, then <see cref="Examples"/>.</summary>
    private sealed class HelpWithExamples(HelpAction help, TextWriter stdout) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            var exit = help.Invoke(parseResult);
            stdout.WriteLine(Examples);
            return exit;
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
