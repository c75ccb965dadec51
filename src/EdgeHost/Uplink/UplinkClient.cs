using System.Diagnostics.Metrics;
using System.Net.WebSockets;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Threading;
using Pinhole.Transport.Media;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// The device's one outbound uplink (docs/uplink-protocol.md), run as the <c>uplink</c> pipeline.
/// Cameras write into <see cref="GetSink"/>; frames wait in a queue bounded in time and leave over
/// whichever relay in <see cref="UplinkClientOptions.Relays"/> answers, reconnecting forever with
/// capped, jittered backoff.
/// </summary>
/// <remarks>
/// This class is the reconnect loop and the run of one connected session; the jobs inside a session are their own
/// types: <see cref="UplinkConnector"/> (connect and handshake), <see cref="UplinkSession"/> (the protocol's rules,
/// shared with the relay), <see cref="UplinkSender"/>, <see cref="UplinkReceiver"/>, <see cref="UplinkTunnelTransport"/>,
/// <see cref="UplinkCameraSink"/> and <see cref="UplinkClientMetrics"/>.
/// </remarks>
public sealed class UplinkClient : IPipeline, Telemetry.IRelayStreamOpener
{
    private readonly SemaphoreSlim _runLock = new(1, 1);
    private volatile UplinkClientOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly UplinkSendQueue _queue;
    private readonly UplinkClientMetrics _metrics;
    private readonly Dictionary<string, UplinkCameraSink> _sinks = new(StringComparer.Ordinal);
    private readonly Lock _sinksLock = new();
    private volatile Uri? _connectedRelay;
    private volatile int _transport = -1; // an UplinkTransport while connected
    // The current connection's sender, while it is up; camera threads use it to send inline.
    private UplinkSender? _sending;

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
        _metrics = new UplinkClientMetrics(meter);
        _metrics.InitRelays(options);
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
    public int OpenTunnels => Volatile.Read(ref _sending)?.Connection.Tunnels?.Count ?? 0;

    /// <summary>True while connected to a relay that takes streams this device opens to its services
    /// (<see cref="UplinkCapabilities.DeviceStreams"/>, e.g. <c>mqtt</c>: the relay's telemetry broker).</summary>
    public bool RelayServicesAvailable => Volatile.Read(ref _sending)?.Connection is { Tunnels: not null } s && (s.Welcome.Capabilities & UplinkCapabilities.DeviceStreams) != 0;

