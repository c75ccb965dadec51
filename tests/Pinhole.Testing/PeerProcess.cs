using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace Pinhole.Testing;

/// <summary>
/// A program a test runs as a peer (a broker, a camera, an edge host in a namespace). Captures the
/// latest stdout/stderr lines for diagnosis, waits for readiness, and kills its whole process tree
/// on <see cref="Kill"/>, Dispose, and when the test process itself exits.
/// </summary>
public sealed class PeerProcess : IAsyncDisposable, IDisposable
{
    private static readonly string? Setsid = Tools.Find("setsid");

    private readonly Process _process;
    private readonly PeerStartInfo _info;
    private readonly bool _ownGroup;
    private readonly object _gate = new();
    private readonly Queue<(bool IsError, string Text)> _tail = new();
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Waiter)> _lineWaiters = [];
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _stdoutPump;
    private readonly Task _stderrPump;
    private long _linesSeen;
    private int _disposed;

    private PeerProcess(PeerStartInfo info)
    {
        _info = info;
        Name = info.Name ?? Path.GetFileName(info.FileName) + (info.NetworkNamespace is null ? "" : "@" + info.NetworkNamespace);
        var program = Tools.Find(info.FileName)
            ?? throw new PeerProcessException($"{Name}: program '{info.FileName}' not found ({Tools.SkipReason(info.FileName)})");
        _ownGroup = info.NewProcessGroup && Setsid is not null;
        if (info.ReadyTcpPort is not null && !IPAddress.TryParse(info.ReadyTcpHost, out _))
            throw new ArgumentException($"ReadyTcpHost must be an IP address, not '{info.ReadyTcpHost}'", nameof(info));
        var (fileName, arguments) = NetworkNamespace.Wrap(info.NetworkNamespace, program, info.Arguments);
        fileName = Tools.Require(fileName);

        var psi = new ProcessStartInfo
        {
            FileName = _ownGroup ? Setsid! : fileName,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        // setsid(1) execs the program in place (the child is not a group leader, so it need not
        // fork): the pid we get is the program's, and it leads a new process group. `ip netns exec`
        // execs in place too.
        if (_ownGroup)
            psi.ArgumentList.Add(fileName);
        foreach (var a in arguments)
            psi.ArgumentList.Add(a);
        if (info.WorkingDirectory is not null)
            psi.WorkingDirectory = info.WorkingDirectory;
        if (info.Environment is not null)
        {
            foreach (var (key, value) in info.Environment)
            {
                if (value is null)
                    psi.Environment.Remove(key);
                else
                    psi.Environment[key] = value;
            }
        }

        _process = new Process { StartInfo = psi };
        try
        {
            _process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new PeerProcessException($"{Name}: cannot start '{program}': {e.Message}", e);
        }
        Id = _process.Id;
        // A test run that ends early (a crash, a timeout, Ctrl-C) must not leave brokers and cameras behind.
        ExitCleanup.Register(this, Kill);
        if (_ownGroup)
            ExitCleanup.RecordProcessGroup(Id);
        _stdoutPump = PumpAsync(_process.StandardOutput, isError: false);
        _stderrPump = PumpAsync(_process.StandardError, isError: true);
        _ = WatchExitAsync();
    }

    /// <summary>The name used in messages.</summary>
    public string Name { get; }

    /// <summary>The process id (also the process group id when started in a group of its own).</summary>
    public int Id { get; }

    /// <summary>True once the process has exited.</summary>
    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>The exit code once the process has exited, otherwise null.</summary>
    public int? ExitCode => _exited.Task.IsCompletedSuccessfully ? _exited.Task.Result : null;

    /// <summary>Completes with the exit code when the process exits (after its output has been read).</summary>
    public Task<int> Exited => _exited.Task;

    /// <summary>The match of <see cref="PeerStartInfo.ReadyLine"/> once the peer was seen ready.</summary>
    public Match? ReadyMatch { get; private set; }

    /// <summary>The standard input of the peer, for peers that read commands.</summary>
    public StreamWriter StandardInput => _process.StandardInput;

    /// <summary>The latest output lines (bounded by <see cref="PeerStartInfo.OutputLines"/>); stderr lines start with "[err] ".</summary>
    public string Output
    {
        get
        {
            lock (_gate)
                return string.Join('\n', _tail.Select(l => l.IsError ? "[err] " + l.Text : l.Text));
        }
    }

    /// <summary>Starts a peer without waiting for readiness.</summary>
    public static PeerProcess Start(PeerStartInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        return new PeerProcess(info);
    }

    /// <summary>Starts a peer and waits until it is ready; kills it and throws <see cref="PeerProcessException"/> (with its output) when it is not.</summary>
    public static async Task<PeerProcess> StartAsync(PeerStartInfo info, CancellationToken cancellationToken = default)
    {
        var peer = Start(info);
        try
        {
            await peer.WaitUntilReadyAsync(cancellationToken);
            return peer;
        }
        catch
        {
            await peer.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts <paramref name="fileName"/> with <paramref name="arguments"/>, ready as soon as it runs.</summary>
    public static Task<PeerProcess> StartAsync(string fileName, params string[] arguments) =>
        StartAsync(new PeerStartInfo(fileName, arguments));

    /// <summary>
    /// Kills the peers of earlier test processes that died without cleaning up (SIGKILL, OOM).
    /// Runs by itself when a test process starts its first peer; returns how many process groups it killed.
    /// </summary>
    public static int KillOrphansOfDeadTestRuns() => ExitCleanup.SweepOrphanedPeers();

    /// <summary>Waits for every readiness condition of the start info; throws <see cref="PeerProcessException"/> with the output when one fails or times out.</summary>
    public async Task WaitUntilReadyAsync(CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_info.ReadyTimeout);
        var token = timeout.Token;
        try
        {
            if (_info.ReadyLine is not null)
                ReadyMatch = await WaitForLineCoreAsync(_info.ReadyLine, token);
            if (_info.ReadyTcpPort is int port)
                await PollAsync(_ => NetworkNamespace.CanConnectAsync(_info.NetworkNamespace, IPAddress.Parse(_info.ReadyTcpHost), port), token);
            if (_info.ReadyCheck is not null)
                await PollAsync(_info.ReadyCheck, token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new PeerProcessException(Describe($"not ready within {_info.ReadyTimeout.TotalSeconds:0.#} s ({DescribeReadiness()})"));
        }
    }

    /// <summary>Waits for an output line (already seen and still kept, or still to come) matching <paramref name="pattern"/>.</summary>
    public async Task<Match> WaitForLineAsync(Regex pattern, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            return await WaitForLineCoreAsync(pattern, cts.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new PeerProcessException(Describe($"no output line matching /{pattern}/ within {timeout.TotalSeconds:0.#} s"));
        }
    }

    /// <summary>True when a kept output line matches <paramref name="pattern"/>.</summary>
    public bool HasLine(Regex pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        lock (_gate)
            return _tail.Any(l => pattern.IsMatch(l.Text));
    }

    /// <summary>Waits for the process to exit; throws <see cref="PeerProcessException"/> when it is still running after <paramref name="timeout"/>.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            return await _exited.Task.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new PeerProcessException(Describe($"still running after {timeout.TotalSeconds:0.#} s"));
        }
    }

    /// <summary>
    /// Asks the peer to stop (SIGTERM to its process group) and waits up to <paramref name="grace"/>
    /// (5 s unless given) before killing the tree. Returns the exit code.
    /// </summary>
    public async Task<int> StopAsync(TimeSpan? grace = null)
    {
        if (!HasExited)
        {
            if (!(_ownGroup && Posix.KillProcessGroup(Id, Posix.SIGTERM)))
                Posix.Kill(Id, Posix.SIGTERM);
            try
            {
                await _exited.Task.WaitAsync(grace ?? TimeSpan.FromSeconds(5));
            }
            catch (TimeoutException)
            {
            }
        }
        Kill();
        return await _exited.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    /// <summary>Kills the process and all its descendants at once (SIGKILL). Safe to call more than once.</summary>
    public void Kill()
    {
        // Walk the tree while the parent still exists, then sweep the process group for descendants
        // that were re-parented (a child whose parent died is no longer found by the walk).
        try
        {
            if (!_process.HasExited)
                _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
        if (_ownGroup)
        {
            Posix.KillProcessGroup(Id, Posix.SIGKILL);
            ExitCleanup.ForgetProcessGroup(Id);
        }
    }

    /// <summary>A one-paragraph description with the latest output, for assertion and exception messages.</summary>
    public string Describe(string what)
    {
        var state = HasExited ? $"exited with code {ExitCode}" : "running";
        return string.Create(CultureInfo.InvariantCulture,
            $"{Name} (pid {Id}, {state}): {what}\n--- last output of {Name} ({Interlocked.Read(ref _linesSeen)} lines seen) ---\n{Output}\n--- end of output ---");
    }

    /// <summary>Kills the process tree and releases the process.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Kill();
        try
        {
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }
        ExitCleanup.Unregister(this);
        _process.Dispose();
    }

    /// <summary>Kills the process tree and waits (up to 5 s) for it to be gone.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Kill();
        try
        {
            await _exited.Task.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
        }
        ExitCleanup.Unregister(this);
        _process.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} (pid {Id})";

    private async Task<Match> WaitForLineCoreAsync(Regex pattern, CancellationToken token)
    {
        TaskCompletionSource<Match> waiter;
        lock (_gate)
        {
            foreach (var (_, line) in _tail)
            {
                var m = pattern.Match(line);
                if (m.Success)
                    return m;
            }
            if (HasExited)
                throw new PeerProcessException(Describe($"exited before printing a line matching /{pattern}/"));
            waiter = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
            _lineWaiters.Add((pattern, waiter));
        }
        try
        {
            return await waiter.Task.WaitAsync(token);
        }
        finally
        {
            lock (_gate)
                _lineWaiters.RemoveAll(w => w.Waiter == waiter);
        }
    }

    private async Task PollAsync(Func<CancellationToken, Task<bool>> probe, CancellationToken token)
    {
        while (true)
        {
            if (HasExited)
                throw new PeerProcessException(Describe($"exited before it was ready ({DescribeReadiness()})"));
            if (await probe(token))
                return;
            await Task.Delay(100, token);
        }
    }

    private string DescribeReadiness()
    {
        var parts = new List<string>();
        if (_info.ReadyLine is not null)
            parts.Add($"line /{_info.ReadyLine}/");
        if (_info.ReadyTcpPort is int port)
            parts.Add($"TCP {_info.ReadyTcpHost}:{port}{(_info.NetworkNamespace is null ? "" : " in " + _info.NetworkNamespace)}");
        if (_info.ReadyCheck is not null)
            parts.Add("custom check");
        return parts.Count == 0 ? "no condition" : "waiting for " + string.Join(" and ", parts);
    }

    private async Task PumpAsync(StreamReader reader, bool isError)
    {
        try
        {
            while (await reader.ReadLineAsync() is { } line)
                OnLine(isError, line);
        }
        catch (IOException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void OnLine(bool isError, string line)
    {
        const int MaxLineLength = 4000;
        if (line.Length > MaxLineLength)
            line = string.Concat(line.AsSpan(0, MaxLineLength), "…");
        Interlocked.Increment(ref _linesSeen);
        lock (_gate)
        {
            _tail.Enqueue((isError, line));
            while (_tail.Count > Math.Max(1, _info.OutputLines))
                _tail.Dequeue();
            for (var i = _lineWaiters.Count - 1; i >= 0; i--)
            {
                // Matched without the "[err] " marker, so ^anchored patterns work for stderr too.
                var m = _lineWaiters[i].Pattern.Match(line);
                if (m.Success)
                {
                    _lineWaiters[i].Waiter.TrySetResult(m);
                    _lineWaiters.RemoveAt(i);
                }
            }
        }
        if (_info.OnOutputLine is { } callback)
        {
            try
            {
                callback($"[{Name}]{(isError ? " [err]" : "")} {line}");
            }
            catch (InvalidOperationException)
            {
                // xunit's ITestOutputHelper throws once its test has finished; the peer may outlive it.
            }
        }
    }

    private async Task WatchExitAsync()
    {
        int code;
        try
        {
            await _process.WaitForExitAsync(CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
        }
        // Descendants may hold the pipes open; give the pumps a moment, not forever.
        try
        {
            await Task.WhenAll(_stdoutPump, _stderrPump).WaitAsync(TimeSpan.FromMilliseconds(500));
        }
        catch (TimeoutException)
        {
        }
        try
        {
            code = _process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            code = -1;
        }
        _exited.TrySetResult(code);
        lock (_gate)
        {
            foreach (var (pattern, waiter) in _lineWaiters)
                waiter.TrySetException(new PeerProcessException(Describe($"exited before printing a line matching /{pattern}/")));
            _lineWaiters.Clear();
        }
    }
}
