using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Supervision;

namespace Pinhole.EdgeHost.Systemd;

/// <summary>
/// The part of the <c>Type=notify</c> contract that Microsoft.Extensions.Hosting.Systemd leaves to the
/// app. The package's <see cref="SystemdLifetime"/> sends READY=1 once the host (supervisor and web
/// page) has started and STOPPING=1 on shutdown; this sends STATUS= with a one-line summary whenever
/// it changes, and WATCHDOG=1 every half WATCHDOG_USEC but only while the supervisor loop keeps
/// ticking. Registered only when there is a NOTIFY_SOCKET (see <see cref="EdgeApp"/>).
/// </summary>
public sealed partial class SystemdService : IHostedService, IDisposable
{
    private readonly SystemdEnvironment _environment;
    private readonly PipelineSupervisor _supervisor;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly TimeProvider _time;
    private readonly ILogger<SystemdService> _logger;
    private readonly ISystemdNotifier _notifier;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _statusLock = new();
    private Task? _watchdogLoop;
    private string? _lastStatus;
    private bool _watchdogSkipping;

    public SystemdService(SystemdEnvironment environment, PipelineSupervisor supervisor, IHostApplicationLifetime lifetime,
        TimeProvider time, ILogger<SystemdService> logger, ISystemdNotifier notifier)
    {
        _environment = environment;
        _supervisor = supervisor;
        _lifetime = lifetime;
        _time = time;
        _logger = logger;
        _notifier = notifier;
    }

    /// <summary>Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) recommends; null when the watchdog is off.</summary>
    public TimeSpan? WatchdogInterval => _environment.WatchdogTimeout / 2;

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // READY=1 (with this same summary, see SupervisorStatusNotifier) is the package lifetime's own
        // callback on ApplicationStarted; from then on STATUS= follows the supervisor.
        _lifetime.ApplicationStarted.Register(() =>
        {
            var status = PipelineSupervisor.Summarize(_supervisor.Snapshot());
            lock (_statusLock) _lastStatus = status;
            LogReady(_logger, status);
            _supervisor.Changed += SendStatus;
            if (WatchdogInterval is { } interval)
                _watchdogLoop = Task.Run(() => WatchdogLoopAsync(interval));
        });
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _supervisor.Changed -= SendStatus;
        await _stop.CancelAsync();
        if (_watchdogLoop is not null)
        {
            try { await _watchdogLoop.WaitAsync(cancellationToken); }
            catch (OperationCanceledException) { }
        }
    }

    private static readonly ServiceState Watchdog = new("WATCHDOG=1");

    private void SendStatus()
    {
        var status = PipelineSupervisor.Summarize(_supervisor.Snapshot());
        lock (_statusLock)
        {
            if (status == _lastStatus) return;
            _lastStatus = status;
        }
        _notifier.Notify(new ServiceState($"STATUS={status}"));
    }

    private async Task WatchdogLoopAsync(TimeSpan interval)
    {
        // The supervisor ticks every TickInterval; if it has not ticked for a whole watchdog interval
        // (plus one tick of slack for scheduling) it is blocked, and systemd should find out.
        var limit = interval + _supervisor.TickInterval;
        using var timer = new PeriodicTimer(interval, _time);
        try
        {
            // The first ping one interval after start: READY=1 comes from the package lifetime's own
            // ApplicationStarted callback, and the order of those callbacks is not ours to rely on.
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                var age = _supervisor.TimeSinceLastTick;
                if (age <= limit)
                {
                    _notifier.Notify(Watchdog);
                    if (_watchdogSkipping) LogWatchdogResumed(_logger);
                    _watchdogSkipping = false;
                }
                else if (!_watchdogSkipping)
                {
                    _watchdogSkipping = true;
                    LogWatchdogWithheld(_logger, age);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <inheritdoc />
    public void Dispose() => _stop.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "ready: {Status}")]
    private static partial void LogReady(ILogger logger, string status);

    [LoggerMessage(Level = LogLevel.Critical, Message = "supervisor loop has not ticked for {Age}; withholding WATCHDOG=1 so systemd restarts us")]
    private static partial void LogWatchdogWithheld(ILogger logger, TimeSpan age);

    [LoggerMessage(Level = LogLevel.Warning, Message = "supervisor loop is ticking again; WATCHDOG=1 resumed")]
    private static partial void LogWatchdogResumed(ILogger logger);
}
