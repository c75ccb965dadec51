using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Threading;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Pinhole.Transport.Metrics;

namespace Pinhole.EdgeHost.Supervision;

/// <summary>What a config apply did, by pipeline name.</summary>
public sealed record ConfigApplyResult(IReadOnlyList<string> Started, IReadOnlyList<string> Restarted, IReadOnlyList<string> Stopped, IReadOnlyList<string> Unchanged);

/// <summary>
/// Runs every pipeline the registered <see cref="IPipelineFactory"/>s ask for, restarts them when they
/// fail or stall, applies new configs by restarting only what changed, and ticks a loop whose liveness
/// the systemd watchdog reports (<see cref="LastTick"/>).
/// </summary>
public sealed partial class PipelineSupervisor : IAsyncDisposable
{
    private static readonly PipelineState[] States = Enum.GetValues<PipelineState>();

    private readonly IPipelineFactory[] _factories;
    private readonly ObservedSeries _up, _state, _heartbeatAge, _restarts;
    // Restarts per pipeline name, kept across config changes that restart it, dropped when it is removed.
    private readonly ConcurrentDictionary<string, StrongBox<long>> _restartCounts = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly ILogger<PipelineSupervisor> _logger;
    private readonly SupervisorOptions _options;
    private readonly SemaphoreSlim _applyLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();

    private volatile PipelineRunner[] _runners = [];
    private long _lastTickTimestamp;
    private Task? _loop;

    public PipelineSupervisor(IEnumerable<IPipelineFactory> factories, Meter meter, TimeProvider time,
        ILogger<PipelineSupervisor> logger, SupervisorOptions options)
    {
        _factories = [.. factories];
        _up = ObservedSeries.Gauge(meter, "pinhole_pipeline_up", "1 when the pipeline is running and not stalled.");
        _state = ObservedSeries.Gauge(meter, "pinhole_pipeline_state", "1 for the state the pipeline is in.");
        _heartbeatAge = ObservedSeries.Gauge(meter, "pinhole_pipeline_last_heartbeat_age_seconds", "Seconds since the pipeline last made progress (-1 before its first heartbeat).");
        _restarts = ObservedSeries.Counter(meter, "pinhole_pipeline_restarts_total", "Times a pipeline was restarted after failing or stalling.");
        _time = time;
        _logger = logger;
        _options = options;
        _lastTickTimestamp = time.GetTimestamp();
    }

    /// <summary>
    /// Taken by every tick of the supervisor loop. Anything that holds it blocks the loop, which
    /// (deliberately) stops the systemd watchdog pings.
    /// </summary>
    internal Lock Gate { get; } = new();

    /// <summary>Time since the supervisor loop last completed a tick.</summary>
    public TimeSpan TimeSinceLastTick => _time.GetElapsedTime(Interlocked.Read(ref _lastTickTimestamp));

    /// <summary>The configured tick interval.</summary>
    public TimeSpan TickInterval => _options.TickInterval;

    /// <summary>Raised from the loop when any pipeline's state, restarts or status changed since the last tick.</summary>
    public event Action? Changed;

    /// <summary>Raised from the loop at every tick, after <see cref="Changed"/>: for listeners that sample something periodically without a timer of their own.</summary>
    public event Action? Ticked;

    /// <summary>Starts the pipelines for <paramref name="config"/> and the supervisor loop.</summary>
    public async Task StartAsync(EdgeConfig config)
    {
        await ApplyAsync(config);
        _loop = DedicatedThread.Run("supervisor", Loop);
    }

    /// <summary>Makes the running set match <paramref name="config"/>: restarts only pipelines whose fingerprint changed.</summary>
    public async Task<ConfigApplyResult> ApplyAsync(EdgeConfig config)
    {
        var wanted = new Dictionary<string, PipelineSpec>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var factory in _factories)
        {
            foreach (var spec in factory.CreatePipelines(config))
            {
                if (!wanted.TryAdd(spec.Name, spec))
                {
                    LogDuplicate(_logger, spec.Name, factory.GetType().Name);
                    continue;
                }
                order.Add(spec.Name);
            }
        }

        await _applyLock.WaitAsync();
        try
        {
            if (_stop.IsCancellationRequested)
                throw new InvalidOperationException("the supervisor is shutting down");
            var current = _runners.ToDictionary(r => r.Name, StringComparer.Ordinal);
            List<string> started = [], restarted = [], stopped = [], unchanged = [];
            var toStop = new List<PipelineRunner>();
            foreach (var runner in current.Values)
            {
                if (!wanted.TryGetValue(runner.Name, out var spec))
                {
                    toStop.Add(runner);
                    stopped.Add(runner.Name);
                }
                else if (spec.Fingerprint != runner.Spec.Fingerprint)
                {
                    toStop.Add(runner);
                    restarted.Add(runner.Name);
                }
            }

            // Stop first, so a camera or a GPIO line is never opened twice.
            await Task.WhenAll(toStop.Select(r => r.StopAsync()));
            foreach (var runner in toStop.Where(r => !wanted.ContainsKey(r.Name)))
                RemoveMetrics(runner.Name);

            var next = new List<PipelineRunner>();
            foreach (var name in order)
            {
                if (current.TryGetValue(name, out var existing) && !toStop.Contains(existing))
                {
                    next.Add(existing);
                    unchanged.Add(name);
                    continue;
                }
                var runner = new PipelineRunner(wanted[name], _options, _time, _logger);
                var restarts = _restartCounts.GetOrAdd(name, _ => new StrongBox<long>());
                _restarts.Set(() => Interlocked.Read(ref restarts.Value), ("pipeline", name));
                runner.Restarted = _ => Interlocked.Increment(ref restarts.Value);
                RegisterMetrics(runner);
                next.Add(runner);
                if (!restarted.Contains(name)) started.Add(name);
            }
            lock (Gate) _runners = [.. next];
            foreach (var runner in next.Where(r => !unchanged.Contains(r.Name)))
                runner.Start();

            var result = new ConfigApplyResult(started, restarted, stopped, unchanged);
            LogApplied(_logger, Join(started), Join(restarted), Join(stopped), unchanged.Count);
            return result;
        }
        finally
        {
            _applyLock.Release();
        }

