using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.Transport.Mqtt.Adapter;
using Pinhole.Transport.Mqtt.Channels;
using Pinhole.Transport.Mqtt.Formatter;
using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Mqtt;

/// <summary>
/// An MQTT 3.1.1 / 5.0 client shaped like MQTTnet's <c>MqttClient</c>. Thread-safe: any number of callers may
/// publish at once; one writer loop owns the socket. QoS 1/2 publishes complete when the broker acknowledged
/// them (PUBACK, or PUBREC+PUBCOMP), within the broker's Receive Maximum. Received QoS 1/2 messages are
/// acknowledged after the <see cref="ApplicationMessageReceivedAsync"/> handlers return. With
/// <see cref="MqttClientOptions.AutoReconnect"/> a lost connection is re-established with capped, jittered
/// backoff and unacknowledged QoS 1/2 publishes are re-sent (with DUP when the session was resumed);
/// subscriptions are the broker's session state, so with a clean session subscribe again in
/// <see cref="ConnectedAsync"/>. The client owns its channels; disposing it closes the connection.
/// </summary>
public sealed class MqttClient : IAsyncDisposable
{
    private static readonly MqttClientPublishResult Qos0Result = new(null, MqttReasonCode.Success, null, []);
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Func<MqttClientOptions, IMqttChannel> _channelFactory;
    private readonly Lock _stateLock = new();
    private readonly MqttPacketDispatcher _dispatcher = new();
    private readonly MqttSendQuota _quota = new(ushort.MaxValue);
    private readonly Dictionary<ushort, OutgoingPublish> _outgoing = [];
    private readonly HashSet<ushort> _idsInUse = [];
    private readonly HashSet<ushort> _incomingQos2 = [];
    private readonly SemaphoreSlim _connectGate = new(1, 1);
    private readonly CancellationTokenSource _lifetime = new();
    private ushort _lastPacketId;
    private long _publishSequence;
    private Connection? _connection;
    private MqttClientOptions? _options;
    private Task? _reconnectTask;
    private volatile bool _disconnectRequested;
    private volatile bool _disposed;

    /// <summary>Creates a client.</summary>
    /// <param name="logger">Where to log; null logs nothing.</param>
    /// <param name="timeProvider">Clock for timeouts, keep alive and backoff; null uses the system clock.</param>
    public MqttClient(ILogger<MqttClient>? logger = null, TimeProvider? timeProvider = null)
        : this(logger, timeProvider, null)
    {
    }

    /// <summary>Creates a client whose channels come from <paramref name="channelFactory"/> (tests, custom transports).</summary>
    internal MqttClient(ILogger? logger, TimeProvider? timeProvider, Func<MqttClientOptions, IMqttChannel>? channelFactory)
    {
        _logger = logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _channelFactory = channelFactory ?? (o => o.CreateChannel());
    }

    /// <summary>Called for each received message; QoS 1/2 acknowledgements go out after all handlers return.</summary>
    public event Func<MqttApplicationMessageReceivedEventArgs, Task>? ApplicationMessageReceivedAsync;

    /// <summary>Called after each successful connect, including automatic reconnects.</summary>
    public event Func<MqttClientConnectedEventArgs, Task>? ConnectedAsync;

    /// <summary>Called when a connection ends, and when an automatic reconnect attempt fails.</summary>
    public event Func<MqttClientDisconnectedEventArgs, Task>? DisconnectedAsync;

    /// <summary>Whether a connection is up.</summary>
    public bool IsConnected => Volatile.Read(ref _connection) is not null;

    /// <summary>The options of the last <see cref="ConnectAsync"/> or <see cref="StartAsync"/>.</summary>
    public MqttClientOptions? Options => _options;

    /// <summary>QoS 1/2 publishes sent and not yet fully acknowledged (including those waiting for a reconnect).</summary>
    public int PendingPublishCount
    {
        get
        {
            lock (_stateLock)
                return _outgoing.Count;
        }
    }

    /// <summary>Connects and returns the broker's CONNACK.</summary>
    /// <exception cref="MqttConnectingFailedException">The broker refused (see its reason code).</exception>
    /// <exception cref="MqttCommunicationTimedOutException">No CONNACK within <see cref="MqttClientOptions.Timeout"/>.</exception>
    public async Task<MqttClientConnectResult> ConnectAsync(MqttClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _connectGate.WaitAsync(cancellationToken);
        try
        {
            if (_connection is not null)
                throw new InvalidOperationException("the client is already connected");
            _options = options;
            _disconnectRequested = false;
            return await ConnectCoreAsync(options, cancellationToken);
        }
        finally
        {
            _connectGate.Release();
        }
    }

