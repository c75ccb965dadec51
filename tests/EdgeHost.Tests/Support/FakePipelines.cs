using System.Collections.Concurrent;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;

namespace Pinhole.EdgeHost.Tests.Support;

/// <summary>Counts starts per pipeline name and keeps the timestamps of every start.</summary>
public sealed class StartLog
{
    private readonly ConcurrentDictionary<string, ConcurrentQueue<DateTimeOffset>> _starts = new();

    public void Started(string name) => _starts.GetOrAdd(name, _ => new()).Enqueue(DateTimeOffset.UtcNow);

    public int Count(string name) => _starts.TryGetValue(name, out var q) ? q.Count : 0;

    public IReadOnlyList<DateTimeOffset> Times(string name) => _starts.TryGetValue(name, out var q) ? [.. q] : [];
}

/// <summary>A well-behaved pipeline: heartbeats every 50 ms and shows its config in its status.</summary>
public sealed class HealthyFakePipeline(string name, string status, StartLog log) : IPipeline
{
    public string Name => name;

    public TimeSpan StallTimeout => TimeSpan.FromSeconds(5);

    public async Task RunAsync(IPipelineContext context, CancellationToken cancellationToken)
    {
        log.Started(name);
        context.SetStatus(status);
        while (true)
        {
            context.Heartbeat();
            await Task.Delay(50, cancellationToken);
        }
    }
}

/// <summary>A pipeline that runs <paramref name="body"/> each start (throw, return, hang…).</summary>
public sealed class ScriptedPipeline(string name, TimeSpan stallTimeout, StartLog log, Func<IPipelineContext, CancellationToken, Task> body) : IPipeline
{
    public string Name => name;

    public TimeSpan StallTimeout => stallTimeout;

    public Task RunAsync(IPipelineContext context, CancellationToken cancellationToken)
    {
        log.Started(name);
        return body(context, cancellationToken);
    }
}

/// <summary>
/// Stands in for the feature factories (uplink, cameras, sensors, MQTT): one fake pipeline per
/// configured item, fingerprinted on exactly the config that item uses, registered through the
/// same <see cref="IPipelineFactory"/> seam the real features use.
/// </summary>
public sealed class FakeFeatureFactory(StartLog log) : IPipelineFactory
{
    public IEnumerable<PipelineSpec> CreatePipelines(EdgeConfig config)
    {
        yield return PipelineSpec.For("uplink", new { config.DeviceId, config.Token, config.Relays },
            () => new HealthyFakePipeline("uplink", $"connected to {config.Relays[0]}", log));
        foreach (var camera in config.Cameras)
        {
            var c = camera;
            yield return PipelineSpec.For($"camera/{c.Name}", c,
                () => new HealthyFakePipeline($"camera/{c.Name}", $"playing {c.Source}", log));
        }
        foreach (var sensor in config.Sensors)
        {
            var s = sensor;
            yield return PipelineSpec.For($"sensor/{s.Name}", s,
                () => new HealthyFakePipeline($"sensor/{s.Name}", s.Kind == "file" ? $"every {s.Interval}" : $"line {s.Line}", log));
        }
        if (config.Mqtt is { } mqtt)
            yield return PipelineSpec.For("mqtt", mqtt, () => new HealthyFakePipeline("mqtt", $"connected to {mqtt.Url}", log));
    }
}
