namespace Pinhole.EdgeHost.Tests.Support;

/// <summary>
/// Sets NOTIFY_SOCKET in this test process until disposed. The package's <c>SystemdNotifier</c> reads
/// the socket from the environment (its constructor taking a path is internal), as it does in the
/// product, so a test of the real notify path sets it here. The process environment is shared:
/// tests that use this belong to <see cref="ProcessEnvironmentCollection"/>, which runs alone.
/// </summary>
public sealed class NotifySocketEnvironment : IDisposable
{
    private const string Name = "NOTIFY_SOCKET";
    private readonly string? _previous;

    public NotifySocketEnvironment(string notifySocket)
    {
        _previous = Environment.GetEnvironmentVariable(Name);
        Environment.SetEnvironmentVariable(Name, notifySocket);
    }

    public void Dispose() => Environment.SetEnvironmentVariable(Name, _previous);
}

/// <summary>Tests that change the process environment: run with no other test at the same time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection
{
    public const string Name = "process environment";
}
