namespace Pinhole.EdgeHost.Supervision;

/// <summary>Where a supervised pipeline is in its life.</summary>
public enum PipelineState
{
    /// <summary>Its <c>RunAsync</c> is executing.</summary>
    Running,

    /// <summary>It failed (threw, returned or stalled) and waits out its backoff before the next start.</summary>
    Restarting,

    /// <summary>Being stopped (config change or shutdown).</summary>
    Stopping,

    /// <summary>Stopped for good.</summary>
    Stopped,
}

/// <summary>A point-in-time view of one pipeline, for /healthz, /metrics, the page and STATUS=.</summary>
public sealed record PipelineSnapshot(
    string Name,
    PipelineState State,
    bool Healthy,
    int Starts,
    int Restarts,
    DateTimeOffset? LastHeartbeat,
    string Status,
    string? LastError,
    DateTimeOffset? LastErrorAt,
    DateTimeOffset? NextStartAt)
{
    /// <summary>Lower-case state name as shown on the page and in metrics.</summary>
    public string StateName => State.ToString().ToLowerInvariant();

    /// <summary>Why it is unhealthy, or null.</summary>
    public string? UnhealthyReason => Healthy ? null : State switch
    {
        PipelineState.Restarting => $"restarting after: {LastError}",
        PipelineState.Running => LastError ?? "stalled",
        _ => StateName,
    };
}
