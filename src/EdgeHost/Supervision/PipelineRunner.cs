using Microsoft.Extensions.Logging;

namespace Pinhole.EdgeHost.Supervision;

/// <summary>
/// Runs one pipeline forever: start, wait for it to fail (throw, return, or be cancelled as stalled),
/// back off, start a fresh instance. Owned by <see cref="PipelineSupervisor"/>.
/// </summary>
internal sealed partial class PipelineRunner
{
    private readonly SupervisorOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();

    private CancellationTokenSource? _attempt;
    private long _attemptId;
    private long _attemptStartTimestamp;
    private long _lastHeartbeatTimestamp;
    private DateTimeOffset? _lastHeartbeat;
    private TimeSpan _stallTimeout = Timeout.InfiniteTimeSpan;
    private string? _cancelReason;
    private Task? _loop;

    private PipelineState _state = PipelineState.Restarting;
    private string _status = "starting";
    private string? _lastError;
    private DateTimeOffset? _lastErrorAt;
    private DateTimeOffset? _nextStartAt;
    private int _starts;
    private int _restarts;

    public PipelineRunner(PipelineSpec spec, SupervisorOptions options, TimeProvider time, ILogger logger)
    {
        Spec = spec;
        _options = options;
        _time = time;
        _logger = logger;
    }

    public PipelineSpec Spec { get; }

    public string Name => Spec.Name;

    /// <summary>Raised (on any thread) after each failure, with the failure count so far.</summary>
    public Action<PipelineRunner>? Restarted { get; set; }

    public void Start() => _loop = Task.Run(LoopAsync);

    /// <summary>Stops for good; waits for the current instance up to the grace period.</summary>
    public async Task StopAsync()
    {
        lock (_lock)
        {
            if (_state != PipelineState.Stopped) _state = PipelineState.Stopping;
        }
        await _stop.CancelAsync();
        if (_loop is not null)
            await _loop;
    }

    public PipelineSnapshot Snapshot()
    {
        lock (_lock)
        {
            var healthy = _state == PipelineState.Running && !IsStalled(_time.GetTimestamp());
            return new PipelineSnapshot(Name, _state, healthy, _starts, _restarts, _lastHeartbeat, _status,
                _lastError, _lastErrorAt, _state == PipelineState.Restarting ? _nextStartAt : null);
        }
    }

    /// <summary>Called by the supervisor loop: cancels the current instance when it has not made progress for its stall timeout.</summary>
    public void CheckStall()
    {
        CancellationTokenSource? toCancel = null;
        lock (_lock)
        {
            if (_state != PipelineState.Running || _cancelReason is not null || !IsStalled(_time.GetTimestamp())) return;
            _cancelReason = $"stalled: no heartbeat for {_stallTimeout.TotalSeconds:0.###}s";
            toCancel = _attempt;
        }
        LogStalled(_logger, Name, _stallTimeout);
        try
        {
            // Asynchronously: the pipeline's cancellation callbacks must not run on (or block) the supervisor loop.
            _ = toCancel?.CancelAsync();
        }
        catch (ObjectDisposedException)
        {
            // The attempt ended on its own in the meantime.
        }
    }

    private bool IsStalled(long now) =>
        _stallTimeout != Timeout.InfiniteTimeSpan && _time.GetElapsedTime(_lastHeartbeatTimestamp, now) > _stallTimeout;