    /// <summary>
    /// Connects in the background and keeps reconnecting forever with backoff (the managed-client style, for a
    /// device that may boot before the network is up). Turns <see cref="MqttClientOptions.AutoReconnect"/> on.
    /// </summary>
    public Task StartAsync(MqttClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ObjectDisposedException.ThrowIf(_disposed, this);
        options.AutoReconnect = true;
        _options = options;
        _disconnectRequested = false;
        StartReconnectLoop(immediately: true);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Publishes a message. QoS 0 completes once the writer loop has it; QoS 1 when PUBACK arrives; QoS 2 when
    /// PUBCOMP arrives (or PUBREC carries a failure). A failure reason code from the broker is returned, not thrown.
    /// </summary>
    /// <remarks>With auto reconnect, a QoS 1/2 publish made while disconnected waits for the next connection.</remarks>
    /// <exception cref="MqttClientNotConnectedException">Not connected (and, for QoS 1/2, auto reconnect is off).</exception>
    /// <exception cref="MqttCommunicationTimedOutException">No acknowledgement within <see cref="MqttClientOptions.Timeout"/>.</exception>
    /// <exception cref="MqttClientDisconnectedException">The connection closed first and auto reconnect is off.</exception>
    public async Task<MqttClientPublishResult> PublishAsync(MqttApplicationMessage applicationMessage, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(applicationMessage);
        ObjectDisposedException.ThrowIf(_disposed, this);
        MqttTopic.ValidateTopicName(applicationMessage.Topic);
        if (applicationMessage.QualityOfServiceLevel > MqttQualityOfServiceLevel.ExactlyOnce)
            throw new ArgumentException("QoS must be 0, 1 or 2", nameof(applicationMessage));
        var options = _options ?? throw new MqttClientNotConnectedException();
        var packet = ToPublishPacket(applicationMessage);
        EnsureFitsBroker(packet, options);

        if (packet.QualityOfServiceLevel == MqttQualityOfServiceLevel.AtMostOnce)
        {
            var conn = Volatile.Read(ref _connection) ?? throw new MqttClientNotConnectedException();
            await conn.WaitForQos0SlotAsync(cancellationToken);
            if (!conn.Outbound.Writer.TryWrite(packet))
                throw new MqttClientNotConnectedException();
            return Qos0Result;
        }

        if ((!options.AutoReconnect || _disconnectRequested) && !IsConnected)
            throw new MqttClientNotConnectedException();
        await _quota.WaitAsync(cancellationToken);
        ushort id = 0;
        try
        {
            var responseType = packet.QualityOfServiceLevel == MqttQualityOfServiceLevel.AtLeastOnce ? MqttControlPacketType.PubAck : MqttControlPacketType.PubRec;
            Task<MqttPacket> firstAck;
            OutgoingPublish entry;
            lock (_stateLock)
            {
                if ((!options.AutoReconnect || _disconnectRequested) && _connection is null)
                    throw new MqttClientNotConnectedException();
                id = AllocatePacketIdentifier();
                packet.PacketIdentifier = id;
                entry = new OutgoingPublish(packet, ++_publishSequence);
                _outgoing.Add(id, entry);
                firstAck = _dispatcher.AddAwaitable(responseType, id);
                if (_connection is { } conn && conn.Outbound.Writer.TryWrite(packet))
                    entry.MarkSent(conn, _time.GetTimestamp());
            }

            if (responseType == MqttControlPacketType.PubAck)
            {
                var pubAck = await WaitForPublishAckAsync<MqttPubAckPacket>(entry, firstAck, "PUBACK", options, cancellationToken);
                return new MqttClientPublishResult(id, pubAck.ReasonCode, pubAck.ReasonString, pubAck.UserProperties);
            }

            var pubRec = await WaitForPublishAckAsync<MqttPubRecPacket>(entry, firstAck, "PUBREC", options, cancellationToken);
            if ((byte)pubRec.ReasonCode >= 0x80)
                return new MqttClientPublishResult(id, pubRec.ReasonCode, pubRec.ReasonString, pubRec.UserProperties);
            Task<MqttPacket> complete;
            lock (_stateLock)
            {
                entry.Released = true;
                complete = _dispatcher.AddAwaitable(MqttControlPacketType.PubComp, id);
                entry.MarkSent(null, 0);
                if (_connection is { } conn && conn.Outbound.Writer.TryWrite(new MqttPubRelPacket { PacketIdentifier = id }))
                    entry.MarkSent(conn, _time.GetTimestamp());
            }

            var pubComp = await WaitForPublishAckAsync<MqttPubCompPacket>(entry, complete, "PUBCOMP", options, cancellationToken);
            var code = pubRec.ReasonCode != MqttReasonCode.Success ? pubRec.ReasonCode : pubComp.ReasonCode;
            return new MqttClientPublishResult(id, code, pubComp.ReasonString ?? pubRec.ReasonString, pubRec.UserProperties);
        }
        finally
        {
            if (id != 0)
            {
                lock (_stateLock)
                {
                    _outgoing.Remove(id);
                    _idsInUse.Remove(id);
                }

                _dispatcher.Remove(MqttControlPacketType.PubAck, id);
                _dispatcher.Remove(MqttControlPacketType.PubRec, id);
                _dispatcher.Remove(MqttControlPacketType.PubComp, id);
            }

            _quota.Release();
        }
    }

    /// <summary>Subscribes and returns one result item per topic filter. A refusal is a result code, not an exception.</summary>
    /// <exception cref="ArgumentException">A topic filter is not valid (checked before anything is sent).</exception>
    public async Task<MqttClientSubscribeResult> SubscribeAsync(MqttClientSubscribeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.TopicFilters.Count == 0)
            throw new ArgumentException("subscribe to at least one topic filter", nameof(options));
        foreach (var filter in options.TopicFilters)
            MqttTopic.ValidateTopicFilter(filter.Topic);
        var clientOptions = _options ?? throw new MqttClientNotConnectedException();
        var conn = Volatile.Read(ref _connection) ?? throw new MqttClientNotConnectedException();
        var packet = new MqttSubscribePacket
        {
            TopicFilters = options.TopicFilters,
            SubscriptionIdentifier = options.SubscriptionIdentifier,
            UserProperties = options.UserProperties,
        };
        var (id, ack) = SendWithIdentifier(conn, packet, MqttControlPacketType.SubAck);
        try
        {
            var subAck = await WaitForAsync<MqttSubAckPacket>(ack, "SUBACK", clientOptions, cancellationToken);
            if (subAck.ReasonCodes.Count != options.TopicFilters.Count)
                throw new MqttProtocolException($"SUBACK has {subAck.ReasonCodes.Count} reason codes for {options.TopicFilters.Count} topic filters [MQTT-3.8.4-6]", MqttReasonCode.ProtocolError);
            var items = options.TopicFilters.Select((f, i) => new MqttClientSubscribeResultItem(f, (MqttClientSubscribeResultCode)subAck.ReasonCodes[i])).ToList();
            return new MqttClientSubscribeResult(id, items, subAck.ReasonString, subAck.UserProperties);
        }
        finally
        {
            ReleaseIdentifier(id, MqttControlPacketType.SubAck);
        }
    }

