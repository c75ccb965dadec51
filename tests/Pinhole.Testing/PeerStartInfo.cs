using System.Text.RegularExpressions;

namespace Pinhole.Testing;

/// <summary>
/// What to run as a peer and how to tell it is ready. Readiness conditions that are set must all
/// hold within <see cref="ReadyTimeout"/>: a stdout/stderr line matching <see cref="ReadyLine"/>,
/// a TCP connect to <see cref="ReadyTcpHost"/>:<see cref="ReadyTcpPort"/>, and <see cref="ReadyCheck"/>
/// returning true.
/// </summary>
/// <param name="FileName">The program: a name looked up like <see cref="Tools.Find"/> does, or a path.</param>
/// <param name="Arguments">The arguments, passed as they are (no shell quoting).</param>
public sealed record PeerStartInfo(string FileName, IReadOnlyList<string> Arguments)
{
    /// <summary>Creates a start description from a program and its arguments.</summary>
    public PeerStartInfo(string fileName, params string[] arguments) : this(fileName, (IReadOnlyList<string>)arguments)
    {
    }

    /// <summary>A short name for messages (defaults to the program's file name).</summary>
    public string? Name { get; init; }

    /// <summary>The working directory, or null for the test's own.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Environment variables to set (a null value removes the variable).</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }

    /// <summary>A regex a line of stdout or stderr must match before the peer counts as ready; the match is kept in <see cref="PeerProcess.ReadyMatch"/>.</summary>
    public Regex? ReadyLine { get; init; }

    /// <summary>A TCP port that must accept a connection before the peer counts as ready.</summary>
    public int? ReadyTcpPort { get; init; }

    /// <summary>The IP address for <see cref="ReadyTcpPort"/> (127.0.0.1 unless set).</summary>
    public string ReadyTcpHost { get; init; } = "127.0.0.1";

    /// <summary>
    /// Run the peer inside this network namespace (through <c>ip netns exec</c>); <see cref="ReadyTcpPort"/>
    /// is then probed from inside it too. Null (the default) runs it in the test's own namespace.
    /// </summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>A custom readiness probe, polled every 100 ms until it returns true.</summary>
    public Func<CancellationToken, Task<bool>>? ReadyCheck { get; init; }

    /// <summary>How long readiness may take before the start fails (30 s unless set; machines under test load are slow).</summary>
    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Called with every output line as "[name] line" (stderr: "[name] [err] line"), e.g.
    /// <c>OnOutputLine = output.WriteLine</c> with xunit's ITestOutputHelper to see a peer's log in
    /// the test's output. Called on a reader thread; keep it quick.
    /// </summary>
    public Action<string>? OnOutputLine { get; init; }

    /// <summary>How many of the latest output lines are kept for <see cref="PeerProcess.Output"/> and error messages.</summary>
    public int OutputLines { get; init; } = 400;

    /// <summary>
    /// Start the peer in a session and process group of its own (through setsid) so that stopping it
    /// reaches every descendant, even those its parent has forgotten. True unless set.
    /// </summary>
    public bool NewProcessGroup { get; init; } = true;
}
