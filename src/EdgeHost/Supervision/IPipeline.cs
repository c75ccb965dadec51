namespace Pinhole.EdgeHost.Supervision;

/// <summary>
/// A long-running unit of work on the device (a camera, the uplink, the MQTT session, a sensor
/// poller). The supervisor runs it, restarts it with capped backoff when it throws or stalls, and
/// reports its state. A pipeline proves it is alive by calling <see cref="IPipelineContext.Heartbeat"/>
/// whenever it makes progress (a frame, a reading, a ping answered).
/// </summary>
public interface IPipeline
{
    /// <summary>Stable name, unique on the device, e.g. <c>camera/door</c>, <c>uplink</c>, <c>mqtt</c>, <c>sensor/cpu_temp</c>.</summary>
    string Name { get; }

    /// <summary>How long without a heartbeat means stalled (the supervisor then restarts it). <see cref="Timeout.InfiniteTimeSpan"/> disables the check.</summary>
    TimeSpan StallTimeout { get; }

    /// <summary>Runs until cancelled or failed. Returning normally before cancellation counts as a failure and is restarted.</summary>
    Task RunAsync(IPipelineContext context, CancellationToken cancellationToken);
}

/// <summary>What a running pipeline can tell its supervisor.</summary>
public interface IPipelineContext
{
    /// <summary>Progress was made just now.</summary>
    void Heartbeat();

    /// <summary>A one-line human-readable state, e.g. <c>playing 1920x1080 H264</c> or <c>connecting to wss://…</c>.</summary>
    void SetStatus(string status);
}
