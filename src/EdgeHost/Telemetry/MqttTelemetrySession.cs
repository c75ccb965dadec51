using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Telemetry.Outbox;

namespace Pinhole.EdgeHost.Telemetry;

/// <summary>
/// The <c>mqtt</c> pipeline: keeps one persistent MQTT session (clean start false) to the broker,
/// reconnecting forever with capped, jittered backoff. On every connect it publishes the retained
/// <c>online</c> status (the retained last will says <c>offline</c>), the retained Home Assistant
/// discovery configs, subscribes to <c>homeassistant/status</c> (and re-publishes discovery when
/// Home Assistant announces <c>online</c>), then drains the outbox in order at QoS 1, removing a
/// reading only when its PUBACK arrived. Everything unacknowledged is sent again after a reconnect:
/// duplicates are possible, gaps are not.
/// </summary>
internal sealed partial class MqttTelemetrySession : IPipeline
{
    /// <summary>Publishes in flight at once; Mosquitto's default receive maximum is 20.</summary>
    internal const int InflightWindow = 16;
    private static readonly TimeSpan IdleHeartbeat = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(15);

    private readonly ITelemetryMqttConnector _connector;
    private readonly TelemetryConnectOptions _options;
    private readonly TelemetryTopics _topics;
    private readonly IReadOnlyList<SensorReadingInfo> _sensors;
    private readonly TelemetryOutbox _outbox;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Backoff _backoff;
    private readonly TelemetryCounters _counters;

    public MqttTelemetrySession(
        ITelemetryMqttConnector connector,
        TelemetryConnectOptions options,
        TelemetryTopics topics,
        IReadOnlyList<SensorReadingInfo> sensors,
        TelemetryOutbox outbox,
        TelemetryCounters counters,
        TimeProvider time,
        ILogger logger,
        Backoff? backoff = null)
    {
        _connector = connector;
        _options = options;
        _topics = topics;
        _sensors = sensors;
        _outbox = outbox;
        _time = time;
        _logger = logger;
        _backoff = backoff ?? new Backoff(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(30));
        _counters = counters ?? throw new ArgumentNullException(nameof(counters));
    }

    /// <inheritdoc />
    public string Name => "mqtt";

    /// <inheritdoc />
    /// <remarks>Longer than the longest backoff: retrying is progress, hanging is not.</remarks>
    public TimeSpan StallTimeout => TimeSpan.FromMinutes(2);

