using System.Diagnostics;
using System.Text;

namespace Pinhole.Testing;

/// <summary>The outcome of a short command run to completion.</summary>
/// <param name="FileName">The program that ran.</param>
/// <param name="Arguments">Its arguments.</param>
/// <param name="ExitCode">The exit code (-1 when it was killed on timeout).</param>
/// <param name="StandardOutput">Everything it printed on stdout.</param>
/// <param name="StandardError">Everything it printed on stderr.</param>
/// <param name="TimedOut">True when it was killed because it ran past its timeout.</param>
public sealed record CommandResult(string FileName, IReadOnlyList<string> Arguments, int ExitCode, string StandardOutput, string StandardError, bool TimedOut)
{
    /// <summary>True when it exited with code 0 in time.</summary>
    public bool Succeeded => ExitCode == 0 && !TimedOut;

    /// <summary>The command line and its output, for assertion messages.</summary>
    public override string ToString() =>
        $"`{FileName} {string.Join(' ', Arguments)}` -> {(TimedOut ? "timed out" : $"exit {ExitCode}")}\nstdout:\n{StandardOutput}\nstderr:\n{StandardError}";
}

/// <summary>Runs short commands (ip, iptables, mosquitto_pub, ffprobe …) to completion with a timeout.</summary>
public static class Command
{
    /// <summary>Runs <paramref name="fileName"/> and returns what happened; kills its tree when it runs past <paramref name="timeout"/> (30 s unless given). Never throws for a non-zero exit.</summary>
    public static async Task<CommandResult> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var args = arguments.ToArray();
        var program = Tools.Require(fileName);
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {program}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        var timedOut = false;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout ?? TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            timedOut = !cancellationToken.IsCancellationRequested;
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
        }
        string output, error;
        try
        {
            // A grandchild that kept the pipes open must not hang the test.
            output = await stdout.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
            error = await stderr.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        }
        catch (TimeoutException)
        {
            output = stdout.IsCompletedSuccessfully ? stdout.Result : "";
            error = stderr.IsCompletedSuccessfully ? stderr.Result : "(stderr still open)";
        }
        return new CommandResult(fileName, args, timedOut ? -1 : process.ExitCode, output, error, timedOut);
    }

    /// <summary>Runs a command inside network namespace <paramref name="networkNamespace"/> (through <c>ip netns exec</c>; null runs it here).</summary>
    public static Task<CommandResult> RunInAsync(string? networkNamespace, string fileName, IEnumerable<string> arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var (program, args) = NetworkNamespace.Wrap(networkNamespace, fileName, arguments);
        return RunAsync(program, args, timeout, cancellationToken);
    }

    /// <summary>Runs a command with arguments given inline.</summary>
    public static Task<CommandResult> RunAsync(string fileName, params string[] arguments) => RunAsync(fileName, arguments, null, CancellationToken.None);

    /// <summary>Runs a command and throws <see cref="InvalidOperationException"/> with its output unless it exits with 0.</summary>
    public static async Task<CommandResult> RunCheckedAsync(string fileName, IEnumerable<string> arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var result = await RunAsync(fileName, arguments, timeout, cancellationToken);
        return result.Succeeded ? result : throw new InvalidOperationException("command failed: " + result);
    }

    /// <summary>Runs a command with arguments given inline and throws unless it exits with 0.</summary>
    public static Task<CommandResult> RunCheckedAsync(string fileName, params string[] arguments) => RunCheckedAsync(fileName, arguments, null, CancellationToken.None);
}
