using System.Net.WebSockets;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Threading;
using Pinhole.Transport.Media;
using System.Diagnostics.Metrics;
using Pinhole.Transport.Uplink;
using Pinhole.Transport.WebSockets;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// The device's one outbound uplink (docs/uplink-protocol.md), run as the <c>uplink</c> pipeline.
/// Cameras write into <see cref="GetSink"/>; frames wait in a queue bounded in time and leave over
/// whichever relay in <see cref="UplinkClientOptions.Relays"/> answers, reconnecting forever with
/// capped, jittered backoff.
/// </summary>
public sealed class UplinkClient : IPipeline, Telemetry.IRelayStreamOpener
{
    private readonly SemaphoreSlim _runLock = new(1, 1);
    private volatile UplinkClientOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly UplinkSendQueue _queue;
    private readonly Dictionary<string, CameraSink> _sinks = new(StringComparer.Ordinal);
    private readonly Lock _sinksLock = new();
    // What the client counts for itself; the instruments below only publish.
    private long _framesSentCount;
    private readonly Counter<long> _framesSent, _bytesSent, _connects, _deadLinks, _fallbacks;
    private readonly Gauge<double> _rttGauge, _inFlightGauge, _rateGauge, _connectedGauge, _transportGauge;
    private volatile Uri? _connectedRelay;
    private volatile int _transport = -1; // an UplinkTransport while connected
    private long _rttMicros = -1, _bytesInFlight;

    /// <summary>Creates the client; nothing connects until <see cref="RunAsync"/>.</summary>
    public UplinkClient(UplinkClientOptions options, Meter meter, ILoggerFactory loggerFactory, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        if (options.Relays.Count == 0) throw new ArgumentException("at least one relay URL is needed", nameof(options));
        _options = options;
        ArgumentNullException.ThrowIfNull(meter);
        _time = time ?? TimeProvider.System;
        _logger = loggerFactory.CreateLogger<UplinkClient>();
        _queue = new UplinkSendQueue(options.QueueDuration, options.QueueMaxBytes, _time, meter) { TargetDelay = options.TargetDelay };
        _framesSent = meter.CreateCounter<long>("pinhole_uplink_frames_sent_total", description: "Access units sent over the uplink.");
        _bytesSent = meter.CreateCounter<long>("pinhole_uplink_bytes_sent_total", description: "Media bytes sent over the uplink.");
        _connects = meter.CreateCounter<long>("pinhole_uplink_connects_total", description: "Uplink sessions established.");
        _deadLinks = meter.CreateCounter<long>("pinhole_uplink_dead_links_total", description: "Uplinks abandoned because heartbeats stopped.");
        _rttGauge = meter.CreateGauge<double>("pinhole_uplink_rtt_seconds", description: "Uplink round-trip time from the latest ack or pong.");
        _inFlightGauge = meter.CreateGauge<double>("pinhole_uplink_bytes_in_flight", description: "Media bytes sent but not yet acknowledged by the relay.");
        _rateGauge = meter.CreateGauge<double>("pinhole_uplink_link_rate_bytes_per_second", description: "The uplink's measured rate: what the link carried while busy over the last 5 s, else the delivery rate of the last 2 s; 0 before the first acks.");
        _connectedGauge = meter.CreateGauge<double>("pinhole_uplink_connected", description: "1 while the uplink is connected to this relay.");
        _fallbacks = meter.CreateCounter<long>("pinhole_uplink_http_fallbacks_total", description: "WebSocket upgrades refused on the way (a proxy stripped Upgrade) and retried over HTTP streaming.");
        _transportGauge = meter.CreateGauge<double>("pinhole_uplink_transport", description: "1 for the transport the uplink uses now (websocket or http).");
        _fallbacks.Add(0);
        // Counters start at 0 in the exposition, as they did before the first event.
        _deadLinks.Add(0);
        _connects.Add(0);
        _framesSent.Add(0);
        _bytesSent.Add(0);
        InitRelayGauges(options);
    }

    private void InitRelayGauges(UplinkClientOptions options)
    {
        foreach (var relay in options.Relays)
            _connectedGauge.Record(0, new KeyValuePair<string, object?>("relay", RelayLabel(relay)));
    }

    /// <inheritdoc />
    public string Name => "uplink";

    /// <summary>The data channel's user (the fleet agent). Set before the first connect; null offers no data channel.</summary>
    public IUplinkDataHandler? DataHandler { get; set; }

    /// <summary>Accepts tunnel streams the relay opens (the tunnel agent). Set before the first connect; null offers no tunnel channel.</summary>
    public Action<TunnelStream>? TunnelHandler { get; set; }

    /// <summary>Takes media the relay sends down (the LAN RTSP server). Set before the first connect; null does not offer
    /// <see cref="UplinkCapabilities.InboundMedia"/>, so the relay answers publishers "device does not support inbound media".</summary>
    public Inbound.IInboundMediaHandler? InboundMedia { get; set; }

    /// <summary>Windows and limits of tunnel streams (the round-trip time comes from this client).</summary>
    public TunnelOptions TunnelOptions { get; set; } = new();

    /// <summary>Tunnel streams open on the current connection (0 while disconnected).</summary>
    public int OpenTunnels => Volatile.Read(ref _sending)?.Tunnels?.Count ?? 0;

    /// <summary>True while connected to a relay that takes streams this device opens to its services
    /// (<see cref="UplinkCapabilities.DeviceStreams"/>, e.g. <c>mqtt</c>: the relay's telemetry broker).</summary>
    public bool RelayServicesAvailable => Volatile.Read(ref _sending) is { Tunnels: not null } s && (s.Welcome.Capabilities & UplinkCapabilities.DeviceStreams) != 0;

