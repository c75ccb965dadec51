using Microsoft.Extensions.Logging;
using System.Device.Gpio;
using Pinhole.Drivers.Gpio;
using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Telemetry.Outbox;
using System.Diagnostics.Metrics;

namespace Pinhole.EdgeHost.Telemetry;

// Reports a sensor's health once per change of state (ok -> fault, fault -> other fault,
// fault -> ok), not once per poll: a sensor unplugged for a day is one warning, not 17280.
internal sealed partial class SensorHealth(string sensor, ILogger logger, Meter meter)
{
    private readonly Counter<long> _faults = meter.CreateCounter<long>("pinhole_sensor_faults_total", description: "Times a sensor went from working (or another fault) into a fault.");
    private readonly Gauge<int> _ok = meter.CreateGauge<int>("pinhole_sensor_ok", description: "1 while the sensor reads, 0 while it is in a fault.");
    private readonly KeyValuePair<string, object?> _sensor = new("sensor", sensor);
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
        _ok.Record(1, _sensor);
    }

    public void Fault(SensorFault fault)
    {
        CurrentFault = fault;
        _ok.Record(0, _sensor);
        if (_fault == fault.Kind) return;
        _fault = fault.Kind;
        _faults.Add(1, _sensor);
        LogFault(logger, sensor, fault.ToString(), _everRead ? "stopped working" : "cannot be read");
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sensor {Sensor} {What}: {Fault}")]
    private static partial void LogFault(ILogger logger, string sensor, string fault, string what);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sensor {Sensor} reads again (was {Fault})")]
    private static partial void LogRecovered(ILogger logger, string sensor, string fault);
}

// pinhole_sensor_readings_total{sensor}: one instrument per meter (Meter returns the same one for
// the same name), so a restarted pipeline keeps counting where the last one stopped.
internal sealed class SensorReadingsCounter(Meter meter, string sensor)
{
    private readonly Counter<long> _counter = meter.CreateCounter<long>("pinhole_sensor_readings_total", description: "Readings stored in the outbox.");
    private readonly KeyValuePair<string, object?> _sensor = new("sensor", sensor);

    public void Add() => _counter.Add(1, _sensor);
}

