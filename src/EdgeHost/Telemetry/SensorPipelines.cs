using Microsoft.Extensions.Logging;
using Pinhole.Drivers.Gpio;
using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Telemetry.Outbox;
using Pinhole.Transport.Metrics;

namespace Pinhole.EdgeHost.Telemetry;

// Reports a sensor's health once per change of state (ok -> fault, fault -> other fault,
// fault -> ok), not once per poll: a sensor unplugged for a day is one warning, not 17280.
internal sealed partial class SensorHealth(string sensor, ILogger logger, MetricsRegistry metrics)
{
    private readonly Counter _faults = metrics.Counter("pinhole_sensor_faults_total", "Times a sensor went from working (or another fault) into a fault.", ("sensor", sensor));
    private readonly Gauge _ok = metrics.Gauge("pinhole_sensor_ok", "1 while the sensor reads, 0 while it is in a fault.", ("sensor", sensor));
    private SensorFaultKind? _fault;
    private bool _everRead;

    public SensorFault? CurrentFault { get; private set; }

    public void Ok()
    {
        if (_fault is not null)
            LogRecovered(logger, sensor, CurrentFault!.ToString());
        _fault = null;
        CurrentFault = null;
        _everRead = true;
        _ok.Set(1);
    }

    public void Fault(SensorFault fault)
    {
        CurrentFault = fault;
        _ok.Set(0);
        if (_fault == fault.Kind) return;
        _fault = fault.Kind;
        _faults.Inc();
        LogFault(logger, sensor, fault.ToString(), _everRead ? "stopped working" : "cannot be read");
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sensor {Sensor} {What}: {Fault}")]
    private static partial void LogFault(ILogger logger, string sensor, string fault, string what);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sensor {Sensor} reads again (was {Fault})")]
    private static partial void LogRecovered(ILogger logger, string sensor, string fault);
}

/// <summary>Polls a file sensor every interval and appends each reading to the outbox (waiting until it is on disk).</summary>
internal sealed class FileSensorPipeline(
    string sensorName, FileSensor sensor, TimeSpan interval, TelemetryOutbox outbox, TimeProvider time, ILogger logger, MetricsRegistry metrics) : IPipeline
{
    private readonly SensorHealth _health = new(sensorName, logger, metrics);
    private readonly Counter _readings = metrics.Counter("pinhole_sensor_readings_total", "Readings stored in the outbox.", ("sensor", sensorName));

    public string Name => $"sensor/{sensorName}";

    // A poll that does not come round in a few intervals means the loop (or the disk) hangs.
    public TimeSpan StallTimeout => TimeSpan.FromTicks(Math.Max(interval.Ticks * 5, TimeSpan.FromSeconds(30).Ticks));

    public SensorHealth Health => _health;

    public async Task RunAsync(IPipelineContext context, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval, time);
        do
        {
            if (sensor.TryRead(out var reading, out var fault))
            {
                _health.Ok();
                await outbox.AppendAsync(sensorName, reading, cancellationToken).ConfigureAwait(false);
                _readings.Inc();
                context.SetStatus($"{TelemetryPayloads.FormatNumber(reading.Value)} {reading.Unit}".TrimEnd());
            }
            else
            {
                _health.Fault(fault!);
                context.SetStatus($"fault: {fault}");
            }
            context.Heartbeat();
        }
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false));
    }
}

/// <summary>
/// Watches a GPIO input line: its level when opened and then every (debounced) edge become
/// readings of 1 or 0. A missing or busy chip is a sensor fault, retried every few seconds.
/// </summary>
internal sealed class GpioSensorPipeline(
    string sensorName, Func<GpioDriver> openChip, int line, GpioLineOptions options, string unit,
    TelemetryOutbox outbox, TimeProvider time, ILogger logger, MetricsRegistry metrics) : IPipeline
{
    private static readonly TimeSpan Retry = TimeSpan.FromSeconds(5);
    private readonly SensorHealth _health = new(sensorName, logger, metrics);
    private readonly Counter _readings = metrics.Counter("pinhole_sensor_readings_total", "Readings stored in the outbox.", ("sensor", sensorName));

    public string Name => $"sensor/{sensorName}";

    // Edges come when they come; a closed door may not move for a week.
    public TimeSpan StallTimeout => Timeout.InfiniteTimeSpan;

    public SensorHealth Health => _health;

    public async Task RunAsync(IPipelineContext context, CancellationToken cancellationToken)
    {
        while (true)
        {
            GpioDriver? driver = null;
            try
            {
                try
                {
                    driver = openChip();
                    driver.OpenLine(line, options);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException)
                {
                    _health.Fault(new SensorFault(e is UnauthorizedAccessException ? SensorFaultKind.Unreadable : SensorFaultKind.Missing, e.Message));
                    context.SetStatus($"fault: {e.Message}");
                    context.Heartbeat();
                    await Task.Delay(Retry, time, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                _health.Ok();
                var level = driver.Read(line);
                await StoreAsync(level, context, cancellationToken).ConfigureAwait(false);
                await foreach (var edge in driver.ReadEdgesAsync(line, cancellationToken).ConfigureAwait(false))
                    await StoreAsync(edge.Value, context, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                // The chip went away under us (USB GPIO expander unplugged): a fault, then retry.
                _health.Fault(new SensorFault(SensorFaultKind.Unreadable, e.Message));
                context.SetStatus($"fault: {e.Message}");
                await Task.Delay(Retry, time, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                driver?.Dispose();
            }
        }
    }

    private async Task StoreAsync(PinValue level, IPipelineContext context, CancellationToken ct)
    {
        var value = level == PinValue.High ? 1 : 0;
        await outbox.AppendAsync(sensorName, new SensorReading(value, unit, time.GetUtcNow()), ct).ConfigureAwait(false);
        _readings.Inc();
        context.SetStatus(value == 1 ? "high" : "low");
        context.Heartbeat();
    }
}