        static string Join(List<string> names) => names.Count == 0 ? "-" : string.Join(", ", names);
    }

    /// <summary>Every pipeline's current state.</summary>
    public IReadOnlyList<PipelineSnapshot> Snapshot() => [.. _runners.Select(r => r.Snapshot())];

    /// <summary>One line for systemd's STATUS= and logs, e.g. <c>4/5 pipelines running; camera/door restarting: …</c>.</summary>
    public static string Summarize(IReadOnlyList<PipelineSnapshot> pipelines)
    {
        if (pipelines.Count == 0) return "no pipelines configured";
        var healthy = pipelines.Count(p => p.Healthy);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{healthy}/{pipelines.Count} pipelines healthy");
        foreach (var p in pipelines.Where(p => !p.Healthy))
        {
            sb.Append("; ").Append(p.Name).Append(": ").Append(p.UnhealthyReason);
            if (sb.Length > 240) break;
        }
        var line = sb.ToString();
        return line.Length > 250 ? line[..250] + "…" : line;
    }

    /// <summary>Stops every pipeline and the loop.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await _applyLock.WaitAsync();
        try
        {
            var runners = _runners;
            await Task.WhenAll(runners.Select(r => r.StopAsync()));
        }
        finally
        {
            _applyLock.Release();
        }
        if (_loop is not null)
        {
            try { await _loop; }
            catch (OperationCanceledException) { }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested) await StopAsync();
        _stop.Dispose();
        _applyLock.Dispose();
    }

    // The loop runs on a thread of its own that sleeps between ticks: one wake-up per tick, where a
    // PeriodicTimer woke the timer thread and then a pool worker (and kept the pool's gate thread
    // polling) every time. On a device that runs for years the idle wake-ups are most of the cost
    // that is not video. The tick follows the wall clock, not the TimeProvider.
    private void Loop()
    {
        var stopping = _stop.Token.WaitHandle;
        string? lastFingerprint = null;
        while (!stopping.WaitOne(_options.TickInterval))
        {
            string fingerprint;
            lock (Gate)
            {
                var snapshots = new List<PipelineSnapshot>(_runners.Length);
                foreach (var runner in _runners)
                {
                    runner.CheckStall();
                    snapshots.Add(runner.Snapshot());
                }
                fingerprint = string.Join('\n', snapshots.Select(s => $"{s.Name} {s.State} {s.Healthy} {s.Restarts} {s.Status}"));
                Interlocked.Exchange(ref _lastTickTimestamp, _time.GetTimestamp());
            }
            if (fingerprint != lastFingerprint)
            {
                lastFingerprint = fingerprint;
                try
                {
                    Changed?.Invoke();
                }
                catch (Exception e)
                {
                    LogListenerFailed(_logger, e);
                }
            }
            try
            {
                Ticked?.Invoke();
            }
            catch (Exception e)
            {
                LogListenerFailed(_logger, e);
            }
        }
    }

    private void RegisterMetrics(PipelineRunner runner)
    {
        var name = runner.Name;
        _up.Set(() => runner.Snapshot().Healthy ? 1 : 0, ("pipeline", name));
        foreach (var state in States)
        {
            var s = state;
            _state.Set(() => runner.Snapshot().State == s ? 1 : 0, ("pipeline", name), ("state", s.ToString().ToLowerInvariant()));
        }
        _heartbeatAge.Set(() => runner.Snapshot().LastHeartbeat is { } t ? (_time.GetUtcNow() - t).TotalSeconds : -1, ("pipeline", name));
    }

    private void RemoveMetrics(string name)
    {
        _up.Remove(("pipeline", name));
        _restarts.Remove(("pipeline", name));
        _restartCounts.TryRemove(name, out _);
        _heartbeatAge.Remove(("pipeline", name));
        foreach (var state in States)
            _state.Remove(("pipeline", name), ("state", state.ToString().ToLowerInvariant()));
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "two pipelines are named {Pipeline}; ignoring the one from {Factory}")]
    private static partial void LogDuplicate(ILogger logger, string pipeline, string factory);

    [LoggerMessage(Level = LogLevel.Information, Message = "config applied: started {Started}; restarted {Restarted}; stopped {Stopped}; {Unchanged} unchanged")]
    private static partial void LogApplied(ILogger logger, string started, string restarted, string stopped, int unchanged);

    [LoggerMessage(Level = LogLevel.Error, Message = "a supervisor change listener failed")]
    private static partial void LogListenerFailed(ILogger logger, Exception exception);
}