/// <summary>Polls a file sensor every interval and appends each reading to the outbox (waiting until it is on disk).</summary>
internal sealed class FileSensorPipeline(
    string sensorName, FileSensor sensor, TimeSpan interval, TelemetryOutbox outbox, TimeProvider time, ILogger logger, Meter meter) : IPipeline
{
    private readonly SensorHealth _health = new(sensorName, logger, meter);
    private readonly SensorReadingsCounter _readings = new(meter, sensorName);

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
                _readings.Add();
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
/// Watches a GPIO input line through System.Device.Gpio's <see cref="GpioController"/>: its level
/// when opened and then every (debounced) edge become readings of 1 or 0. A missing chip, a busy
/// line or no libgpiod is a sensor fault, retried every few seconds.
/// </summary>
internal sealed class GpioSensorPipeline(
    string sensorName, Func<GpioController> openChip, int line, PinEventTypes edges, TimeSpan debounce, string unit,
    TelemetryOutbox outbox, TimeProvider time, ILogger logger, Meter meter) : IPipeline
{
    private static readonly TimeSpan Retry = TimeSpan.FromSeconds(5);
    private readonly SensorHealth _health = new(sensorName, logger, meter);
    private readonly SensorReadingsCounter _readings = new(meter, sensorName);

    public string Name => $"sensor/{sensorName}";

    // Edges come when they come; a closed door may not move for a week.
    public TimeSpan StallTimeout => Timeout.InfiniteTimeSpan;

    public SensorHealth Health => _health;

    public async Task RunAsync(IPipelineContext context, CancellationToken cancellationToken)
    {
        while (true)
        {
            GpioController? controller = null;
            GpioInputWatcher? watcher = null;
            try
            {
                try
                {
                    controller = openChip();
                    watcher = new GpioInputWatcher(controller, line, edges, debounce, time);
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
                await StoreAsync(watcher.InitialLevel, context, cancellationToken).ConfigureAwait(false);
                await foreach (var level in watcher.Levels.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                    await StoreAsync(level, context, cancellationToken).ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
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
                watcher?.Dispose();
                controller?.Dispose();
            }
        }
    }

    private async Task StoreAsync(PinValue level, IPipelineContext context, CancellationToken ct)
    {
        var value = level == PinValue.High ? 1 : 0;
        await outbox.AppendAsync(sensorName, new SensorReading(value, unit, time.GetUtcNow()), ct).ConfigureAwait(false);
        _readings.Add();
        context.SetStatus(value == 1 ? "high" : "low");
        context.Heartbeat();
    }
}

/// <summary>
/// Polls a sensor chip every interval; each quantity of a read goes to the outbox as its own
/// reading (<c>NAME_QUANTITY</c>, its own topic and unit). A chip that does not answer is a
/// sensor fault, reported once per change of state; the next poll opens it again.
/// </summary>
internal sealed class ChipSensorPipeline : IPipeline
{
    private readonly string _sensorName;
    private readonly ChipSensor _sensor;
    private readonly IReadOnlyList<SensorReadingInfo> _readings;
    private readonly TimeSpan _interval;
    private readonly TelemetryOutbox _outbox;
    private readonly TimeProvider _time;
    private readonly SensorHealth _health;
    private readonly SensorReadingsCounter _stored;

    public ChipSensorPipeline(string sensorName, ChipSensor sensor, IReadOnlyList<SensorReadingInfo> readings, TimeSpan interval,
        TelemetryOutbox outbox, TimeProvider time, ILogger logger, Meter meter)
    {
        // The config's catalog names the topics, the driver returns the values: they must agree.
        if (sensor.Quantities.Count != readings.Count || sensor.Quantities.Where((q, i) => readings[i].Name != $"{sensorName}_{q.Name}" || readings[i].Unit != q.Unit).Any())
            throw new InvalidOperationException($"sensor {sensorName}: driver quantities ({string.Join(", ", sensor.Quantities.Select(q => q.Name))}) do not match its readings");
        _sensorName = sensorName;
        _sensor = sensor;
        _readings = readings;
        _interval = interval;
        _outbox = outbox;
        _time = time;
        _health = new SensorHealth(sensorName, logger, meter);
        _stored = new SensorReadingsCounter(meter, sensorName);
    }

    public string Name => $"sensor/{_sensorName}";

    // A slow chip takes tens of ms per read; a poll that does not come round in a few intervals hangs.
    public TimeSpan StallTimeout => TimeSpan.FromTicks(Math.Max(_interval.Ticks * 5, TimeSpan.FromSeconds(30).Ticks));

    public SensorHealth Health => _health;

    public async Task RunAsync(IPipelineContext context, CancellationToken cancellationToken)
    {
        var values = new double[_readings.Count];
        try
        {
            using var timer = new PeriodicTimer(_interval, _time);
            do
            {
                // Bindings block (I2C transfers, the chips' conversion time): off the supervisor's threads.
                var (ok, fault) = await Task.Run(() => (_sensor.TryRead(values, out var f), f), cancellationToken).ConfigureAwait(false);
                if (ok)
                {
                    _health.Ok();
                    var now = _time.GetUtcNow();
                    for (var i = 0; i < values.Length; i++)
                    {
                        await _outbox.AppendAsync(_readings[i].Name, new SensorReading(values[i], _readings[i].Unit, now), cancellationToken).ConfigureAwait(false);
                        _stored.Add();
                    }
                    context.SetStatus(string.Join(", ", values.Select((v, i) => $"{TelemetryPayloads.FormatNumber(Math.Round(v, 2))} {_readings[i].Unit}")));
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
        finally
        {
            _sensor.Dispose();
        }
    }
}