    /// <summary>
    /// Opens a stream through the uplink to the relay's service <paramref name="service"/> (<c>mqtt</c>: its telemetry
    /// broker) and waits for the relay to connect it. The stream ends with the uplink connection it was opened on.
    /// </summary>
    /// <exception cref="TunnelResetException">Not connected, the relay takes no device streams, has no such service or could not reach it.</exception>
    public Task<TunnelStream> OpenRelayStreamAsync(string service, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _sending) is not { Tunnels: { } mux } state)
            throw new TunnelResetException(TunnelResetCode.Cancelled, "the uplink is not connected");
        if ((state.Welcome.Capabilities & UplinkCapabilities.DeviceStreams) == 0)
            throw new TunnelResetException(TunnelResetCode.NotExposed, "the relay takes no streams from devices (an older relay)");
        return mux.OpenAsync(service, cancellationToken);
    }

    /// <summary>Data-channel features offered beyond configuration (<see cref="UplinkCapabilities.Updates"/> when the device takes updates). Only with a <see cref="DataHandler"/>.</summary>
    public UplinkCapabilities DataFeatures { get; set; }

    /// <summary>Heartbeats come with every message received and every connection attempt, so a stall is longer than
    /// the slowest path through a failed attempt plus the longest backoff.</summary>
    public TimeSpan StallTimeout => StallTimeoutFor(_options);

    private static TimeSpan StallTimeoutFor(UplinkClientOptions o) => o.DeadLinkTimeout + o.ConnectTimeout + o.BackoffMax + TimeSpan.FromSeconds(30);

    /// <summary>The relay the uplink is connected to now, or null.</summary>
    public Uri? ConnectedRelay => _connectedRelay;

    /// <summary>What carries the uplink now (<see cref="UplinkTransport.WebSocket"/> or the HTTP fallback), or null when not connected.</summary>
    public UplinkTransport? Transport => _transport < 0 ? null : (UplinkTransport)_transport;

    /// <summary>The metrics and status name of a transport: <c>websocket</c> or <c>http</c>.</summary>
    public static string TransportName(UplinkTransport transport) => transport == UplinkTransport.Http ? "http" : "websocket";

    /// <summary>Latest round-trip time, or null before the first ack or pong.</summary>
    public TimeSpan? RoundTripTime { get { var v = Interlocked.Read(ref _rttMicros); return v < 0 ? null : TimeSpan.FromMicroseconds(v); } }

    /// <summary>Media bytes sent and not yet acknowledged.</summary>
    public long BytesInFlight => Interlocked.Read(ref _bytesInFlight);

    /// <summary>The link's measured rate in bytes per second: what it carried while busy (highest over 10 s), else the delivery rate of the last 2 s; 0 while disconnected or before the first acks.</summary>
    public long LinkBytesPerSecond => Interlocked.Read(ref _linkBytesPerSecond);

    private long _linkBytesPerSecond;

    /// <summary>Frames sent since start.</summary>
    public long FramesSent => Interlocked.Read(ref _framesSentCount);

    /// <summary>The send queue (for status and tests).</summary>
    public UplinkSendQueue Queue => _queue;

    /// <summary>The sink a camera pipeline writes into. One per camera name; the same object on every call.</summary>
    /// <exception cref="ArgumentException">The name is not a valid camera name.</exception>
    public IMediaSink GetSink(string camera)
    {
        if (!UplinkProtocol.IsValidCameraName(camera))
            throw new ArgumentException($"camera name '{camera}' must be 1-64 of A-Z a-z 0-9 . _ -", nameof(camera));
        lock (_sinksLock)
        {
            if (!_sinks.TryGetValue(camera, out var sink))
                _sinks[camera] = sink = new CameraSink(this, _queue.AddCamera(camera));
            return sink;
        }
    }

    /// <summary>The camera's source stopped (it failed, or its pipeline was stopped): after its queued frames, the
    /// relay marks the camera offline at once instead of viewers waiting on silence. New tracks start it again.</summary>
    public void EndStream(string camera)
    {
        var queue = _queue.Cameras.FirstOrDefault(c => c.Name == camera);
        if (queue is not null) _queue.EndStream(queue);
    }

    /// <summary>Frames dropped for <paramref name="camera"/> since start (0 for an unknown camera).</summary>
    public long DroppedFrames(string camera) => _queue.Cameras.FirstOrDefault(c => c.Name == camera)?.DroppedFrames ?? 0;

    /// <summary>
    /// A fresh <c>uplink</c> pipeline over this client's queue and camera sinks, with new settings
    /// (relays, token, CA, proxy, timers) that take effect when it starts. The supervisor calls this for
    /// every (re)start and config change; runs never overlap (a new run waits for the previous one to
    /// end), and queued frames and camera sinks survive. Queue bounds stay those of the constructor.
    /// </summary>
    public IPipeline CreatePipeline(UplinkClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Relays.Count == 0) throw new ArgumentException("at least one relay URL is needed", nameof(options));
        return new UplinkPipeline(this, options);
    }

    /// <inheritdoc />
    public Task RunAsync(IPipelineContext context, CancellationToken cancellationToken) => RunWithAsync(null, context, cancellationToken);

    private async Task RunWithAsync(UplinkClientOptions? options, IPipelineContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        await _runLock.WaitAsync(cancellationToken);
        try
        {
            if (options is not null && !ReferenceEquals(options, _options))
            {
                _options = options;
                InitRelayGauges(options);
            }
            await RunLoopAsync(context, cancellationToken);
        }
        finally
        {
            _runLock.Release();
        }
    }

    private sealed class UplinkPipeline(UplinkClient client, UplinkClientOptions options) : IPipeline
    {
        public string Name => "uplink";
        public TimeSpan StallTimeout => StallTimeoutFor(options);
        public Task RunAsync(IPipelineContext context, CancellationToken cancellationToken) => client.RunWithAsync(options, context, cancellationToken);
    }

    private async Task RunLoopAsync(IPipelineContext context, CancellationToken cancellationToken)
    {
        foreach (var relay in _options.Relays)
            if (relay.Scheme == "ws") UplinkClientLog.Insecure(_logger, relay);

        var index = 0;
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            var relay = _options.Relays[index];
            context.Heartbeat();
            context.SetStatus($"connecting to {relay}");
            var started = _time.GetTimestamp();
            var outcome = await RunSessionAsync(relay, context, cancellationToken);
            if (cancellationToken.IsCancellationRequested) break;

            TimeSpan delay;
            if (outcome == SessionOutcome.Ended)
            {
                // It worked for a while: come back to the same relay soon. A session that dies at once counts as a failure.
                var lasted = _time.GetElapsedTime(started);
                failures = lasted > _options.DeadLinkTimeout ? 0 : failures + 1;
                delay = Backoff(failures);
            }
            else
            {
                // Next relay at once; a whole round of failures backs off.
                index = (index + 1) % _options.Relays.Count;
                if (index != 0) continue;
                delay = Backoff(failures++);
            }
            context.SetStatus($"disconnected; retrying in {delay.TotalSeconds:0.0} s");
            UplinkClientLog.Backoff(_logger, delay);
            await Task.Delay(delay, _time, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        cancellationToken.ThrowIfCancellationRequested();
    }

    private TimeSpan Backoff(int failures)
    {
        var max = _options.BackoffMax.TotalMilliseconds;
        var ceiling = Math.Min(max, _options.BackoffInitial.TotalMilliseconds * Math.Pow(2, Math.Min(failures, 30)));
        // Equal jitter: half fixed, half random, so a fleet that lost its relay does not return in lockstep.
        return TimeSpan.FromMilliseconds(ceiling / 2 + Random.Shared.NextDouble() * ceiling / 2);
    }

    // The in-flight window before the first delivery-rate sample, and its floor.
    private const long MinWindowBytes = 16 * 1024;
    // How far back the link's rate (busy intervals only) and the delivery rate (all intervals) look.
    private static readonly TimeSpan RateFilterWindow = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan DeliveryRateWindow = TimeSpan.FromSeconds(2);

    private enum SessionOutcome { Failed, Refused, Ended }

    private async Task<SessionOutcome> RunSessionAsync(Uri relay, IPipelineContext context, CancellationToken cancellationToken)
    {
        var connect = new UplinkConnectOptions
        {
            Headers =
            [
                new(UplinkProtocol.DeviceHeader, _options.DeviceId),
                new("Authorization", "Bearer " + _options.Token),
                new(UplinkProtocol.VersionHeader, UplinkProtocol.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ],
            TrustedCa = _options.TrustedCa,
            // Null means the environment: HTTPS_PROXY / HTTP_PROXY / NO_PROXY (wss goes through HTTPS_PROXY).
            Proxy = _options.Proxy,
            ConnectTimeout = _options.ConnectTimeout,
            Limits = _options.Limits,
        };

        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        UplinkClientConnection? link = null;
        try
        {
            using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                connectTimeout.CancelAfter(_options.ConnectTimeout);
                try
                {
                    link = await ConnectLinkAsync(relay, connect, connectTimeout);
                }
                catch (UplinkHandshakeException e) when (e.StatusCode != 0)
                {
                    var reason = e.Headers.TryGetValue(UplinkProtocol.RejectHeader, out var value) ? value : "no reason given";
                    UplinkClientLog.Refused(_logger, relay, $"HTTP {e.StatusCode} {reason}");
                    context.SetStatus($"refused by {relay}: HTTP {e.StatusCode} {reason}");
                    return SessionOutcome.Refused;
                }

                // Hello and welcome are the first bytes either way: the hello fits any socket buffer, and
                // the welcome is read on a thread of its own (the connection's reads block).
                using var abortOnTimeout = connectTimeout.Token.UnsafeRegister(static l => ((UplinkClientConnection)l!).Abort(), link);
                var offered = UplinkCapabilities.Media | UplinkCapabilities.DropReports | (DataHandler is null ? 0 : UplinkCapabilities.Data | DataFeatures)
                    | (TunnelHandler is null ? 0 : UplinkCapabilities.Tunnel | UplinkCapabilities.DeviceStreams)
                    | (InboundMedia is null ? 0 : UplinkCapabilities.InboundMedia);
                link.Send(new Hello(UplinkProtocol.Version, UplinkProtocol.Version, offered, _options.Agent), connectTimeout.Token);
                var welcoming = Task.Factory.StartNew(link.Receive, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                UplinkMessage? answer;
                try
                {
                    answer = await welcoming.WaitAsync(connectTimeout.Token);
                }
                catch (IOException) when (connectTimeout.IsCancellationRequested)
                {
                    throw new OperationCanceledException(connectTimeout.Token);
                }
                switch (answer)
                {
                    case Welcome welcome when welcome.Version == UplinkProtocol.Version:
                        abortOnTimeout.Dispose();
                        await RunConnectedAsync(relay, link, welcome, context, session);
                        return SessionOutcome.Ended;
                    case Reject reject:
                        UplinkClientLog.Refused(_logger, relay, $"{reject.Reason.ToToken()}: {reject.Text}");
                        context.SetStatus($"refused by {relay}: {reject.Reason.ToToken()}");
                        return SessionOutcome.Refused;
                    default:
                        UplinkClientLog.ConnectFailed(_logger, relay, $"expected welcome, got {answer?.GetType().Name ?? "close"}");
                        return SessionOutcome.Failed;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            UplinkClientLog.ConnectFailed(_logger, relay, $"no answer within {_options.ConnectTimeout.TotalSeconds:0.#} s");
            return SessionOutcome.Failed;
        }
        catch (TimeoutException) when (!cancellationToken.IsCancellationRequested)
        {
            UplinkClientLog.ConnectFailed(_logger, relay, $"no answer within {_options.ConnectTimeout.TotalSeconds:0.#} s");
            return SessionOutcome.Failed;
        }
        catch (Exception e) when (e is IOException or UplinkProtocolException or WebSocketFramingException
                                     or System.Security.Authentication.AuthenticationException or System.Net.Sockets.SocketException)
        {
            UplinkClientLog.ConnectFailed(_logger, relay, Describe(e));
            return SessionOutcome.Failed;
        }
        catch (OperationCanceledException)
        {
            return SessionOutcome.Ended;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            // Anything else (a proxy answering garbage, a platform TLS error type) is still just a
            // failed attempt: log it and try the next relay rather than take the pipeline down.
            UplinkClientLog.ConnectFailed(_logger, relay, Describe(e));
            return SessionOutcome.Failed;
        }
        finally
        {
            link?.Dispose();
        }
    }

    // A WebSocket first (unless config says http); when the upgrade is answered with anything but 101 and the answer
    // is not the relay's own refusal of this device, something between us stripped Upgrade: go over HTTP instead.
    // The same when the upgrade gets no answer at all within UpgradeTimeout (a middlebox that holds upgrades until its
    // own timeout): the HTTP attempt then gets a whole connect timeout of its own.
    private async Task<UplinkClientConnection> ConnectLinkAsync(Uri relay, UplinkConnectOptions connect, CancellationTokenSource connectTimeout)
    {
        var cancellationToken = connectTimeout.Token;
        if (_options.Transport == UplinkTransportChoice.Http) return await UplinkClientConnection.ConnectHttpAsync(relay, connect, cancellationToken);
        try
        {
            var webSocket = _options.Transport == UplinkTransportChoice.Auto && _options.UpgradeTimeout < _options.ConnectTimeout
                ? connect with { UpgradeTimeout = _options.UpgradeTimeout }
                : connect;
            return await UplinkClientConnection.ConnectAsync(relay, webSocket, cancellationToken);
        }
        catch (UplinkHandshakeException e) when (_options.Transport == UplinkTransportChoice.Auto && UpgradeBlocked(e))
        {
            UplinkClientLog.FallingBackToHttp(_logger, relay, $"HTTP {e.StatusCode} {e.Message}".Trim());
            _fallbacks.Add(1);
            return await UplinkClientConnection.ConnectHttpAsync(relay, connect, cancellationToken);
        }
        catch (UplinkUpgradeTimeoutException) when (_options.Transport == UplinkTransportChoice.Auto && !cancellationToken.IsCancellationRequested)
        {
            UplinkClientLog.UpgradeHungFallingBackToHttp(_logger, relay, _options.UpgradeTimeout.TotalSeconds);
            _fallbacks.Add(1);
            connectTimeout.CancelAfter(_options.ConnectTimeout);
            return await UplinkClientConnection.ConnectHttpAsync(relay, connect, cancellationToken);
        }
    }

    /// <summary>
    /// True when an answer to the WebSocket upgrade says the upgrade did not get through (a proxy stripped
    /// <c>Upgrade</c>, or answered itself), rather than that the relay refused this device: no
    /// <c>Pinhole-Reject</c> header, or the relay's <c>bad-request</c> (it saw no upgrade).
    /// </summary>
    internal static bool UpgradeBlocked(UplinkHandshakeException e) =>
        e.StatusCode != 0 && (!e.Headers.TryGetValue(UplinkProtocol.RejectHeader, out var reject) || reject == UplinkReason.BadRequest.ToToken());

    private static string Describe(Exception e)
    {
        var parts = new List<string>();
        for (var x = e; x is not null; x = x.InnerException) parts.Add(x.Message);
        return string.Join(" -> ", parts.Distinct());
    }

    private static string RelayLabel(Uri relay) => relay.GetLeftPart(UriPartial.Path);

    // ------------------------------------------------------------------ one connected session

    private async Task RunConnectedAsync(Uri relay, UplinkClientConnection link, Welcome welcome, IPipelineContext context, CancellationTokenSource session)
    {
        _connects.Add(1);
        _connectedRelay = relay;
        var relayLabel = new KeyValuePair<string, object?>("relay", RelayLabel(relay));
        _connectedGauge.Record(1, relayLabel);
        UplinkClientLog.Connected(_logger, relay, welcome.Version);
        _transport = (int)link.Transport;
        var transportName = TransportName(link.Transport);
        var transportLabel = new KeyValuePair<string, object?>("transport", transportName);
        _transportGauge.Record(0, new KeyValuePair<string, object?>("transport", TransportName(link.Transport == UplinkTransport.Http ? UplinkTransport.WebSocket : UplinkTransport.Http)));
        _transportGauge.Record(1, transportLabel);
        context.SetStatus($"connected to {relay} over {transportName}");
        context.Heartbeat();

        var state = new ConnectionState(link, welcome, _time.GetTimestamp(), _time);
        if ((welcome.Capabilities & UplinkCapabilities.Tunnel) != 0 && TunnelHandler is { } accepting)
            state.Tunnels = new TunnelMux(new EdgeTunnelTransport(state, _queue), TunnelOptions with
            {
                RoundTripTime = () => RoundTripTime,
                OpensHighIds = true,
                // Messages sized to the link, so a frame never waits long behind one: the budget's rate, else the acks'.
                DataMessageBytes = () => state.Link.SendQueue is { } socket ? state.TunnelBudget.MessageBytes(socket) : TunnelMessageSize.ForRate(LinkBytesPerSecond),
            }, _time) { Accepting = accepting };
        _queue.ResetForNewConnection();
        var stopping = session.Token;
        using var work = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        state.Sending = work.Token;
        // A pong or close answer the receiving thread could not hand to the kernel at once is the
        // sender's to push out.
        link.ReplyPending = _queue.Pulse;
        Volatile.Write(ref _sending, state);
        // Relay messages (acks several times a second) are read on a thread of their own, blocking: one
        // wake-up per message, where an async receive woke the epoll thread and pool workers too.
        // The periodic checks (dead link, pings, drop reports) run on that thread while it waits,
        // not on a timer that would wake the timer thread and a pool worker every tick.
        link.WhileWaiting(HousekeepingTick(welcome), () => Housekeep(relay, state));
        var handler = DataHandler;
        var dataConfirmed = handler is not null && (welcome.Capabilities & UplinkCapabilities.Data) != 0;
        handler?.OnConnected(relay, dataConfirmed ? message =>
        {
            if (!state.Link.IsOpen || !state.Control.Writer.TryWrite(message)) return false;
            _queue.Pulse();
            return true;
        } : null);
        var receive = DedicatedThread.Run("uplink-read", () => ReceiveLoop(relay, state, context));
        var send = DedicatedThread.Run("uplink-send", () => SendLoop(state, work.Token));
        var stopped = Task.Delay(Timeout.Infinite, stopping);
        try
        {
            var first = await Task.WhenAny(receive, send, stopped);
            Volatile.Write(ref _sending, null);
            await work.CancelAsync();
            await send.ContinueWith(_ => { }, TaskScheduler.Default);
            // Stopping cancels the sender too, and it may finish before `stopped` does: what matters
            // is whether the device is stopping, not which task noticed first.
            var shuttingDown = first == stopped || stopping.IsCancellationRequested;
            if (shuttingDown && link.IsOpen)
            {
                // Shutting down: say goodbye and let the relay answer the close.
                var goodbye = new Goodbye(UplinkReason.Shutdown, "device shutting down");
                await Task.Factory.StartNew(() => link.Close(goodbye, (ushort)WebSocketCloseStatus.NormalClosure, goodbye.Reason.ToToken(), TimeSpan.FromSeconds(1)),
                    CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                await Task.WhenAny(receive, Task.Delay(TimeSpan.FromSeconds(1), _time));
            }
            link.Abort();
            await receive.ContinueWith(_ => { }, TaskScheduler.Default);
            var failure = new[] { receive, send }.Select(t => t.Exception?.InnerException).FirstOrDefault(e => e is not null and not OperationCanceledException);
            var reason = shuttingDown ? "device shutting down" : state.EndReason ?? (failure is not null ? Describe(failure) : "closed");
            UplinkClientLog.Ended(_logger, relay, reason);
        }
        finally
        {
            Volatile.Write(ref _sending, null);
            state.Control.Writer.TryComplete();
            state.TunnelOut.Writer.TryComplete();
            state.Tunnels?.Dispose();
            handler?.OnDisconnected();
            InboundMedia?.OnDisconnected();
            _connectedRelay = null;
            _connectedGauge.Record(0, relayLabel);
            _transport = -1;
            _transportGauge.Record(0, transportLabel);
            Interlocked.Exchange(ref _bytesInFlight, 0);
            _inFlightGauge.Record(0);
            Interlocked.Exchange(ref _linkBytesPerSecond, 0);
            _rateGauge.Record(0);
        }
    }

    private sealed class ConnectionState(UplinkClientConnection link, Welcome welcome, long now, TimeProvider time)
    {
        public UplinkClientConnection Link { get; } = link;
        public Welcome Welcome { get; } = welcome;
        public long LastReceived = now;
        public long LastPing = now, LastReport = now;
        public string? EndReason;
        public readonly Channel<UplinkMessage> Control = Channel.CreateUnbounded<UplinkMessage>(new UnboundedChannelOptions { SingleReader = true });
        // Tunnel data and half-closes: sent only when no frame is waiting (video first), bounded so a
        // bulk transfer waits in its stream's window rather than in memory here.
        public readonly Channel<UplinkMessage> TunnelOut = Channel.CreateBounded<UplinkMessage>(new BoundedChannelOptions(16) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        public TunnelMux? Tunnels;
        public readonly System.Collections.Concurrent.ConcurrentDictionary<ushort, IReadOnlyList<TrackInfo>> Announced = new();
        public readonly Dictionary<ushort, long> ReportedDrops = [];
        public readonly Lock InFlightLock = new();
        public readonly Queue<(ulong Sequence, long SentAt)> InFlight = new();
        public readonly Queue<(long At, long Bytes, double Seconds)> RateSamples = new();
        public readonly LinkRateFilter LinkRate = new(time, RateFilterWindow);
        public long SentAtLastAck;
        public long LastAckAt, LastAckBytes;
        public long WindowBytes = MinWindowBytes;
        public long LowWatermark = MinWindowBytes;
        public double BytesPerSecond;
        public long AckedBytes;
        public ulong Sequence;

        // Sending: whoever holds PumpLock sends, the sender thread or a camera's thread inline. A send
        // the kernel did not take at once leaves bytes pending in the connection; only the sender
        // thread sends after that, and it flushes them first, so messages keep their order.
        public readonly Lock PumpLock = new();
        public CancellationToken Sending;
        // A frame whose StreamAnnounce is still pending; it goes right after it.
        public QueuedFrame? Carry;
        // Set by the pump when tunnel data waits for the socket's backlog to drain: how long until it looks again.
        public TimeSpan? TunnelPoll;
        public readonly TunnelBudget TunnelBudget = new(time);
    }

    private void ReceiveLoop(Uri relay, ConnectionState state, IPipelineContext context)
    {
        while (true)
        {
            var message = state.Link.Receive();
            Volatile.Write(ref state.LastReceived, _time.GetTimestamp());
            context.Heartbeat();
            switch (message)
            {
                case null:
                    state.EndReason ??= "relay closed the connection";
                    return;
                case Ack ack:
                    OnAck(state, ack);
                    break;
                case Ping ping:
                    state.Control.Writer.TryWrite(new Pong(ping.Timestamp));
                    _queue.Pulse();
                    break;
                case Pong pong:
                    SetRtt(NowMicros() - pong.Timestamp);
                    break;
                case Goodbye bye:
                    state.EndReason = $"relay said goodbye: {bye.Reason.ToToken()}: {bye.Text}";
                    if (bye.Reason == UplinkReason.Replaced) UplinkClientLog.Refused(_logger, relay, state.EndReason);
                    break;
                case ConfigPush push when (state.Welcome.Capabilities & UplinkCapabilities.Data) != 0 && DataHandler is { } handler:
                    handler.OnMessage(push);
                    break;
                case ConfigPush:
                    break; // the data channel was not confirmed: ignore, as a v1 device would
                case UpdateOffer or UpdateChunk when (state.Welcome.Capabilities & (UplinkCapabilities.Data | UplinkCapabilities.Updates)) == (UplinkCapabilities.Data | UplinkCapabilities.Updates) && DataHandler is { } updates:
                    updates.OnMessage(message);
                    break;
                case UpdateOffer or UpdateChunk:
                    break; // updates not confirmed: ignore, as a device without them would
                case TunnelOpen or TunnelAccept or TunnelData or TunnelWindow or TunnelClose or TunnelReset:
                    state.Tunnels?.OnMessage(message); // ignored when tunnels were not confirmed, as a device without them would
                    break;
                case InboundAnnounce or InboundFrame or InboundEnd when (state.Welcome.Capabilities & UplinkCapabilities.InboundMedia) != 0 && InboundMedia is { } inbound:
                    inbound.OnMessage(message);
                    break;
                case InboundAnnounce or InboundFrame or InboundEnd:
                    break; // inbound media not confirmed: ignore, as a device without it would
                case UnknownMessage:
                    break; // a newer relay's extension; v1 skips it
                default:
                    throw new UplinkProtocolException($"{message.GetType().Name} is not valid from a relay once connected");
            }
        }
    }

    private void OnAck(ConnectionState state, Ack ack)
    {
        var now = NowMicros();
        var rtt = (long)now - (long)ack.EchoTimestamp - ack.AckDelayMicros;
        if (ack.EchoTimestamp != 0 && ack.EchoTimestamp <= now) SetRtt((ulong)Math.Max(0, rtt));
        var at = _time.GetTimestamp();
        lock (state.InFlightLock)
        {
            while (state.InFlight.Count > 0 && state.InFlight.Peek().Sequence <= ack.Sequence) state.InFlight.Dequeue();

            // Delivery rate from the relay's byte count between acks; the window is what the link
            // delivers in MaxUnackedAge, so queued bytes in socket buffers stay within that much delay.
            // Rates are bytes over time summed across many acks, never the best single interval: the
            // relay acks on a timer, and an ack that waited for a busy thread followed by one on time
            // makes an interval a few milliseconds long that "delivered" a quarter second of bytes.
            // The best of those read twice the real rate of a 1 Mbit/s link, and the queue then sent
            // frames that could not arrive in time.
            var dt = _time.GetElapsedTime(state.LastAckAt, at);
            if (state.LastAckAt != 0 && dt >= TimeSpan.FromMilliseconds(20))
            {
                var delivered = (long)ack.BytesReceived - state.LastAckBytes;
                state.RateSamples.Enqueue((at, delivered, dt.TotalSeconds));
                while (_time.GetElapsedTime(state.RateSamples.Peek().At, at) > DeliveryRateWindow) state.RateSamples.Dequeue();
                var rate = LinkRateFilter.RateOf(state.RateSamples);
                state.WindowBytes = Math.Max(MinWindowBytes, (long)(rate * _options.MaxUnackedAge.TotalSeconds));

                // What the link itself can carry, for dropping frames that would arrive too late
                // (busy samples only; see LinkRateFilter).
                var link = state.LinkRate.Add(at, delivered, dt.TotalSeconds, busy: (long)ack.BytesReceived < state.SentAtLastAck);
                state.BytesPerSecond = link > 0 ? Math.Max(link, rate) : 0;
                var measured = link > 0 ? state.BytesPerSecond : rate;
                _rateGauge.Record(measured);
                Interlocked.Exchange(ref _linkBytesPerSecond, (long)measured);

                // The kernel keeps at most SendBacklog of the link's time unsent: the rest waits in
                // the queue, where a slow link drops by GOP instead of adding delay.
                var lowWatermark = (long)(measured * _options.SendBacklog.TotalSeconds);
                if (lowWatermark > state.LowWatermark * 5 / 4 || lowWatermark < state.LowWatermark * 3 / 4)
                {
                    state.LowWatermark = lowWatermark;
                    state.Link.SetSendLowWatermark((int)Math.Min(int.MaxValue, lowWatermark));
                }
            }
            state.SentAtLastAck = state.Link.MediaBytesSent;
            state.LastAckAt = at;
            state.LastAckBytes = (long)ack.BytesReceived;
            state.AckedBytes = (long)ack.BytesReceived;
        }
        var inFlight = Math.Max(0, state.Link.MediaBytesSent - (long)ack.BytesReceived);
        Interlocked.Exchange(ref _bytesInFlight, inFlight);
        _inFlightGauge.Record(inFlight);
        // An ack can only let frames move that wait in the queue (held back by congestion); with
        // none queued, waking the sender at every ack would be for nothing.
        if (_queue.HasFrames) _queue.Pulse();
    }

    private void SetRtt(ulong micros)
    {
        Interlocked.Exchange(ref _rttMicros, (long)micros);
        _rttGauge.Record(micros / 1e6);
    }

    // The connection frames are sent on, while it is up; camera threads read it to send inline.
    private ConnectionState? _sending;

    // Sending runs where it costs least. A camera's thread that just queued a frame sends it itself
    // when nobody else is sending and the socket takes it at once (the usual case on a healthy link):
    // no thread is woken. Otherwise the sender thread (below) is pulsed and carries on, blocking on
    // the socket when the link is slow while the time-bounded queue drops by GOP. Before, every frame
    // woke a sender on the thread pool, and the pool woke more threads to keep up parallelism: about
    // fourteen futex calls per frame, most of the edge's CPU at 30 fps.
    private void SendInlineOrWake()
    {
        var state = Volatile.Read(ref _sending);
        if (state is null || !state.PumpLock.TryEnter())
        {
            _queue.Pulse();
            return;
        }
        var done = false;
        try
        {
            done = Pump(state, inline: true);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The link failed under this camera's thread; end the connection as the sender would.
            state.EndReason ??= "send failed: " + Describe(e);
            state.Link.Abort();
        }
        finally
        {
            state.PumpLock.Exit();
        }
        if (!done) _queue.Pulse();
    }

    // The sender thread: sends what camera threads left (control messages, announcements, a send
    // that did not finish at once, frames while the link is slow), blocking where it has to.
    private void SendLoop(ConnectionState state, CancellationToken ct)
    {
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            lock (state.PumpLock) Pump(state, inline: false);
            // Every change that can let the pump move on pulses the queue: a frame a camera thread
            // could not send, a control message, an ended stream, an ack (congestion only eases with
            // acks), and stopping (the wait is cancelled). Tunnel data held back by the socket's backlog
            // has no such signal: the pump looks again after the time the backlog needs to drain.
            if (state.TunnelPoll is { } poll)
            {
                state.TunnelPoll = null;
                _queue.Wait(poll, ct);
            }
            else _queue.Wait(ct);
        }
    }

    // Sends until nothing is sendable (true) or, inline, until a send did not finish at once (false:
    // the sender thread takes over). The caller holds PumpLock.
    private bool Pump(ConnectionState state, bool inline)
    {
        var ct = state.Sending;
        if (inline && ct.IsCancellationRequested) return false;
        if (state.Link.HasPendingBytes)
        {
            if (inline) return false;
            state.Link.FlushPending(ct); // the sender thread waits here; a failure ends the connection
        }
        if (state.Carry is { } carried)
        {
            state.Carry = null;
            if (!SendFrame(state, carried, inline)) return false;
        }
        var maxPayload = state.Welcome.MaxMessageBytes - (UplinkProtocol.FrameHeaderSize - UplinkProtocol.HeaderSize);
        while (!ct.IsCancellationRequested)
        {
            while (state.Control.Reader.TryRead(out var control))
                if (!Sent(state, state.Link.TrySend(control), inline)) return false;
            while (_queue.TryTakeEnded(out var ended))
            {
                // Only a stream the relay knows this connection; the next frame re-announces it.
                if (state.Announced.TryRemove(ended!.StreamId, out _)
                    && !Sent(state, state.Link.TrySend(new StreamEnd(ended.StreamId)), inline)) return false;
            }

            // Delay must not hide in socket buffers: while the oldest unacknowledged frame is too
            // old, hold frames back here, where the time-bounded queue can drop them by GOP.
            bool congested;
            long unacked;
            double rate;
            long ahead;
            lock (state.InFlightLock)
            {
                unacked = state.Link.MediaBytesSent - state.AckedBytes;
                rate = state.BytesPerSecond;
                congested = state.InFlight.Count > 0
                    && (_time.GetElapsedTime(state.InFlight.Peek().SentAt) > _options.MaxUnackedAge || unacked >= state.WindowBytes);
                // What still has to cross the link before a new frame: the relay acks every quarter
                // second or so, and what the link delivered since the last ack is no longer ahead.
                // Counting it (as before) made every frame look up to an ack interval later than it
                // would be, and the queue dropped frames that would have arrived in time.
                ahead = state.LastAckAt == 0 ? unacked
                    : Math.Max(0, unacked - (long)(rate * _time.GetElapsedTime(state.LastAckAt).TotalSeconds));
            }
            if (congested) return true;
            if (!_queue.TryDequeue(out var frame, ahead, rate))
            {
                // Nothing of video waits: tunnel data may go (by the sender thread only, which may block on it),
                // as long as the socket does not already hold more than SendBacklog of the link's time beyond
                // its RTT: bulk bytes in flight sit in the bottleneck's queue ahead of the next frame.
                if (inline || state.TunnelOut.Reader.Count == 0 || TunnelHeldBack(state)) return true;
                if (!state.TunnelOut.Reader.TryRead(out var tunnel)) return true;
                Sent(state, state.Link.TrySend(tunnel), inline: false);
                continue;
            }
            var camera = frame.Camera;
            if (frame.Unit.Data.Length > maxPayload)
            {
                UplinkClientLog.FrameTooLarge(_logger, camera.Name, frame.Unit.Data.Length);
                camera.Drop(frame.Unit.Data.Length);
                continue;
            }
            if (!state.Announced.TryGetValue(camera.StreamId, out var announced) || !ReferenceEquals(announced, frame.Tracks))
            {
                state.Announced[camera.StreamId] = frame.Tracks;
                if (!Sent(state, state.Link.TrySend(new StreamAnnounce(camera.StreamId, camera.Name, frame.Tracks)), inline))
                {
                    state.Carry = frame;
                    return false;
                }
            }
            if (!SendFrame(state, frame, inline)) return false;
        }
        return true;
    }

    // Tunnel bytes count against a budget below the queue (TunnelBudget). Without it a bulk stream, sent whenever no frame
    // waited, grew TCP's window into the bottleneck's queue (200 ms of it behind a tbf cap), and every frame waited behind it:
    // +370 ms at the 95th percentile with a 4 Mbit/s camera on a 20 Mbit/s link (benchmark tunnel). When held back, the
    // sender looks again once the excess should have drained.
    private static bool TunnelHeldBack(ConnectionState state)
    {
        if (state.Link.SendQueue is not { } socket) return false; // no TCP_INFO: as before, video-first only
        if (!state.TunnelBudget.HeldBack(socket, out var poll)) return false;
        state.TunnelPoll = poll;
        return true;
    }

    private bool SendFrame(ConnectionState state, QueuedFrame frame, bool inline)
    {
        var camera = frame.Camera;
        var sequence = ++state.Sequence;
        lock (state.InFlightLock) state.InFlight.Enqueue((sequence, _time.GetTimestamp()));
        var taken = state.Link.TrySendFrame(sequence, camera.StreamId, NowMicros(), frame.Unit);
        Interlocked.Increment(ref _framesSentCount);
        _framesSent.Add(1);
        _bytesSent.Add(UplinkProtocol.FrameHeaderSize + frame.Unit.Data.Length);
        camera.CountSent();
        return Sent(state, taken, inline);
    }

    // A message the kernel took at once costs nothing more. Otherwise its tail is pending: the sender
    // thread pushes it out now, and a camera thread leaves it to the sender thread (false).
    private static bool Sent(ConnectionState state, bool taken, bool inline)
    {
        if (taken) return true;
        if (inline) return false;
        state.Link.FlushPending(state.Sending);
        return true;
    }

    private TimeSpan Heartbeat(Welcome welcome) =>
        welcome.HeartbeatInterval < _options.HeartbeatInterval ? welcome.HeartbeatInterval : _options.HeartbeatInterval;

    // A quarter of the shorter of heartbeat and dead-link timeout, between 10 ms and 1 s.
    private TimeSpan HousekeepingTick(Welcome welcome) =>
        TimeSpan.FromMilliseconds(Math.Clamp(Math.Min(Heartbeat(welcome).TotalMilliseconds, _options.DeadLinkTimeout.TotalMilliseconds) / 4, 10, 1000));

    // Runs on the receiving thread about once a tick (see WhileWaiting), so never concurrently.
    private void Housekeep(Uri relay, ConnectionState state)
    {
        if (!state.Link.IsOpen) return;
        state.Tunnels?.Reap();
        var tick = HousekeepingTick(state.Welcome);
        var silence = _time.GetElapsedTime(Volatile.Read(ref state.LastReceived));
        // One tick early, so detection never takes longer than DeadLinkTimeout.
        if (silence + tick > _options.DeadLinkTimeout)
        {
            state.EndReason = $"dead link: nothing received for {silence.TotalSeconds:0.0} s";
            UplinkClientLog.DeadLink(_logger, relay, silence);
            _deadLinks.Add(1);
            state.Link.Abort();
            return;
        }
        if (_time.GetElapsedTime(state.LastPing) >= Heartbeat(state.Welcome))
        {
            state.LastPing = _time.GetTimestamp();
            state.Control.Writer.TryWrite(new Ping(NowMicros()));
            _queue.Pulse();
        }
        if ((state.Welcome.Capabilities & UplinkCapabilities.DropReports) != 0 && _time.GetElapsedTime(state.LastReport) >= _options.DropReportInterval)
        {
            state.LastReport = _time.GetTimestamp();
            foreach (var camera in _queue.Cameras)
            {
                // Only for streams the relay knows on this connection; totals are cumulative.
                if (!state.Announced.ContainsKey(camera.StreamId)) continue;
                var dropped = camera.DroppedFrames;
                if (state.ReportedDrops.TryGetValue(camera.StreamId, out var reported) && reported == dropped) continue;
                state.ReportedDrops[camera.StreamId] = dropped;
                state.Control.Writer.TryWrite(new DropReport(camera.StreamId, (ulong)dropped, (ulong)camera.DroppedBytes));
                _queue.Pulse();
            }
        }
    }

    private ulong NowMicros() => (ulong)(_time.GetTimestamp() * (1_000_000.0 / _time.TimestampFrequency));

    // Tunnel control messages ride the control queue (ahead of video, they are small); data and
    // half-closes ride the tunnel queue, which the sender drains only when no frame waits.
    private sealed class EdgeTunnelTransport(ConnectionState state, UplinkSendQueue queue) : ITunnelTransport
    {
        public bool SendControl(UplinkMessage message)
        {
            if (!state.Link.IsOpen || !state.Control.Writer.TryWrite(message)) return false;
            queue.Pulse();
            return true;
        }

        public async ValueTask SendDataAsync(UplinkMessage message, CancellationToken cancellationToken)
        {
            try
            {
                await state.TunnelOut.Writer.WriteAsync(message, cancellationToken);
            }
            catch (ChannelClosedException e)
            {
                throw new IOException("the uplink ended", e);
            }
            queue.Pulse();
        }
    }

    private sealed class CameraSink(UplinkClient client, CameraQueue camera) : IMediaSink
    {
        public void OnTracks(IReadOnlyList<TrackInfo> tracks) => client._queue.SetTracks(camera, tracks);

        public void OnAccessUnit(in AccessUnit unit)
        {
            if (client._queue.EnqueueQuietly(camera, unit)) client.SendInlineOrWake();
        }
    }
}
