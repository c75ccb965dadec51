using System.Buffers;
using System.Threading.Channels;
using MQTTnet;
using MQTTnet.Protocol;
using Pinhole.Relay.Configuration;
using System.Diagnostics.Metrics;

namespace Pinhole.Relay.Telemetry;

/// <summary>
/// Subscribes to the devices' telemetry (<c>PREFIX/+/sensors/+</c>, <c>PREFIX/+/status</c>) with a
/// persistent MQTT 5 session (clean start false, session expiry 7 days) at QoS 1, and stores every
/// reading. A message is acknowledged (PUBACK) only after the transaction holding it committed, so a
/// relay killed at any moment loses nothing: the broker sends the unacknowledged again and the store
/// recognises what it already has by device, sensor and seq. Reconnects forever with capped, jittered backoff.
/// Alert changes are published retained on <c>PREFIX/DEVICE/alerts/SENSOR</c> over the same connection.
/// </summary>
public sealed class TelemetryIngest : BackgroundService
{
    private const int MaxBatch = 2000;
    private static readonly TimeSpan SessionExpiry = TimeSpan.FromDays(7);
    private readonly TelemetryConfig _config;
    private readonly ITelemetryStore _store;
    private readonly AlertEngine _alerts;
    private readonly TimeProvider _time;
    private readonly ILogger<TelemetryIngest> _log;
    private readonly Channel<Pending> _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(10_000) { SingleReader = true });
    private readonly Dictionary<string, AlertChange> _alertsToPublish = [];
    private readonly Lock _alertLock = new();
    private readonly Counter<long> _stored;
    private readonly Counter<long> _duplicates;
    private readonly Counter<long> _rejected;
    private volatile IMqttClient? _client;

    private readonly record struct Pending(TelemetryReading? Reading, MqttApplicationMessageReceivedEventArgs Message, IMqttClient Client);

    /// <summary>Creates the ingest (started by the host).</summary>
    public TelemetryIngest(TelemetryConfig config, ITelemetryStore store, AlertEngine alerts, Meter meter, TimeProvider time, ILogger<TelemetryIngest> log)
    {
        ArgumentNullException.ThrowIfNull(meter);
        _config = config;
        _store = store;
        _alerts = alerts;
        _time = time;
        _log = log;
        _stored = meter.CreateCounter<long>("pinhole_relay_telemetry_readings_stored_total", description: "Readings stored in the telemetry history.");
        _duplicates = meter.CreateCounter<long>("pinhole_relay_telemetry_duplicates_total", description: "Readings received again (QoS 1 redelivery, outbox resend) and stored once.");
        _rejected = meter.CreateCounter<long>("pinhole_relay_telemetry_rejected_total", description: "Telemetry messages dropped as malformed.");
        // Shown from the start, as a scrape expects of a counter.
        _stored.Add(0);
        _duplicates.Add(0);
        _rejected.Add(0);
    }

    /// <summary>The MQTT client id of the relay's persistent session.</summary>
    public string ClientId => _config.ClientId ?? "pinhole-relay-" + Environment.MachineName;

    /// <summary>The readings' topic filter: <c>PREFIX/+/sensors/+</c>, or <c>$share/GROUP/PREFIX/+/sensors/+</c> with a shared group.</summary>
    public static string SensorFilter(TelemetryConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var filter = config.TopicPrefix + "/+/sensors/+";
        return config.SharedGroup is { } group ? $"$share/{group}/{filter}" : filter;
    }

    /// <summary>True while connected to the broker.</summary>
    public bool IsConnected => _client?.IsConnected == true;

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var writer = Task.Run(() => RunWriterAsync(stoppingToken), stoppingToken);
        var delay = TimeSpan.FromMilliseconds(500);
        var broker = new Uri(_config.Mqtt);
        while (!stoppingToken.IsCancellationRequested)
        {
            using var client = new MqttClientFactory().CreateMqttClient();
            var lost = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            client.ApplicationMessageReceivedAsync += e => OnMessageAsync(client, e);
            client.DisconnectedAsync += e =>
            {
                lost.TrySetResult(e.Exception?.Message ?? e.ReasonString ?? e.Reason.ToString());
                return Task.CompletedTask;
            };
            try
            {
                // Current before CONNACK: a persistent session's queued messages follow it at once.
                _client = client;
                var result = await client.ConnectAsync(Options(broker), stoppingToken).ConfigureAwait(false);
                TelemetryLog.Connected(_log, Redacted(broker), ClientId, result.IsSessionPresent);
                var prefix = _config.TopicPrefix;
                // Readings: with a shared group, the broker hands each one to one relay of the group (MQTT 5 §4.8.2).
                // Statuses stay a plain subscription on every relay: they are retained, and a shared subscription
                // gets no retained messages (§3.3.1.3); storing one twice is harmless.
                var sensors = SensorFilter(_config);
                var subscribed = await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
                    .WithTopicFilter(f => f.WithTopic(sensors).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce))
                    .WithTopicFilter(f => f.WithTopic(prefix + "/+/status").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce))
                    .Build(), stoppingToken).ConfigureAwait(false);
                // A broker without shared subscriptions (or an ACL) refuses the filter in SUBACK, not at CONNECT:
                // say so and retry, rather than sit connected receiving nothing.
                if (subscribed.Items.FirstOrDefault(i => i.ResultCode > MqttClientSubscribeResultCode.GrantedQoS2) is { } refused)
                    throw new InvalidOperationException($"the broker refused the subscription {refused.TopicFilter.Topic}: {refused.ResultCode}{(string.IsNullOrEmpty(subscribed.ReasonString) ? "" : " (" + subscribed.ReasonString + ")")}");
                delay = TimeSpan.FromMilliseconds(500);
                await PublishAlertsAsync(stoppingToken).ConfigureAwait(false);
                var reason = await lost.Task.WaitAsync(stoppingToken).ConfigureAwait(false);
                TelemetryLog.Disconnected(_log, reason);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                try
                {
                    if (client.IsConnected)
                        await client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.NormalDisconnection).Build(), CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or OperationCanceledException or InvalidOperationException)
                {
                    // Leaving anyway; the broker keeps the session.
                }
                break;
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // Whatever the broker or the network did, the ingest retries: a background service that
                // throws would stop the whole relay.
                TelemetryLog.ConnectFailed(_log, Redacted(broker), e.Message, delay);
            }
            finally
            {
                _client = null;
            }
            try
            {
                // Jittered in the upper half, so a fleet of relays does not reconnect in step.
                var jittered = delay * (0.5 + Random.Shared.NextDouble() * 0.5);
                await Task.Delay(jittered, _time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
        }
        _queue.Writer.TryComplete();
        try
        {
            await writer.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    private MqttClientOptions Options(Uri broker)
    {
        var b = new MqttClientOptionsBuilder()
            .WithClientId(ClientId)
            .WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500)
            .WithCleanStart(false)
            .WithSessionExpiryInterval((uint)SessionExpiry.TotalSeconds)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(15))
            .WithTimeout(TimeSpan.FromSeconds(15));
        if (broker.Scheme is "ws" or "wss")
            b = b.WithWebSocketServer(o => o.WithUri(broker.ToString()));
        else
            b = b.WithTcpServer(broker.Host, broker.IsDefaultPort || broker.Port <= 0 ? (broker.Scheme == "mqtts" ? 8883 : 1883) : broker.Port);
        if (broker.Scheme is "wss" or "mqtts")
            b = b.WithTlsOptions(o => o.UseTls(true).WithTargetHost(broker.Host));
        if (_config.Username is { } user) b = b.WithCredentials(user, _config.Password ?? "");
        return b.Build();
    }

    private async Task OnMessageAsync(IMqttClient client, MqttApplicationMessageReceivedEventArgs e)
    {
        var message = e.ApplicationMessage;
        var kind = TelemetryMessages.ParseTopic(_config.TopicPrefix, message.Topic, out var device, out var sensor);
        try
        {
            switch (kind)
            {
                case TelemetryTopicKind.Sensor:
                    var reading = TelemetryMessages.ParseReading(device, sensor, Bytes(message.Payload));
                    // Acknowledged by the writer once stored.
                    e.AutoAcknowledge = false;
                    await _queue.Writer.WriteAsync(new Pending(reading, e, client)).ConfigureAwait(false);
                    return;
                case TelemetryTopicKind.Status:
                    var status = TelemetryMessages.ParseStatus(Bytes(message.Payload));
                    try
                    {
                        _store.SetStatus(device, status, _time.GetUtcNow());
                    }
                    catch (Exception ex) when (ex is System.Data.Common.DbException or InvalidOperationException or TimeoutException)
                    {
                        // Left unacknowledged: sent again with the next connection.
                        e.AutoAcknowledge = false;
                        TelemetryLog.StoreFailed(_log, 1, ex.Message);
                    }
                    return;
                default:
                    return;
            }
        }
        catch (TelemetryFormatException ex)
        {
            _rejected.Add(1);
            TelemetryLog.BadMessage(_log, message.Topic, ex.Message);
        }
        catch (ChannelClosedException)
        {
            // Stopping: left unacknowledged, sent again to the next run.
            e.AutoAcknowledge = false;
        }
    }

    private static ReadOnlySpan<byte> Bytes(ReadOnlySequence<byte> payload) =>
        payload.IsSingleSegment ? payload.FirstSpan : payload.Length > TelemetryMessages.MaxPayloadBytes ? new byte[TelemetryMessages.MaxPayloadBytes + 1] : payload.ToArray();

    // The writer must outlive anything one batch throws: a dead writer would leave every later reading
    // unacknowledged with nothing said. Restarted after a second.
    private async Task RunWriterAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await WriteLoopAsync(stoppingToken).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                TelemetryLog.WriterFailed(_log, e);
                await Task.Delay(TimeSpan.FromSeconds(1), _time, stoppingToken).ConfigureAwait(false);
            }
        }
    }

    private async Task WriteLoopAsync(CancellationToken stoppingToken)
    {
        var batch = new List<Pending>(MaxBatch);
        while (await _queue.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var item)) batch.Add(item);
            var readings = batch.Select(p => p.Reading!).ToList();
            IReadOnlyList<TelemetryReading> fresh;
            try
            {
                fresh = _store.Store(readings, _time.GetUtcNow());
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // Not acknowledged: the broker redelivers on the next connection. Reconnect to get them back now.
                TelemetryLog.StoreFailed(_log, readings.Count, e.Message);
                if (_client is { } c)
                {
                    try { await c.DisconnectAsync(cancellationToken: stoppingToken).ConfigureAwait(false); }
                    catch (Exception) when (!stoppingToken.IsCancellationRequested) { /* already gone */ }
                }
                await Task.Delay(TimeSpan.FromSeconds(1), _time, stoppingToken).ConfigureAwait(false);
                continue;
            }
            _stored.Add(fresh.Count);
            _duplicates.Add(readings.Count - fresh.Count);
            // A PUBACK only makes sense on the connection the message came on; one that is gone gets
            // nothing (the broker sends the message again on the next one, and the store skips it).
            // Bounded in time: an acknowledgement must never hold up the writer.
            using var ackTimeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            ackTimeout.CancelAfter(TimeSpan.FromSeconds(10));
            foreach (var p in batch)
            {
                if (!ReferenceEquals(p.Client, _client)) continue;
                try
                {
                    await p.Message.AcknowledgeAsync(ackTimeout.Token).ConfigureAwait(false);
                }
                catch (Exception) when (!stoppingToken.IsCancellationRequested)
                {
                    // The connection it came on is gone (whatever MQTTnet throws for that); the broker
                    // sends it again on the next one and the store skips it.
                }
            }
            IReadOnlyList<AlertChange> changes;
            try
            {
                changes = _alerts.Observe(fresh);
            }
            catch (System.Data.Common.DbException e)
            {
                // Shared alert state (several relays): the readings are stored; the sensor's next batch judges them.
                TelemetryLog.AlertsFailed(_log, e.Message);
                changes = [];
            }
            if (changes.Count > 0)
            {
                lock (_alertLock)
                    foreach (var c in changes) _alertsToPublish[$"{_config.TopicPrefix}/{c.Device}/alerts/{c.Sensor}"] = c;
                foreach (var c in changes) TelemetryLog.Alert(_log, c.Raised ? "raised" : "cleared", c.Device, c.Sensor, c.Value, c.Rule);
                await PublishAlertsAsync(stoppingToken).ConfigureAwait(false);
            }
        }
    }

    // Latest state per alert topic, sent retained at QoS 1; kept until the broker acknowledged it.
    private async Task PublishAlertsAsync(CancellationToken cancellationToken)
    {
        if (_client is not { IsConnected: true } client) return;
        KeyValuePair<string, AlertChange>[] pending;
        lock (_alertLock) pending = [.. _alertsToPublish];
        foreach (var (topic, change) in pending)
        {
            try
            {
                await client.PublishAsync(new MqttApplicationMessageBuilder()
                    .WithTopic(topic)
                    .WithPayload(change.ToPayload())
                    .WithRetainFlag()
                    .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
                    .Build(), cancellationToken).ConfigureAwait(false);
                lock (_alertLock)
                    if (_alertsToPublish.TryGetValue(topic, out var current) && ReferenceEquals(current, change)) _alertsToPublish.Remove(topic);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                TelemetryLog.AlertPublishFailed(_log, topic, e.Message);
                return;
            }
        }
    }

    private static string Redacted(Uri broker) => new UriBuilder(broker) { UserName = "", Password = "" }.Uri.ToString();
}