    /// <summary>Subscribes to one topic filter.</summary>
    public Task<MqttClientSubscribeResult> SubscribeAsync(string topic, MqttQualityOfServiceLevel qualityOfServiceLevel = MqttQualityOfServiceLevel.AtMostOnce, CancellationToken cancellationToken = default) =>
        SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter(topic, qualityOfServiceLevel).Build(), cancellationToken);

    /// <summary>Unsubscribes and returns one result item per topic filter.</summary>
    public async Task<MqttClientUnsubscribeResult> UnsubscribeAsync(MqttClientUnsubscribeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.TopicFilters.Count == 0)
            throw new ArgumentException("unsubscribe from at least one topic filter", nameof(options));
        foreach (var filter in options.TopicFilters)
            MqttTopic.ValidateTopicFilter(filter);
        var clientOptions = _options ?? throw new MqttClientNotConnectedException();
        var conn = Volatile.Read(ref _connection) ?? throw new MqttClientNotConnectedException();
        var packet = new MqttUnsubscribePacket { TopicFilters = options.TopicFilters, UserProperties = options.UserProperties };
        var (id, ack) = SendWithIdentifier(conn, packet, MqttControlPacketType.UnsubAck);
        try
        {
            var unsubAck = await WaitForAsync<MqttUnsubAckPacket>(ack, "UNSUBACK", clientOptions, cancellationToken);
            var items = options.TopicFilters.Select((f, i) => new MqttClientUnsubscribeResultItem(
                f, i < unsubAck.ReasonCodes.Count ? (MqttClientUnsubscribeResultCode)unsubAck.ReasonCodes[i] : MqttClientUnsubscribeResultCode.Success)).ToList();
            return new MqttClientUnsubscribeResult(id, items, unsubAck.ReasonString);
        }
        finally
        {
            ReleaseIdentifier(id, MqttControlPacketType.UnsubAck);
        }
    }

    /// <summary>Unsubscribes from one topic filter.</summary>
    public Task<MqttClientUnsubscribeResult> UnsubscribeAsync(string topic, CancellationToken cancellationToken = default) =>
        UnsubscribeAsync(new MqttClientUnsubscribeOptions { TopicFilters = [topic] }, cancellationToken);

    /// <summary>Sends PINGREQ and waits for PINGRESP.</summary>
    public async Task PingAsync(CancellationToken cancellationToken = default)
    {
        var options = _options ?? throw new MqttClientNotConnectedException();
        var conn = Volatile.Read(ref _connection) ?? throw new MqttClientNotConnectedException();
        var ack = _dispatcher.AddAwaitable(MqttControlPacketType.PingResp, 0);
        conn.Outbound.Writer.TryWrite(MqttPingReqPacket.Instance);
        try
        {
            await WaitForAsync<MqttPingRespPacket>(ack, "PINGRESP", options, cancellationToken);
        }
        finally
        {
            _dispatcher.Remove(MqttControlPacketType.PingResp, 0);
        }
    }

    /// <summary>Sends DISCONNECT (so the broker discards the will), closes the connection and stops reconnecting.</summary>
    public async Task DisconnectAsync(MqttClientDisconnectOptions? options = null, CancellationToken cancellationToken = default)
    {
        _disconnectRequested = true;
        var conn = Volatile.Read(ref _connection);
        if (conn is null)
            return;
        conn.ClosedByClient = true;
        var packet = new MqttDisconnectPacket
        {
            ReasonCode = options?.Reason ?? MqttReasonCode.Success,
            SessionExpiryInterval = options?.SessionExpiryInterval,
            ReasonString = options?.ReasonString,
        };
        conn.Outbound.Writer.TryWrite(packet);
        conn.Outbound.Writer.TryComplete();
        try
        {
            var timeout = _options?.Timeout ?? TimeSpan.FromSeconds(10);
            if (conn.WriterTask is { } writer)
                await writer.WaitAsync(timeout, _time, cancellationToken);
            using var closeTimeout = new CancellationTokenSource(timeout, _time);
            await conn.Adapter.Channel.CloseAsync(closeTimeout.Token);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The goal is a closed connection; a peer that is already gone is fine.
            conn.SetFault(e);
        }

        await TeardownAsync(conn);
    }

    /// <summary>Closes the connection (DISCONNECT if connected) and stops reconnecting.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
            return;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2), _time);
            await DisconnectAsync(null, timeout.Token);
        }
        catch (OperationCanceledException)
        {
        }

        _disposed = true;
        await _lifetime.CancelAsync();
        if (Volatile.Read(ref _connection) is { } conn)
            await TeardownAsync(conn);
        _dispatcher.FailAll(new ObjectDisposedException(nameof(MqttClient)), _ => true);
        if (_reconnectTask is { } reconnect)
            await reconnect.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _lifetime.Dispose();
    }

    /// <summary>Kills the socket without DISCONNECT, as a crash or a cut cable would (tests: last will, reconnect).</summary>
    internal void AbortConnection() => Volatile.Read(ref _connection)?.Adapter.Channel.Abort();

    // ---------------------------------------------------------------- connecting

    private async Task<MqttClientConnectResult> ConnectCoreAsync(MqttClientOptions options, CancellationToken cancellationToken)
    {
        var channel = _channelFactory(options);
        var adapter = new MqttChannelAdapter(channel, new MqttPacketFormatter(options.ProtocolVersion, options.MaximumPacketSize), _time);
        using var timeout = new CancellationTokenSource(options.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token, _lifetime.Token);
        MqttConnAckPacket connAck;
        try
        {
            await channel.ConnectAsync(linked.Token);
            await adapter.SendPacketAsync(BuildConnectPacket(options), linked.Token);
            var packet = await adapter.ReceivePacketAsync(linked.Token);
            connAck = packet switch
            {
                MqttConnAckPacket c => c,
                null => throw new MqttCommunicationException($"{options.Endpoint} closed the connection before CONNACK"),
                _ => throw new MqttProtocolException($"expected CONNACK, got {packet.Type} [MQTT-3.2.0-1]", MqttReasonCode.ProtocolError),
            };
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            await adapter.DisposeAsync();
            throw new MqttCommunicationTimedOutException($"no CONNACK from {options.Endpoint} within {options.Timeout.TotalSeconds} s");
        }
        catch
        {
            await adapter.DisposeAsync();
            throw;
        }

        var result = new MqttClientConnectResult(connAck);
        if (result.ResultCode != MqttClientConnectResultCode.Success)
        {
            await adapter.DisposeAsync();
            throw new MqttConnectingFailedException($"{options.Endpoint} refused the connection: {result.ResultCode} {result.ReasonString}", result);
        }

        var keepAlive = connAck.ServerKeepAlive is { } serverKeepAlive
            ? TimeSpan.FromSeconds(serverKeepAlive)
            : TimeSpan.FromSeconds(Math.Floor(options.KeepAlivePeriod.TotalSeconds));
        var conn = new Connection(adapter, result, keepAlive, options, _time);
        _quota.SetLimit(Math.Min(options.MaximumInflightPublishes, result.ReceiveMaximum));
        int resent;
        lock (_stateLock)
        {
            if (!connAck.SessionPresent)
                _incomingQos2.Clear(); // [MQTT-4.1.0-2]: a new session starts without state
            resent = ResendUnacknowledged(conn, connAck.SessionPresent);
            Volatile.Write(ref _connection, conn);
        }

        conn.IncomingTask = ProcessIncomingAsync(conn);
        conn.WriterTask = WriterLoopAsync(conn);
        conn.ReaderTask = ReaderLoopAsync(conn);
        conn.KeepAliveTask = KeepAliveLoopAsync(conn);
        MqttClientLog.Connected(_logger, options.Endpoint, conn.ClientId, options.ProtocolVersion == MqttProtocolVersion.V500 ? "5.0" : "3.1.1",
            connAck.SessionPresent, keepAlive.TotalSeconds, result.ReceiveMaximum, resent);
        await RaiseAsync(ConnectedAsync, new MqttClientConnectedEventArgs(result), nameof(ConnectedAsync));
        return result;
    }

    private static MqttConnectPacket BuildConnectPacket(MqttClientOptions o)
    {
        var v5 = o.ProtocolVersion == MqttProtocolVersion.V500;
        var p = new MqttConnectPacket
        {
            ProtocolVersion = o.ProtocolVersion,
            ClientId = o.ClientId,
            CleanSession = o.CleanSession,
            KeepAlivePeriod = (ushort)Math.Min(ushort.MaxValue, Math.Floor(o.KeepAlivePeriod.TotalSeconds)),
            Username = o.Username,
            Password = o.Password,
        };
        if (v5)
        {
            p.SessionExpiryInterval = o.SessionExpiryInterval == 0 ? null : o.SessionExpiryInterval;
            p.ReceiveMaximum = o.ReceiveMaximum == ushort.MaxValue ? null : o.ReceiveMaximum;
            p.MaximumPacketSize = o.MaximumPacketSize;
        }

        if (o.WillMessage is { } will)
        {
            MqttTopic.ValidateTopicName(will.Topic);
            p.WillTopic = will.Topic;
            p.WillPayload = will.Payload.ToArray();
            p.WillQoS = will.QualityOfServiceLevel;
            p.WillRetain = will.Retain;
            if (v5)
            {
                p.WillDelayInterval = o.WillDelayInterval;
                p.WillContentType = will.ContentType;
                p.WillResponseTopic = will.ResponseTopic;
                p.WillCorrelationData = will.CorrelationData;
                p.WillMessageExpiryInterval = will.MessageExpiryInterval;
                p.WillPayloadFormatIndicator = will.PayloadFormatIndicator;
                p.WillUserProperties = will.UserProperties;
            }
        }

        return p;
    }

    /// <summary>
    /// After a reconnect, send every QoS 1/2 publish still unacknowledged, in the original order
    /// ([MQTT-4.4.0-1]: with a resumed session, re-send with DUP; a released QoS 2 message re-sends PUBREL).
    /// </summary>
    private int ResendUnacknowledged(Connection conn, bool sessionPresent)
    {
        var count = 0;
        foreach (var entry in _outgoing.Values.OrderBy(e => e.Sequence))
        {
            if (entry.Released)
            {
                conn.Outbound.Writer.TryWrite(new MqttPubRelPacket { PacketIdentifier = entry.Packet.PacketIdentifier });
            }
            else
            {
                entry.Packet = entry.Packet.WithDup(sessionPresent);
                conn.Outbound.Writer.TryWrite(entry.Packet);
            }

            entry.MarkSent(conn, _time.GetTimestamp());

            count++;
        }

        return count;
    }

    private void StartReconnectLoop(bool immediately)
    {
        lock (_stateLock)
        {
            if (_reconnectTask is { IsCompleted: false } || _disposed)
                return;
            _reconnectTask = Task.Run(() => ReconnectLoopAsync(immediately));
        }
    }

    private async Task ReconnectLoopAsync(bool immediately)
    {
        var options = _options!;
        var attempt = 0;
        while (!_disconnectRequested && !_lifetime.IsCancellationRequested)
        {
            var delay = immediately && attempt == 0 ? TimeSpan.Zero : ReconnectDelay(options, attempt);
            attempt++;
            if (delay > TimeSpan.Zero)
            {
                MqttClientLog.Reconnecting(_logger, options.Endpoint, (long)delay.TotalMilliseconds, attempt);
                try
                {
                    await Task.Delay(delay, _time, _lifetime.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            if (_disconnectRequested)
                return;
            try
            {
                await _connectGate.WaitAsync(_lifetime.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                if (_connection is not null || _disconnectRequested)
                    return;
                await ConnectCoreAsync(options, _lifetime.Token);
                return;
            }
            catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                MqttClientLog.ConnectFailed(_logger, options.Endpoint, e);
                await RaiseAsync(DisconnectedAsync, new MqttClientDisconnectedEventArgs(false, false, null, null, e, (e as MqttConnectingFailedException)?.Result), nameof(DisconnectedAsync));
            }
            finally
            {
                _connectGate.Release();
            }
        }
    }

    /// <summary>Exponential backoff from the minimum, capped at the maximum, with jitter in [50 %, 100 %] so a fleet does not reconnect in step.</summary>
    internal static TimeSpan ReconnectDelay(MqttClientOptions options, int attempt)
    {
        var min = options.MinimumReconnectDelay.TotalMilliseconds;
        var max = Math.Max(min, options.MaximumReconnectDelay.TotalMilliseconds);
        var capped = Math.Min(max, min * Math.Pow(2, Math.Min(attempt, 30)));
        return TimeSpan.FromMilliseconds(capped * (0.5 + (Random.Shared.NextDouble() * 0.5)));
    }

    // ---------------------------------------------------------------- the connection's loops

    private async Task WriterLoopAsync(Connection conn)
    {
        var reader = conn.Outbound.Reader;
        var ct = conn.Cancellation.Token;
        try
        {
            while (await reader.WaitToReadAsync(ct))
            {
                var qos0 = 0;
                // Batch whatever is queued into one write (one WebSocket frame), bounded to keep latency low.
                while (conn.Adapter.PendingSendBytes < 64 * 1024 && reader.TryRead(out var packet))
                {
                    if (packet is MqttPublishPacket { QualityOfServiceLevel: MqttQualityOfServiceLevel.AtMostOnce })
                        qos0++;
                    try
                    {
                        conn.Adapter.Enqueue(packet);
                    }
                    catch (ArgumentException e)
                    {
                        // Bad application input (for example a lone surrogate in a property) fails that publish only.
                        MqttClientLog.EncodeFailed(_logger, packet.ToString() ?? "", e);
                        if (packet is MqttPublishPacket { PacketIdentifier: not 0 } p)
                        {
                            _dispatcher.Fail(p.QualityOfServiceLevel == MqttQualityOfServiceLevel.AtLeastOnce ? MqttControlPacketType.PubAck : MqttControlPacketType.PubRec, p.PacketIdentifier, e);
                        }
                    }
                }

                await conn.Adapter.FlushAsync(ct);
                conn.MarkSent();
                if (qos0 > 0)
                    conn.Qos0Slots.Release(qos0);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            conn.SetFault(e);
        }
    }

    private async Task ReaderLoopAsync(Connection conn)
    {
        await Task.Yield(); // run the loop off the connecting caller's stack
        var ct = conn.Cancellation.Token;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var packet = await conn.Adapter.ReceivePacketAsync(ct);
                if (packet is null)
                {
                    conn.SetFault(new MqttCommunicationException($"{conn.Endpoint} closed the connection"));
                    break;
                }

                if (packet is MqttDisconnectPacket disconnect)
                {
                    conn.ServerDisconnect = disconnect;
                    MqttClientLog.ServerDisconnected(_logger, conn.Endpoint, disconnect.ReasonCode, disconnect.ReasonString);
                    break;
                }

                await HandlePacketAsync(conn, packet, ct);
            }
        }
        catch (MqttProtocolException e)
        {
            MqttClientLog.ProtocolViolation(_logger, conn.Endpoint, e.Message);
            conn.RecordFault(e); // not SetFault: the writer must still be able to say why (DISCONNECT) before the close
            await SendDisconnectAfterViolationAsync(conn, e.ReasonCode);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            conn.SetFault(e);
        }

        await TeardownAsync(conn);
    }

    private async ValueTask HandlePacketAsync(Connection conn, MqttPacket packet, CancellationToken ct)
    {
        switch (packet)
        {
            case MqttPublishPacket publish:
                if (publish.TopicAlias is not null)
                    throw new MqttProtocolException("PUBLISH with a topic alias, but the client allows none (Topic Alias Maximum 0) [MQTT-3.3.2-9]", MqttReasonCode.TopicAliasInvalid);
                if (publish.QualityOfServiceLevel == MqttQualityOfServiceLevel.ExactlyOnce)
                {
                    bool isNew;
                    lock (_stateLock)
                        isNew = _incomingQos2.Add(publish.PacketIdentifier);
                    if (!isNew)
                    {
                        // Already delivered; the broker missed our PUBREC. Deliver once only (section 4.3.3).
                        conn.Outbound.Writer.TryWrite(new MqttPubRecPacket { PacketIdentifier = publish.PacketIdentifier });
                        return;
                    }
                }

                await conn.Incoming.Writer.WriteAsync(publish, ct);
                return;
            case MqttPubRelPacket pubRel:
                bool known;
                lock (_stateLock)
                    known = _incomingQos2.Remove(pubRel.PacketIdentifier);
                conn.Outbound.Writer.TryWrite(new MqttPubCompPacket
                {
                    PacketIdentifier = pubRel.PacketIdentifier,
                    ReasonCode = known ? MqttReasonCode.Success : MqttReasonCode.PacketIdentifierNotFound,
                });
                return;
            case MqttPubAckPacket or MqttPubRecPacket or MqttPubCompPacket or MqttSubAckPacket or MqttUnsubAckPacket:
                if (!_dispatcher.TryDispatch(packet))
                {
                    var id = ((IMqttPacketWithIdentifier)packet).PacketIdentifier;
                    MqttClientLog.UnexpectedAcknowledgement(_logger, packet.Type.ToString(), id);
                    if (packet is MqttPubRecPacket)
                    {
                        // Nobody waits any more (timed out), but the broker holds the message: release it so it
                        // does not sit in the broker's session forever (section 4.3.3).
                        conn.Outbound.Writer.TryWrite(new MqttPubRelPacket { PacketIdentifier = id });
                    }
                }

                return;
            case MqttPingRespPacket:
                _dispatcher.TryDispatch(packet);
                return;
            default:
                throw new MqttProtocolException($"{packet.Type} is not a packet a broker sends to a client", MqttReasonCode.ProtocolError);
        }
    }

    private async Task ProcessIncomingAsync(Connection conn)
    {
        await Task.Yield();
        try
        {
            await foreach (var publish in conn.Incoming.Reader.ReadAllAsync(conn.Cancellation.Token))
            {
                var args = new MqttApplicationMessageReceivedEventArgs(conn.ClientId, ToApplicationMessage(publish), publish.PacketIdentifier);
                if (!await RaiseAsync(ApplicationMessageReceivedAsync, args, nameof(ApplicationMessageReceivedAsync)) && args.ReasonCode == MqttReasonCode.Success)
                    args.ReasonCode = MqttReasonCode.ImplementationSpecificError;
                var reason = conn.Version == MqttProtocolVersion.V500 ? args.ReasonCode : MqttReasonCode.Success;
                switch (publish.QualityOfServiceLevel)
                {
                    case MqttQualityOfServiceLevel.AtLeastOnce:
                        conn.Outbound.Writer.TryWrite(new MqttPubAckPacket { PacketIdentifier = publish.PacketIdentifier, ReasonCode = reason });
                        break;
                    case MqttQualityOfServiceLevel.ExactlyOnce:
                        conn.Outbound.Writer.TryWrite(new MqttPubRecPacket { PacketIdentifier = publish.PacketIdentifier, ReasonCode = reason });
                        break;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task KeepAliveLoopAsync(Connection conn)
    {
        var keepAlive = conn.KeepAlive;
        if (keepAlive <= TimeSpan.Zero)
            return;
        var half = keepAlive / 2;
        var ct = conn.Cancellation.Token;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                // Dead when nothing at all arrived for a whole keep alive period: a PINGREQ went out after half
                // of it, so a live broker had half a period to answer. Detection is within 1x keep alive of the
                // last byte received, inside the 1.5x a broker allows itself [MQTT-3.1.2-24].
                var sinceReceived = _time.GetElapsedTime(conn.Adapter.LastReadTimestamp);
                if (sinceReceived >= keepAlive)
                {
                    MqttClientLog.KeepAliveTimeout(_logger, conn.Endpoint, sinceReceived.TotalSeconds, keepAlive.TotalSeconds);
                    conn.SetFault(new MqttCommunicationTimedOutException($"nothing received from {conn.Endpoint} for {sinceReceived.TotalSeconds:0.0} s (keep alive {keepAlive.TotalSeconds} s)"));
                    return;
                }

                var sinceSent = _time.GetElapsedTime(conn.LastSentTimestamp);
                var sincePing = _time.GetElapsedTime(conn.LastPingTimestamp);
                if (sinceSent >= half || (sinceReceived >= half && sincePing >= half))
                {
                    conn.LastPingTimestamp = _time.GetTimestamp();
                    conn.Outbound.Writer.TryWrite(MqttPingReqPacket.Instance);
                    sinceSent = TimeSpan.Zero;
                    sincePing = TimeSpan.Zero;
                }

                var next = keepAlive - sinceReceived;
                next = Min(next, half - sinceSent);
                next = Min(next, sinceReceived >= half ? half - sincePing : half - sinceReceived);
                await Task.Delay(Max(next, TimeSpan.FromMilliseconds(5)), _time, ct);
            }
        }
        catch (OperationCanceledException)
        {
        }

        static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
        static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
    }

    private async Task SendDisconnectAfterViolationAsync(Connection conn, MqttReasonCode reason)
    {
        // MQTT 5.0 section 4.13: tell the broker why before closing, when we can.
        if (conn.Version != MqttProtocolVersion.V500)
            return;
        conn.Outbound.Writer.TryWrite(new MqttDisconnectPacket { ReasonCode = reason });
        conn.Outbound.Writer.TryComplete();
        try
        {
            if (conn.WriterTask is { } writer)
                await writer.WaitAsync(TimeSpan.FromSeconds(1), _time);
        }
        catch (TimeoutException)
        {
        }
    }

    private async Task TeardownAsync(Connection conn)
    {
        if (Interlocked.Exchange(ref conn.Closed, 1) != 0)
            return;
        lock (_stateLock)
        {
            if (ReferenceEquals(_connection, conn))
                Volatile.Write(ref _connection, null);
        }

        await conn.Cancellation.CancelAsync();
        conn.Outbound.Writer.TryComplete();
        conn.Incoming.Writer.TryComplete();
        conn.Adapter.Channel.Abort();
        await conn.Adapter.Channel.DisposeAsync();

        var reconnect = _options is { AutoReconnect: true } && !_disconnectRequested && !_disposed;
        var lost = new MqttClientDisconnectedException($"the connection to {conn.Endpoint} closed", conn.Fault);
        // Subscribe, unsubscribe and ping answers die with the connection. Publishes wait for a reconnect
        // when there will be one (they are re-sent); otherwise they fail now.
        _dispatcher.FailAll(lost, t => reconnect ? t is MqttControlPacketType.SubAck or MqttControlPacketType.UnsubAck or MqttControlPacketType.PingResp : true);

        if (conn.ClosedByClient)
            MqttClientLog.Disconnected(_logger, conn.Endpoint);
        else
            MqttClientLog.ConnectionLost(_logger, conn.Endpoint, conn.Fault);
        await RaiseAsync(DisconnectedAsync, new MqttClientDisconnectedEventArgs(
            true, conn.ClosedByClient, conn.ServerDisconnect?.ReasonCode, conn.ServerDisconnect?.ReasonString, conn.ClosedByClient ? null : conn.Fault, null), nameof(DisconnectedAsync));
        if (reconnect)
            StartReconnectLoop(immediately: false);
    }

    // ---------------------------------------------------------------- helpers

    private (ushort Id, Task<MqttPacket> Ack) SendWithIdentifier<T>(Connection conn, T packet, MqttControlPacketType responseType)
        where T : MqttPacket
    {
        lock (_stateLock)
        {
            var id = AllocatePacketIdentifier();
            switch (packet)
            {
                case MqttSubscribePacket s: s.PacketIdentifier = id; break;
                case MqttUnsubscribePacket u: u.PacketIdentifier = id; break;
            }

            var ack = _dispatcher.AddAwaitable(responseType, id);
            if (!conn.Outbound.Writer.TryWrite(packet))
            {
                _idsInUse.Remove(id);
                _dispatcher.Remove(responseType, id);
                throw new MqttClientNotConnectedException();
            }

            return (id, ack);
        }
    }

    private void ReleaseIdentifier(ushort id, MqttControlPacketType responseType)
    {
        lock (_stateLock)
            _idsInUse.Remove(id);
        _dispatcher.Remove(responseType, id);
    }

    /// <summary>Next free packet identifier, cycling through 1..65535 so a late answer to an abandoned id is unlikely to meet a new request. Call under the state lock.</summary>
    private ushort AllocatePacketIdentifier()
    {
        for (var i = 0; i < ushort.MaxValue; i++)
        {
            _lastPacketId = _lastPacketId == ushort.MaxValue ? (ushort)1 : (ushort)(_lastPacketId + 1);
            if (_idsInUse.Add(_lastPacketId))
                return _lastPacketId;
        }

        throw new InvalidOperationException("all 65535 packet identifiers are in use");
    }

    private async Task<T> WaitForAsync<T>(Task<MqttPacket> ack, string what, MqttClientOptions options, CancellationToken cancellationToken)
        where T : MqttPacket
    {
        try
        {
            return (T)await ack.WaitAsync(options.Timeout, _time, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new MqttCommunicationTimedOutException($"no {what} from {options.Endpoint} within {options.Timeout.TotalSeconds} s");
        }
    }

    /// <summary>
    /// Waits for a publish acknowledgement. The timeout counts from when the packet went out on the current
    /// connection; with auto reconnect, time spent without a connection does not count (the packet is re-sent
    /// on the next one), so a publish made during an outage waits for the broker rather than failing. The
    /// caller's token still bounds the wait.
    /// </summary>
    private async Task<T> WaitForPublishAckAsync<T>(OutgoingPublish entry, Task<MqttPacket> ack, string what, MqttClientOptions options, CancellationToken cancellationToken)
        where T : MqttPacket
    {
        var wait = options.Timeout;
        while (true)
        {
            try
            {
                return (T)await ack.WaitAsync(wait, _time, cancellationToken);
            }
            catch (TimeoutException)
            {
                lock (_stateLock)
                {
                    var sentHere = entry.SentOn is not null && ReferenceEquals(entry.SentOn, _connection);
                    var waited = sentHere ? _time.GetElapsedTime(entry.SentAt) : TimeSpan.Zero;
                    if (_disconnectRequested && _connection is null)
                        throw new MqttClientNotConnectedException("the client was disconnected before the broker acknowledged");
                    if (!options.AutoReconnect || (sentHere && waited >= options.Timeout))
                        throw new MqttCommunicationTimedOutException($"no {what} from {options.Endpoint} within {options.Timeout.TotalSeconds} s");
                    wait = sentHere ? options.Timeout - waited : options.Timeout;
                }
            }
        }
    }

    private async Task<bool> RaiseAsync<TArgs>(Func<TArgs, Task>? handlers, TArgs args, string name)
    {
        if (handlers is null)
            return true;
        var ok = true;
        foreach (var handler in handlers.GetInvocationList().Cast<Func<TArgs, Task>>())
        {
            try
            {
                await handler(args);
            }
            catch (Exception e)
            {
                MqttClientLog.HandlerFailed(_logger, name, e);
                ok = false;
            }
        }

        return ok;
    }

    /// <summary>
    /// A 5.0 broker that announced a Maximum Packet Size closes the connection on a bigger packet
    /// [MQTT-3.2.2-15]; refuse such a message here instead, so one oversized message cannot make a
    /// reconnect loop. The exact size is only computed when the message is close to the limit.
    /// </summary>
    private void EnsureFitsBroker(MqttPublishPacket packet, MqttClientOptions options)
    {
        if (Volatile.Read(ref _connection)?.BrokerMaximumPacketSize is not { } max)
            return;
        var roughUpperBound = 16L + (3L * packet.Topic.Length) + packet.Payload.Length + (packet.UserProperties.Count * 8L)
            + (3L * ((packet.ContentType?.Length ?? 0) + (packet.ResponseTopic?.Length ?? 0) + packet.UserProperties.Sum(p => p.Name.Length + p.Value.Length)))
            + (packet.CorrelationData?.Length ?? 0) + 32;
        if (roughUpperBound <= max)
            return;
        var probe = packet.WithDup(false);
        if (probe.QualityOfServiceLevel != MqttQualityOfServiceLevel.AtMostOnce)
            probe.PacketIdentifier = 1;
        var size = new MqttPacketFormatter(options.ProtocolVersion).Encode(probe, new System.Buffers.ArrayBufferWriter<byte>());
        if (size > max)
            throw new ArgumentException($"the message is {size} bytes on the wire; the broker accepts at most {max} (its Maximum Packet Size)", nameof(packet));
    }

    private static MqttPublishPacket ToPublishPacket(MqttApplicationMessage m) => new()
    {
        Topic = m.Topic,
        Payload = m.Payload,
        QualityOfServiceLevel = m.QualityOfServiceLevel,
        Retain = m.Retain,
        ContentType = m.ContentType,
        ResponseTopic = m.ResponseTopic,
        CorrelationData = m.CorrelationData,
        MessageExpiryInterval = m.MessageExpiryInterval,
        PayloadFormatIndicator = m.PayloadFormatIndicator,
        UserProperties = m.UserProperties,
    };

    private static MqttApplicationMessage ToApplicationMessage(MqttPublishPacket p) => new()
    {
        Topic = p.Topic,
        Payload = p.Payload,
        QualityOfServiceLevel = p.QualityOfServiceLevel,
        Retain = p.Retain,
        Dup = p.Dup,
        ContentType = p.ContentType,
        ResponseTopic = p.ResponseTopic,
        CorrelationData = p.CorrelationData,
        MessageExpiryInterval = p.MessageExpiryInterval,
        PayloadFormatIndicator = p.PayloadFormatIndicator,
        UserProperties = p.UserProperties,
        SubscriptionIdentifiers = p.SubscriptionIdentifiers,
    };

    private sealed class OutgoingPublish(MqttPublishPacket packet, long sequence)
    {
        public MqttPublishPacket Packet { get; set; } = packet;

        public long Sequence { get; } = sequence;

        /// <summary>QoS 2: PUBREC arrived and PUBREL went out; a reconnect re-sends PUBREL, not the PUBLISH.</summary>
        public bool Released { get; set; }

        /// <summary>The connection the last copy went out on (null: not sent yet).</summary>
        public object? SentOn { get; private set; }

        public long SentAt { get; private set; }

        public void MarkSent(object? connection, long timestamp)
        {
            SentOn = connection;
            SentAt = timestamp;
        }
    }

    /// <summary>One network connection: its adapter, queues and loops. Replaced on every reconnect.</summary>
    private sealed class Connection
    {
        private readonly TimeProvider _time;
        private long _lastSentTimestamp;

        public Connection(MqttChannelAdapter adapter, MqttClientConnectResult result, TimeSpan keepAlive, MqttClientOptions options, TimeProvider time)
        {
            _time = time;
            Adapter = adapter;
            KeepAlive = keepAlive;
            Version = options.ProtocolVersion;
            Endpoint = options.Endpoint;
            ClientId = result.AssignedClientIdentifier ?? options.ClientId;
            BrokerMaximumPacketSize = result.MaximumPacketSize;
            Qos0Slots = new SemaphoreSlim(options.MaximumPendingMessages, options.MaximumPendingMessages);
            Incoming = Channel.CreateBounded<MqttPublishPacket>(new BoundedChannelOptions(Math.Max(16, (int)options.ReceiveMaximum))
            {
                SingleReader = true,
                SingleWriter = true,
            });
            _lastSentTimestamp = time.GetTimestamp();
            LastPingTimestamp = _lastSentTimestamp;
        }

        public MqttChannelAdapter Adapter { get; }

        public TimeSpan KeepAlive { get; }

        public MqttProtocolVersion Version { get; }

        public string Endpoint { get; }

        public string ClientId { get; }

        /// <summary>5.0: the largest packet the broker accepts, when it said.</summary>
        public uint? BrokerMaximumPacketSize { get; }

        /// <summary>Everything the writer loop sends. Unbounded: QoS 0 is bounded by <see cref="Qos0Slots"/>, QoS 1/2 by the send quota, acknowledgements by the broker's own window.</summary>
        public Channel<MqttPacket> Outbound { get; } = Channel.CreateUnbounded<MqttPacket>(new UnboundedChannelOptions { SingleReader = true });

        /// <summary>Received PUBLISH packets waiting for the handlers; bounded, so a slow handler slows the reader (TCP backpressure).</summary>
        public Channel<MqttPublishPacket> Incoming { get; }

        public SemaphoreSlim Qos0Slots { get; }

        public CancellationTokenSource Cancellation { get; } = new();

        public long LastSentTimestamp => Interlocked.Read(ref _lastSentTimestamp);

        public long LastPingTimestamp { get; set; }

        public Exception? Fault { get; private set; }

        public MqttDisconnectPacket? ServerDisconnect { get; set; }

        public bool ClosedByClient { get; set; }

        public Task? ReaderTask { get; set; }

        public Task? WriterTask { get; set; }

        public Task? KeepAliveTask { get; set; }

        public Task? IncomingTask { get; set; }

#pragma warning disable SA1401, CA1051 // Interlocked needs a field.
        public int Closed;
#pragma warning restore SA1401, CA1051

        public void MarkSent() => Interlocked.Exchange(ref _lastSentTimestamp, _time.GetTimestamp());

        public void RecordFault(Exception e)
        {
            lock (this)
                Fault ??= e;
        }

        public void SetFault(Exception e)
        {
            RecordFault(e);
            Adapter.Channel.Abort();
            Cancellation.Cancel();
        }

        public async ValueTask WaitForQos0SlotAsync(CancellationToken cancellationToken)
        {
            if (Qos0Slots.Wait(0, CancellationToken.None))
                return;
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, Cancellation.Token);
            try
            {
                await Qos0Slots.WaitAsync(linked.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new MqttClientNotConnectedException("the connection closed while the message waited to be sent");
            }
        }
    }
}