    /// <summary>
    /// Opens a stream through the uplink to the relay's service <paramref name="service"/> (<c>mqtt</c>: its telemetry
    /// broker) and waits for the relay to connect it. The stream ends with the uplink connection it was opened on.
    /// </summary>
    /// <exception cref="TunnelResetException">Not connected, the relay takes no device streams, has no such service or could not reach it.</exception>
    public Task<TunnelStream> OpenRelayStreamAsync(string service, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _sending)?.Connection is not { Tunnels: { } mux } state)
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
    public TimeSpan? RoundTripTime => _metrics.RoundTripTime;

    /// <summary>Media bytes sent and not yet acknowledged.</summary>
    public long BytesInFlight => _metrics.BytesInFlight;

    /// <summary>The link's measured rate in bytes per second: what it carried while busy (highest over 10 s), else the delivery rate of the last 2 s; 0 while disconnected or before the first acks.</summary>
    public long LinkBytesPerSecond => _metrics.LinkBytesPerSecond;

    /// <summary>Frames sent since start.</summary>
    public long FramesSent => _metrics.FramesSent;

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
                _sinks[camera] = sink = new UplinkCameraSink(this, _queue.AddCamera(camera));
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
                _metrics.InitRelays(options);
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
                delay = UplinkBackoff.Delay(failures, _options.BackoffInitial, _options.BackoffMax);
            }
            else
            {
                // Next relay at once; a whole round of failures backs off.
                index = (index + 1) % _options.Relays.Count;
                if (index != 0) continue;
                delay = UplinkBackoff.Delay(failures++, _options.BackoffInitial, _options.BackoffMax);
            }
            context.SetStatus($"disconnected; retrying in {delay.TotalSeconds:0.0} s");
            UplinkClientLog.Backoff(_logger, delay);
            await Task.Delay(delay, _time, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        cancellationToken.ThrowIfCancellationRequested();
    }

    private async Task<SessionOutcome> RunSessionAsync(Uri relay, IPipelineContext context, CancellationToken cancellationToken)
    {
        var offered = UplinkCapabilities.Media | UplinkCapabilities.DropReports | (DataHandler is null ? 0 : UplinkCapabilities.Data | DataFeatures)
            | (TunnelHandler is null ? 0 : UplinkCapabilities.Tunnel | UplinkCapabilities.DeviceStreams)
            | (InboundMedia is null ? 0 : UplinkCapabilities.InboundMedia);
        var connector = new UplinkConnector(_options, _metrics, _time, _logger);
        var (outcome, link, protocol) = await connector.ConnectAsync(relay, offered, context, cancellationToken);
        if (link is null) return outcome;
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            await RunConnectedAsync(relay, link, protocol!, context, session);
            return SessionOutcome.Ended;
        }
        catch (Exception e)
        {
            return connector.Classify(relay, e, protocol, cancellationToken);
        }
        finally
        {
            link.Dispose();
        }
    }

    internal static string Describe(Exception e)
    {
        var parts = new List<string>();
        for (var x = e; x is not null; x = x.InnerException) parts.Add(x.Message);
        return string.Join(" -> ", parts.Distinct());
    }

    // ------------------------------------------------------------------ one connected session

    private async Task RunConnectedAsync(Uri relay, UplinkClientConnection link, UplinkSession protocol, IPipelineContext context, CancellationTokenSource session)
    {
        var welcome = protocol.Welcome!;
        _connectedRelay = relay;
        _metrics.Connected(relay, link.Transport);
        UplinkClientLog.Connected(_logger, relay, welcome.Version);
        _transport = (int)link.Transport;
        context.SetStatus($"connected to {relay} over {TransportName(link.Transport)}");
        context.Heartbeat();

        var state = new UplinkConnection(link, protocol, _time);
        if ((welcome.Capabilities & UplinkCapabilities.Tunnel) != 0 && TunnelHandler is { } accepting)
            state.Tunnels = new TunnelMux(new UplinkTunnelTransport(state, _queue), TunnelOptions with
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
        var sender = new UplinkSender(state, _queue, _options, _metrics, _time, _logger);
        var handler = DataHandler;
        var receiver = new UplinkReceiver(relay, state, _queue, _options, _metrics, _time, _logger, handler, InboundMedia);
        Volatile.Write(ref _sending, sender);
        // Relay messages (acks several times a second) are read on a thread of their own, blocking: one
        // wake-up per message, where an async receive woke the epoll thread and pool workers too.
        // The periodic checks (dead link, pings, drop reports) run on that thread while it waits,
        // not on a timer that would wake the timer thread and a pool worker every tick.
        link.WhileWaiting(protocol.TickInterval, receiver.Housekeep);
        var dataConfirmed = handler is not null && (welcome.Capabilities & UplinkCapabilities.Data) != 0;
        handler?.OnConnected(relay, dataConfirmed ? message =>
        {
            if (!state.Link.IsOpen || !state.Control.Writer.TryWrite(message)) return false;
            _queue.Pulse();
            return true;
        } : null);
        var receive = DedicatedThread.Run("uplink-read", () => receiver.Run(context));
        var send = DedicatedThread.Run("uplink-send", () => sender.Run(work.Token));
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
            var reason = shuttingDown ? "device shutting down" : protocol.EndReason ?? (failure is not null ? Describe(failure) : "closed");
            protocol.Closed(reason);
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
            _transport = -1;
            _metrics.Disconnected(relay, link.Transport);
        }
    }

    // A camera's thread that just queued a frame: send it inline when it can, else wake the sender thread.
    internal void SendInlineOrWake()
    {
        var sender = Volatile.Read(ref _sending);
        if (sender is null || !sender.TrySendInline()) _queue.Pulse();
    }

    internal UplinkSendQueue SendQueue => _queue;
}