    /// <inheritdoc />
    public async Task RunAsync(IPipelineContext context, CancellationToken cancellationToken)
    {
        var failures = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            context.SetStatus($"connecting to {Redacted(_options.Url)}");
            context.Heartbeat();
            var rediscover = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
            ITelemetryMqttConnection? connection = null;
            try
            {
                using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                {
                    connectTimeout.CancelAfter(ConnectTimeout);
                    connection = await _connector.ConnectAsync(_options, m => OnMessage(m, rediscover.Writer), connectTimeout.Token).ConfigureAwait(false);
                }
                failures = 0;
                _counters.CountConnect();
                _counters.SetConnected(true);
                LogConnected(_logger, Redacted(_options.Url), _outbox.PendingCount);
                await RunConnectedAsync(connection, rediscover.Reader, context, cancellationToken).ConfigureAwait(false);
                LogConnectionLost(_logger, null);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                LogConnectionLost(_logger, e);
            }
            catch (OperationCanceledException)
            {
                await CloseAsync(connection, clean: true).ConfigureAwait(false);
                connection = null;
                throw;
            }
            finally
            {
                _counters.SetConnected(false);
                if (connection is not null) await CloseAsync(connection, clean: false).ConfigureAwait(false);
            }

            var delay = _backoff.Next(failures++);
            context.SetStatus($"disconnected, {_outbox.PendingCount} readings queued; retrying in {delay.TotalSeconds:0.0}s");
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task RunConnectedAsync(ITelemetryMqttConnection connection, ChannelReader<bool> rediscover, IPipelineContext context, CancellationToken cancellationToken)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ct = session.Token;

        await connection.PublishAsync(_topics.Status, Encoding.UTF8.GetBytes(TelemetryPayloads.Online), retain: true, ct).ConfigureAwait(false);
        await connection.SubscribeAsync(TelemetryTopics.HomeAssistantStatus, ct).ConfigureAwait(false);
        await PublishDiscoveryAsync(connection, ct).ConfigureAwait(false);
        context.SetStatus(connection.Route == TelemetryRoutes.Uplink
            ? $"connected through the uplink to the relay's broker ({Redacted(_options.Url)} unreachable)"
            : $"connected to {Redacted(_options.Url)}");
        context.Heartbeat();

        var discovery = RepublishDiscoveryAsync(connection, rediscover, ct);
        var drain = DrainAsync(connection, context, ct);
        var first = await Task.WhenAny(discovery, drain, connection.Closed).ConfigureAwait(false);
        await session.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(discovery, drain).ConfigureAwait(false);
        }
        catch (Exception) when (first != discovery && first != drain)
        {
            // The connection closed; the loops' cancellation (or the failures it caused) is expected.
        }
        cancellationToken.ThrowIfCancellationRequested();
        if (first != connection.Closed) await first.ConfigureAwait(false); // rethrows what ended the loop
    }

    // Sends every unacknowledged reading in index order, at most InflightWindow at a time. A
    // failed publish ends the connection; the reading stays in the outbox and goes out again
    // (first in line) on the next one.
    private async Task DrainAsync(ITelemetryMqttConnection connection, IPipelineContext context, CancellationToken ct)
    {
        using var window = new SemaphoreSlim(InflightWindow);
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Exception? failure = null;
        var inflight = new List<Task>();
        var afterIndex = 0L;
        try
        {
            while (true)
            {
                var batch = _outbox.GetPending(afterIndex, InflightWindow);
                if (batch.Count == 0)
                {
                    using var idle = CancellationTokenSource.CreateLinkedTokenSource(failed.Token);
                    idle.CancelAfter(IdleHeartbeat);
                    try { await _outbox.WaitForPendingAsync(afterIndex, idle.Token).ConfigureAwait(false); }
                    catch (OperationCanceledException) when (!failed.IsCancellationRequested) { }
                    context.Heartbeat();
                    continue;
                }
                foreach (var record in batch)
                {
                    await window.WaitAsync(failed.Token).ConfigureAwait(false);
                    afterIndex = record.Index;
                    inflight.RemoveAll(t => t.IsCompleted);
                    inflight.Add(PublishOneAsync(record));
                }
            }
        }
        catch (OperationCanceledException) when (failure is not null)
        {
            throw failure;
        }
        finally
        {
            failed.Cancel();
            try { await Task.WhenAll(inflight).ConfigureAwait(false); } catch (Exception) { /* reported through failure */ }
        }

        async Task PublishOneAsync(OutboxRecord record)
        {
            try
            {
                await connection.PublishAsync(_topics.Sensor(record.Sensor), TelemetryPayloads.Reading(record), retain: false, failed.Token).ConfigureAwait(false);
                _outbox.Acknowledge(record.Index);
                _counters.CountPublished();
                context.Heartbeat();
            }
            catch (PublishRefusedException e) when (e.Permanent)
            {
                // The broker will never take this one (an ACL, a bad topic): drop it, counted and
                // logged, rather than let it block every reading behind it forever.
                _outbox.Acknowledge(record.Index);
                _counters.CountRefused();
                LogRefused(_logger, record.Sensor, record.Sequence, e.Message);
            }
            catch (Exception e)
            {
                if (!failed.IsCancellationRequested) Interlocked.CompareExchange(ref failure, e, null);
                failed.Cancel();
            }
            finally
            {
                window.Release();
            }
        }
    }

    private async Task RepublishDiscoveryAsync(ITelemetryMqttConnection connection, ChannelReader<bool> rediscover, CancellationToken ct)
    {
        while (await rediscover.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            while (rediscover.TryRead(out _)) { }
            LogRediscovery(_logger);
            await PublishDiscoveryAsync(connection, ct).ConfigureAwait(false);
        }
    }

    private async Task PublishDiscoveryAsync(ITelemetryMqttConnection connection, CancellationToken ct)
    {
        foreach (var reading in _sensors)
            await connection.PublishAsync(_topics.Discovery(reading.Name), TelemetryPayloads.Discovery(_topics, reading.Name, reading.Unit, reading.DeviceClass), retain: true, ct).ConfigureAwait(false);
    }

    private static Task OnMessage(TelemetryInboundMessage message, ChannelWriter<bool> rediscover)
    {
        // Home Assistant publishes "online" on homeassistant/status when it (re)starts and has
        // forgotten non-retained state; discovery is re-sent so it finds the sensors again.
        if (message.Topic == TelemetryTopics.HomeAssistantStatus && Encoding.UTF8.GetString(message.Payload.Span).Trim() == TelemetryPayloads.Online)
            rediscover.TryWrite(true);
        return Task.CompletedTask;
    }

    private async Task CloseAsync(ITelemetryMqttConnection? connection, bool clean)
    {
        if (connection is null) return;
        try
        {
            if (clean)
            {
                // Shutting down on purpose: say offline ourselves (a clean disconnect suppresses the will).
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await connection.PublishAsync(_topics.Status, Encoding.UTF8.GetBytes(TelemetryPayloads.Offline), retain: true, timeout.Token).ConfigureAwait(false);
                await connection.DisconnectAsync(timeout.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogCloseFailed(_logger, e);
        }
        finally
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static string Redacted(Uri url) => url.UserInfo.Length == 0 ? url.ToString() : new UriBuilder(url) { UserName = "", Password = "" }.Uri.ToString();

    [LoggerMessage(Level = LogLevel.Information, Message = "Telemetry connected to {Url}; {Pending} readings queued")]
    private static partial void LogConnected(ILogger logger, string url, int pending);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Telemetry MQTT connection lost or refused")]
    private static partial void LogConnectionLost(ILogger logger, Exception? exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Telemetry reading {Sensor} #{Sequence} dropped: {Reason}")]
    private static partial void LogRefused(ILogger logger, string sensor, long sequence, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Home Assistant came online; re-publishing discovery")]
    private static partial void LogRediscovery(ILogger logger);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Telemetry: clean MQTT disconnect failed")]
    private static partial void LogCloseFailed(ILogger logger, Exception exception);
}

/// <summary>Capped exponential backoff with full jitter in the upper half: attempt n waits between d/2 and d, d = min(cap, base·2ⁿ).</summary>
internal sealed class Backoff(TimeSpan initial, TimeSpan cap, Random? random = null)
{
    private readonly Random _random = random ?? Random.Shared;

    public TimeSpan Next(int attempt)
    {
        var d = Math.Min(cap.TotalMilliseconds, initial.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 30)));
        return TimeSpan.FromMilliseconds(d / 2 + _random.NextDouble() * d / 2);
    }
}
