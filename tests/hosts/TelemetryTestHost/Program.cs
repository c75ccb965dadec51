// Runs the telemetry pipelines of an edge.json and nothing else, each restarted after a failure.
// Prints "telemetry host running" once started; SIGTERM stops it cleanly, SIGKILL is the point.
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Telemetry;

if (args.Length != 2 || args[0] != "--config")
{
    Console.Error.WriteLine("usage: Pinhole.TelemetryTestHost --config edge.json");
    return 2;
}
var config = JsonSerializer.Deserialize<EdgeConfig>(File.ReadAllText(args[1]),
    new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;

using var loggerFactory = LoggerFactory.Create(b => b
    .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; })
    .SetMinimumLevel(LogLevel.Information));
var log = loggerFactory.CreateLogger("host");
using var stop = new CancellationTokenSource();
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

using var meter = new System.Diagnostics.Metrics.Meter("Pinhole.Edge");
await using var telemetry = TelemetryPipelines.Create(config, loggerFactory, meter);
var runs = telemetry.Pipelines.Select(p => RunForever(p, stop.Token)).ToList();
Console.WriteLine($"telemetry host running: {string.Join(", ", telemetry.Pipelines.Select(p => p.Name))}; {telemetry.Outbox.PendingCount} readings queued");
await Task.WhenAll(runs);
return 0;

async Task RunForever(IPipeline pipeline, CancellationToken ct)
{
    var context = new Context(pipeline.Name, log);
    while (!ct.IsCancellationRequested)
    {
        try
        {
            await pipeline.RunAsync(context, ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return;
        }
#pragma warning disable CA1031 // a test host: any failure is logged and the pipeline restarted
        catch (Exception e)
#pragma warning restore CA1031
        {
            log.LogError(e, "pipeline {Name} failed; restarting", pipeline.Name);
        }
        await Task.Delay(500, CancellationToken.None);
    }
}

internal sealed class Context(string name, ILogger log) : IPipelineContext
{
    private string _status = "";

    public void Heartbeat() { }

    public void SetStatus(string status)
    {
        if (status == _status || name.StartsWith("sensor/", StringComparison.Ordinal)) return;
        _status = status;
        log.LogInformation("{Name}: {Status}", name, status);
    }
}
