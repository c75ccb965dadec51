using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Supervision;

namespace Pinhole.EdgeHost.Systemd;

/// <summary>
/// The systemd contract of <c>Type=notify</c>: READY=1 once the host (supervisor and web page) has
/// started, STATUS= with a one-line summary whenever it changes, WATCHDOG=1 every half
/// WATCHDOG_USEC but only while the supervisor loop keeps ticking, STOPPING=1 on shutdown.
/// </summary>
public sealed partial class SystemdService : IHostedService, IDisposable
{
    private readonly SystemdEnvironment _environment;
    private readonly PipelineSupervisor _supervisor;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly TimeProvider _time;
    private readonly ILogger<SystemdService> _logger;
    private readonly SystemdNotifier? _notifier;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _statusLock = new();
    private Task? _watchdogLoop;
    private string? _lastStatus;
    private bool _watchdogSkipping;

    public SystemdService(SystemdEnvironment environment, PipelineSupervisor supervisor, IHostApplicationLifetime lifetime,
        TimeProvider time, ILogger<SystemdService> logger)
    {
        _environment = environment;
        _supervisor = supervisor;
        _lifetime = lifetime;
        _time = time;
        _logger = logger;
        if (environment.NotifySocket is { } socket)
            _notifier = new SystemdNotifier(socket);
    }

    /// <summary>Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) recommends; null when the watchdog is off.</summary>
    public TimeSpan? WatchdogInterval => _environment.WatchdogTimeout / 2;

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_notifier is null) return Task.CompletedTask;
        _lifetime.ApplicationStarted.Register(() =>
        {
            var status = PipelineSupervisor.Summarize(_supervisor.Snapshot());
            lock (_statusLock) _lastStatus = status;
            _notifier.Notify($"READY=1\nSTATUS={status}\nMAINPID={Environment.ProcessId}");
            LogReady(_logger, status);
            _supervisor.Changed += SendStatus;
            if (WatchdogInterval is { } interval)
                _watchdogLoop = Task.Run(() => WatchdogLoopAsync(interval));
        });
        _lifetime.ApplicationStopping.Register(() => _notifier.Notify("STOPPING=1\nSTATUS=stopping"));
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

    private void SendStatus()
    {
        var status = PipelineSupervisor.Summarize(_supervisor.Snapshot());
        lock (_statusLock)
        {
            if (status == _lastStatus) return;
            _lastStatus = status;
        }
        _notifier?.Notify($"STATUS={status}");
    }

    private async Task WatchdogLoopAsync(TimeSpan interval)
    {
        // The supervisor ticks every TickInterval; if it has not ticked for a whole watchdog interval
        // (plus one tick of slack for scheduling) it is blocked, and systemd should find out.
        var limit = interval + _supervisor.TickInterval;
        using var timer = new PeriodicTimer(interval, _time);
        try
        {
            do
            {
                var age = _supervisor.TimeSinceLastTick;
                if (age <= limit)
                {
                    _notifier!.Notify("WATCHDOG=1");
                    if (_watchdogSkipping) LogWatchdogResumed(_logger);
                    _watchdogSkipping = false;
                }
                else if (!_watchdogSkipping)
                {
                    _watchdogSkipping = true;
                    LogWatchdogWithheld(_logger, age);
                }
            }
            while (await timer.WaitForNextTickAsync(_stop.Token));
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _notifier?.Dispose();
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "ready: {Status}")]
    private static partial void LogReady(ILogger logger, string status);

    [LoggerMessage(Level = LogLevel.Critical, Message = "supervisor loop has not ticked for {Age}; withholding WATCHDOG=1 so systemd restarts us")]
    private static partial void LogWatchdogWithheld(ILogger logger, TimeSpan age);

    [LoggerMessage(Level = LogLevel.Warning, Message = "supervisor loop is ticking again; WATCHDOG=1 resumed")]
    private static partial void LogWatchdogResumed(ILogger logger);
}