    private async Task LoopAsync()
    {
        var failures = 0;
        while (!_stop.IsCancellationRequested)
        {
            var reason = await RunOnceAsync();
            if (reason is null || _stop.IsCancellationRequested) break;

            TimeSpan ranFor;
            lock (_lock) ranFor = _time.GetElapsedTime(_attemptStartTimestamp);
            failures = ranFor >= _options.HealthyRunResetsBackoff ? 1 : failures + 1;
            var delay = Backoff(failures);
            lock (_lock)
            {
                _state = PipelineState.Restarting;
                _lastError = reason;
                _lastErrorAt = _time.GetUtcNow();
                _nextStartAt = _lastErrorAt + delay;
                _restarts++;
            }
            LogFailed(_logger, Name, reason, delay);
            Restarted?.Invoke(this);
            try
            {
                await Task.Delay(delay, _time, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        lock (_lock) _state = PipelineState.Stopped;
    }

    /// <summary>Runs one instance; returns why it ended as a failure, or null when it was stopped on purpose.</summary>
    private async Task<string?> RunOnceAsync()
    {
        IPipeline pipeline;
        try
        {
            pipeline = Spec.Create();
        }
        catch (Exception e)
        {
            return $"could not be created: {e.GetType().Name}: {e.Message}";
        }

        var attempt = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        PipelineContext context;
        lock (_lock)
        {
            _attempt = attempt;
            _attemptId++;
            _cancelReason = null;
            _attemptStartTimestamp = _lastHeartbeatTimestamp = _time.GetTimestamp();
            _stallTimeout = pipeline.StallTimeout;
            _state = _stop.IsCancellationRequested ? PipelineState.Stopping : PipelineState.Running;
            _starts++;
            context = new PipelineContext(this, _attemptId);
        }
        LogStarting(_logger, Name);

        var run = Task.Run(() => pipeline.RunAsync(context, attempt.Token));
        string? reason;
        try
        {
            await run.WaitAsync(attempt.Token);
            reason = "returned without being asked to stop";
        }
        catch (OperationCanceledException) when (attempt.IsCancellationRequested)
        {
            reason = null;
        }
        catch (Exception e)
        {
            reason = $"threw {e.GetType().Name}: {e.Message}";
        }

        if (attempt.IsCancellationRequested && !run.IsCompleted)
        {
            // Cancelled (stall or stop): give it the grace period to unwind, then abandon it. It keeps
            // running in the background if it ignores its token, but nothing waits on it any more.
            var finished = await Task.WhenAny(run, Task.Delay(_options.StopGrace, _time)) == run;
            if (!finished)
            {
                LogAbandoned(_logger, Name, _options.StopGrace);
                _ = run.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                    TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            }
        }

        lock (_lock)
        {
            _attempt = null;
            if (reason is null && !_stop.IsCancellationRequested)
                reason = _cancelReason ?? "cancelled";
        }
        attempt.Dispose();
        await DisposeAsync(pipeline);
        return _stop.IsCancellationRequested ? null : reason;
    }

    private async Task DisposeAsync(IPipeline pipeline)
    {
        try
        {
            switch (pipeline)
            {
                case IAsyncDisposable a: await a.DisposeAsync(); break;
                case IDisposable d: d.Dispose(); break;
            }
        }
        catch (Exception e)
        {
            LogDisposeFailed(_logger, Name, e);
        }
    }

    /// <summary>Capped exponential backoff with ±jitter: InitialBackoff · 2^(failures-1), at most MaxBackoff.</summary>
    internal TimeSpan Backoff(int failures)
    {
        var exponent = Math.Min(failures - 1, 30);
        var ms = Math.Min(_options.InitialBackoff.TotalMilliseconds * Math.Pow(2, exponent), _options.MaxBackoff.TotalMilliseconds);
        var spread = 1 + _options.Jitter * (2 * Random.Shared.NextDouble() - 1);
        return TimeSpan.FromMilliseconds(Math.Min(ms * spread, _options.MaxBackoff.TotalMilliseconds));
    }

    private void OnHeartbeat(long attemptId)
    {
        lock (_lock)
        {
            if (attemptId != _attemptId) return;
            _lastHeartbeatTimestamp = _time.GetTimestamp();
            _lastHeartbeat = _time.GetUtcNow();
        }
    }

    private void OnStatus(long attemptId, string status)
    {
        // One line, bounded: it goes into STATUS= and the page.
        var line = status.ReplaceLineEndings(" ");
        if (line.Length > 200) line = line[..200];
        lock (_lock)
        {
            if (attemptId == _attemptId) _status = line;
        }
    }

    private sealed class PipelineContext(PipelineRunner runner, long attemptId) : IPipelineContext
    {
        public void Heartbeat() => runner.OnHeartbeat(attemptId);

        public void SetStatus(string status) => runner.OnStatus(attemptId, status ?? "");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "pipeline {Pipeline} starting")]
    private static partial void LogStarting(ILogger logger, string pipeline);

    [LoggerMessage(Level = LogLevel.Warning, Message = "pipeline {Pipeline} failed: {Reason}; restarting in {Delay}")]
    private static partial void LogFailed(ILogger logger, string pipeline, string reason, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "pipeline {Pipeline} stalled (no heartbeat for {Timeout}); cancelling it")]
    private static partial void LogStalled(ILogger logger, string pipeline, TimeSpan timeout);

    [LoggerMessage(Level = LogLevel.Error, Message = "pipeline {Pipeline} ignored cancellation for {Grace}; abandoning that instance")]
    private static partial void LogAbandoned(ILogger logger, string pipeline, TimeSpan grace);

    [LoggerMessage(Level = LogLevel.Warning, Message = "pipeline {Pipeline} failed to dispose")]
    private static partial void LogDisposeFailed(ILogger logger, string pipeline, Exception exception);
}
