using System.Net.WebSockets;
using Microsoft.Extensions.Logging;
using Pinhole.Relay.Security;
using Pinhole.Streaming;
using Pinhole.Transport.Media;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Uplink;

/// <summary>
/// One device's uplink on the relay, from the accepted WebSocket to its end: hello/accept, feeding
/// the stream hub, merged acks, heartbeats and dead-link detection (docs/uplink-protocol.md). The session's
/// rules (handshake checks, heartbeats, dead link, end reason) are <see cref="UplinkSession"/>'s, shared with
/// the device; this class does the relay's I/O around them.
/// </summary>
public sealed class RelayUplinkSession
{
    private readonly UplinkWebSocket _link;
    private readonly UplinkEndpointOptions _options;
    private readonly MediaStreamRegistry _streams;
    private readonly UplinkSessionRegistry _sessions;
    private readonly UplinkMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IUplinkSessionObserver? _observer;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Dictionary<ushort, AnnouncedStream> _announced = [];
    private readonly HashSet<ushort> _refusedStreams = [];
    private readonly RefusalLog? _refusals;
    private readonly KeyValuePair<string, object?> _device;
    private readonly string? _remote;
    private readonly Lock _ackLock = new();
    private readonly UplinkSession _session;
    private ulong _lastSequence, _ackedSequence, _lastSendTimestamp;
    private long _lastFrameAt;
    private readonly CancellationTokenSource _ended = new();
    private int _nextInboundId;
    private volatile bool _welcomed;

    /// <summary>True once the device was welcomed (its <see cref="Capabilities"/> are known); a session is
    /// registered a moment before.</summary>
    internal bool IsWelcomed => _welcomed;

    internal RelayUplinkSession(string deviceId, string? remote, WebSocket socket, UplinkEndpointOptions options, MediaStreamRegistry streams,
        UplinkSessionRegistry sessions, UplinkMetrics metrics, TimeProvider time, ILogger logger, IUplinkSessionObserver? observer = null, RefusalLog? refusals = null,
        UplinkTransport transport = UplinkTransport.WebSocket)
    {
        DeviceId = deviceId;
        Transport = transport;
        _refusals = refusals;
        _remote = remote;
        _observer = observer;
        _options = options;
        _link = new UplinkWebSocket(socket, options.Limits);
        _streams = streams;
        _sessions = sessions;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _device = new("device", deviceId);
        _session = new UplinkSession(UplinkRole.Relay, options.HelloTimeout, options.HeartbeatInterval, options.DeadLinkTimeout, time);
    }

    /// <summary>The authenticated device.</summary>
    public string DeviceId { get; }

    /// <summary>The device's address as the relay sees it (its NAT's public address, or a proxy's).</summary>
    public string? RemoteAddress => _remote;

    /// <summary>What carries this session: a WebSocket, or the HTTP fallback (docs/uplink-protocol.md §1a).</summary>
    public UplinkTransport Transport { get; }

    /// <summary><see cref="Transport"/> as the fleet view and metrics name it: <c>websocket</c> or <c>http</c>.</summary>
    public string TransportName => Transport == UplinkTransport.Http ? "http" : "websocket";

    /// <summary>The device's software, from its hello (empty before it).</summary>
    public string Agent { get; private set; } = "";

    /// <summary>Features both sides confirmed in the welcome.</summary>
    public UplinkCapabilities Capabilities { get; private set; }

    /// <summary>The session's tunnel streams; null when the device did not confirm the tunnel channel (an older device).</summary>
    public TunnelMux? Tunnels { get; private set; }

    /// <summary>Round-trip time of the latest relay ping, or null before the first pong.</summary>
    public TimeSpan? RoundTripTime => _session.RoundTripTime;

    /// <summary>When the session was welcomed.</summary>
    public DateTimeOffset ConnectedAt { get; private set; }

    /// <summary>Sends one message to the device (data channel: configuration). Thread-safe; fails when the session ended.</summary>
    internal async ValueTask SendAsync(UplinkMessage message, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stop.Token);
        await _link.SendAsync(message, linked.Token);
    }

    /// <summary>
    /// Starts sending a published stream down this uplink (WAN to LAN media); false when the device did not
    /// confirm <see cref="UplinkCapabilities.InboundMedia"/>, the session is ending, or the stream has its sender.
    /// </summary>
    /// <param name="stream">The published stream.</param>
    /// <param name="publicationEnded">Cancelled when the publisher stops.</param>
    /// <param name="sessionEnded">Called once when this session ends first.</param>
    internal bool TryStartInbound(MediaStream stream, CancellationToken publicationEnded, Action sessionEnded)
    {
        if ((Capabilities & UplinkCapabilities.InboundMedia) == 0 || _ended.IsCancellationRequested) return false;
        var subscription = stream.Subscribe();
        if (subscription is null) return false;
        var id = (ushort)Interlocked.Increment(ref _nextInboundId);
        CancellationToken session;
        try
        {
            session = _ended.Token;
            session.Register(sessionEnded);
        }
        catch (ObjectDisposedException)
        {
            subscription.Dispose();
            return false;
        }
        _ = RunInboundAsync(subscription, id, publicationEnded, session);
        return true;
    }

    private async Task RunInboundAsync(MediaSubscription subscription, ushort id, CancellationToken publicationEnded, CancellationToken session)
    {
        await Task.Yield();
        try
        {
            await Inbound.InboundMediaSender.RunAsync(subscription, id, (m, ct) => _link.SendAsync(m, ct), publicationEnded, session);
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException)
        {
            // The session ended under the sender; the publication is told through sessionEnded.
        }
    }

    /// <summary>Ends the session from the relay's side (the device's token was revoked or rotated): goodbye, close, abort.</summary>
    internal async Task CloseAsync(UplinkReason reason, string text, TimeSpan timeout)
    {
        _session.Close($"closed by the relay: {reason.ToToken()}: {text}");
        try
        {
            await _link.CloseAsync(new Goodbye(reason, text), WebSocketCloseStatus.PolicyViolation, timeout);
        }
        catch (Exception e) when (e is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // Closing is best effort: the abort below ends the session either way.
        }
        await _stop.CancelAsync();
        _link.Socket.Abort();
        await Task.WhenAny(_finished.Task, Task.Delay(timeout, _time));
    }

    /// <summary>Runs the session until the device leaves, the link dies, or a newer uplink replaces it.</summary>
    internal async Task RunAsync(CancellationToken requestAborted)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(requestAborted, _stop.Token);
        var ct = linked.Token;
        var registered = false;
        try
        {
            var hello = await ReceiveHelloAsync(ct);
            if (hello is null) return;

            // One live uplink per device: the newest wins, the old one is closed before we accept.
            var old = _sessions.Register(this);
            registered = true;
            _metrics.Sessions.Add(1);
            if (old is not null)
            {
                UplinkLog.Replaced(_logger, DeviceId);
                await old.ReplaceAsync(_options.ReplaceTimeout);
            }

            // The data channel (configuration) is offered only when a feature is there to serve it.
            // Updates ride the data channel, so they are confirmed only together with it.
            var offered = UplinkCapabilities.Media | UplinkCapabilities.DropReports | UplinkCapabilities.Tunnel | UplinkCapabilities.InboundMedia
                | (_observer is null ? 0 : UplinkCapabilities.Data | UplinkCapabilities.Updates)
                | (_options.DeviceServices.Count == 0 ? 0 : UplinkCapabilities.DeviceStreams);
            // Device streams ride the tunnel channel: confirmed only together with it.
            if ((hello.Capabilities & UplinkCapabilities.Tunnel) == 0) offered &= ~UplinkCapabilities.DeviceStreams;
            if ((hello.Capabilities & UplinkCapabilities.Data) == 0) offered &= ~UplinkCapabilities.Updates;
            var caps = hello.Capabilities & offered;
            Agent = hello.Agent;
            Capabilities = caps;
            ConnectedAt = _time.GetUtcNow();
            _welcomed = true;
            if ((caps & UplinkCapabilities.Tunnel) != 0)
            {
                Tunnels = new TunnelMux(new RelayTunnelTransport(this, _stop.Token), _options.Tunnels with { RoundTripTime = () => RoundTripTime }, _time);
                if ((caps & UplinkCapabilities.DeviceStreams) != 0) Tunnels.Accepting = stream => _ = ServeDeviceStreamAsync(stream);
            }
            var welcome = _session.CreateWelcome(caps, _options.AckInterval, _options.Limits.MaxMessageBytes);
            await _link.SendAsync(welcome, ct);
            UplinkLog.Connected(_logger, DeviceId, _remote, hello.Agent, welcome.Version);
            if (_observer is not null) await _observer.OnConnectedAsync(this, ct);

            // Heartbeat and dead-link clocks start when the session begins to read.
            _session.Open(welcome);
            var timers = RunTimersAsync(ct);
            try
            {
                await ReceiveLoopAsync(ct);
            }
            finally
            {
                await linked.CancelAsync();
                await timers;
            }
        }
        catch (UplinkProtocolException e)
        {
            _session.Close($"{e.Reason.ToToken()}: {e.Message}");
            UplinkLog.ProtocolError(_logger, DeviceId, e.Reason.ToToken(), e.Message);
            _metrics.ProtocolErrors.Add(1, new KeyValuePair<string, object?>("reason", e.Reason.ToToken()));
            await _link.CloseAsync(new Goodbye(e.Reason, e.Message.Length > 500 ? e.Message[..500] : e.Message),
                e.Reason == UplinkReason.MessageTooLarge ? WebSocketCloseStatus.MessageTooBig : WebSocketCloseStatus.ProtocolError, TimeSpan.FromSeconds(2));
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException)
        {
            _session.Close(requestAborted.IsCancellationRequested ? "connection aborted" : $"connection lost ({e.Message})");
        }
        finally
        {
            await _ended.CancelAsync();
            Tunnels?.Dispose();
            var wasLive = registered && _sessions.Unregister(this);
            if (wasLive) _streams.SetDeviceOffline(DeviceId);
            if (registered) _observer?.OnEnded(this, wasLive);
            _session.Closed("closed by the device");
            UplinkLog.Ended(_logger, DeviceId, _session.EndReason!);
            await _link.DisposeAsync();
            _finished.TrySetResult();
        }
    }

    /// <summary>Closes this session because a newer uplink of the same device arrived, and waits (bounded) for it to end.</summary>
    private async Task ReplaceAsync(TimeSpan timeout)
    {
        _session.Close("replaced by a newer uplink");
        await _link.CloseAsync(new Goodbye(UplinkReason.Replaced, "a newer uplink of this device replaced this one"),
            WebSocketCloseStatus.PolicyViolation, timeout);
        // Let the device read the goodbye and answer the close; cancelling at once would reset the
        // TCP connection and could discard the goodbye in its receive buffer.
        var finished = await Task.WhenAny(_finished.Task, Task.Delay(timeout, _time)) == _finished.Task;
        if (finished) return;
        await _stop.CancelAsync();
        _link.Socket.Abort();
        await Task.WhenAny(_finished.Task, Task.Delay(timeout, _time));
    }

    private async Task<Hello?> ReceiveHelloAsync(CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_session.HandshakeTimeout);
        UplinkMessage? first;
        try
        {
            first = await _link.ReceiveAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            await RejectAsync(_session.HandshakeTimedOut()!);
            return null;
        }
        var checkedHello = _session.OnHello(first);
        if (checkedHello.Reject is { } reject)
        {
            if (reject.Reason == UplinkReason.UnsupportedVersion) _metrics.Reject(reject.Reason.ToToken());
            await RejectAsync(reject);
        }
        return checkedHello.Hello;
    }

    private async Task RejectAsync(Reject reject)
    {
        UplinkLog.Rejected(_logger, DeviceId, reject.Reason.ToToken(), reject.Text);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await _link.SendAsync(reject, cts.Token);
            await _link.Socket.CloseOutputAsync(WebSocketCloseStatus.PolicyViolation, reject.Reason.ToToken(), cts.Token);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
        {
            _link.Socket.Abort();
        }
    }

    private async Task ReceiveLoopAsync(CancellationToken ct)
    {
        while (true)
        {
            var message = await _link.ReceiveAsync(ct);
            var reply = _session.OnReceived(message);
            switch (message)
            {
                case null:
                    return;
                case MediaFrame frame:
                    OnFrame(frame);
                    break;
                case StreamAnnounce announce:
                    OnAnnounce(announce);
                    break;
                case StreamEnd end:
                    if (_announced.TryGetValue(end.StreamId, out var ended)) ended.Stream.SetOffline();
                    break;
                case Ping:
                    await _link.SendAsync(reply!, ct);
                    break;
                case Pong:
                    _metrics.Rtt.Record(_session.RoundTripTime!.Value.TotalSeconds, _device);
                    break;
                case DropReport drops:
                    OnDropReport(drops);
                    break;
                case Goodbye:
                    break; // the session keeps the reason; the device closes next
                case ConfigReport or DeviceStatus when (Capabilities & UplinkCapabilities.Data) != 0 && _observer is not null:
                    await _observer.OnDataAsync(this, message, ct);
                    break;
                case ConfigReport or DeviceStatus:
                    throw new UplinkProtocolException($"{message.GetType().Name} on the data channel, which this session did not confirm");
                case UpdateRequest or UpdateReport when (Capabilities & UplinkCapabilities.Updates) != 0 && _observer is not null:
                    await _observer.OnDataAsync(this, message, ct);
                    break;
                case UpdateRequest or UpdateReport:
                    throw new UplinkProtocolException($"{message.GetType().Name} from a session that did not confirm updates");
                case TunnelAccept or TunnelData or TunnelWindow or TunnelClose or TunnelReset when Tunnels is not null:
                    Tunnels.OnMessage(message);
                    break;
                case TunnelOpen open when Tunnels is not null && (Capabilities & UplinkCapabilities.DeviceStreams) != 0:
                    if ((open.StreamId & TunnelMux.HighIdBit) == 0) throw new UplinkProtocolException($"a device opened tunnel stream {open.StreamId} without the high id bit");
                    Tunnels.OnMessage(open);
                    break;
                case TunnelOpen:
                    throw new UplinkProtocolException("a device does not open tunnel streams unless the session confirmed device streams");
                case TunnelAccept or TunnelData or TunnelWindow or TunnelClose or TunnelReset:
                    throw new UplinkProtocolException($"{message.GetType().Name} from a session that did not confirm tunnels");
                case UnknownMessage unknown:
                    UplinkLog.SkippedUnknown(_logger, DeviceId, unknown.WireChannel, unknown.WireTypeByte);
                    break;
                default:
                    throw new UplinkProtocolException($"{message.GetType().Name} is not valid from a device");
            }
        }
    }

    private void OnAnnounce(StreamAnnounce announce)
    {
        foreach (var (id, other) in _announced)
            if (id != announce.StreamId && other.Stream.Camera == announce.Camera)
                throw new UplinkProtocolException($"camera {announce.Camera} announced on two stream ids");
        if (!_streams.TryGetOrAdd(DeviceId, announce.Camera, out var stream))
        {
            // One camera too many: this stream is ignored (its frames are dropped), the others carry on.
            _refusedStreams.Add(announce.StreamId);
            _announced.Remove(announce.StreamId);
            _refusals?.Refused("cameras-per-device", DeviceId,
                $"camera {announce.Camera} refused: the device has {_streams.Limits.MaxCamerasPerDevice} cameras already (limits.camerasPerDevice)");
            return;
        }
        _refusedStreams.Remove(announce.StreamId);
        _announced[announce.StreamId] = new AnnouncedStream(stream, announce.Tracks.Count);
        stream.OnTracks(announce.Tracks);
        UplinkLog.Announced(_logger, DeviceId, announce.Camera,
            string.Join(", ", announce.Tracks.Select(t => t.IsVideo ? $"{t.Codec} {t.Width}x{t.Height}" : $"{t.Codec} {t.SampleRate} Hz")));
    }

    private void OnFrame(MediaFrame frame)
    {
        var refused = !_announced.TryGetValue(frame.StreamId, out var announced);
        if (refused && !_refusedStreams.Contains(frame.StreamId))
            throw new UplinkProtocolException($"frame for stream {frame.StreamId}, which was never announced");
        if (!refused && frame.Unit.Track >= announced!.TrackCount)
            throw new UplinkProtocolException($"frame for track {frame.Unit.Track} of {announced.Stream.Camera}, which has {announced.TrackCount} tracks");
        lock (_ackLock)
        {
            if (frame.Sequence <= _lastSequence)
                throw new UplinkProtocolException($"frame sequence {frame.Sequence} after {_lastSequence}; sequences must increase");
            _lastSequence = frame.Sequence;
            _lastSendTimestamp = frame.SendTimestamp;
            _lastFrameAt = _time.GetTimestamp();
        }
        // A refused camera's frames are acknowledged (the device must not stall) and dropped.
        if (refused) return;
        _metrics.Frames.Add(1, _device);
        _metrics.Bytes.Add(frame.Unit.Data.Length, _device);
        announced!.Stream.OnAccessUnit(frame.Unit);
    }

    private void OnDropReport(DropReport report)
    {
        if (!_announced.TryGetValue(report.StreamId, out var announced)) return; // reports only count for announced streams
        var camera = announced.Stream.Camera;
        // Reports are cumulative per device run, repeated after every reconnect. A lower value means
        // the device restarted: count it all.
        var previous = _sessions.ExchangeReportedDrops(DeviceId, camera, report.DroppedFrames);
        var delta = report.DroppedFrames >= previous ? report.DroppedFrames - previous : report.DroppedFrames;
        if (delta == 0) return;
        _metrics.DeviceDrops.Add((long)Math.Min(delta, long.MaxValue), _device, new KeyValuePair<string, object?>("camera", camera));
        UplinkLog.DeviceDrops(_logger, DeviceId, camera, delta);
    }

    // A stream the device opened to one of the relay's services (docs/uplink-protocol.md, tunnel channel): connect to the
    // service, then carry bytes both ways until either end is done. A service that is not there, or cannot be reached,
    // is answered with a reset the device can log.
    private async Task ServeDeviceStreamAsync(TunnelStream stream)
    {
        var ct = _stop.Token;
        if (!_options.DeviceServices.TryGetValue(stream.Name, out var connect))
        {
            stream.Refuse(TunnelResetCode.NotExposed, $"this relay offers no service '{stream.Name}'");
            return;
        }
        Stream target;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_options.Tunnels.OpenTimeout);
            target = await connect(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            UplinkLog.DeviceStreamFailed(_logger, DeviceId, stream.Name, e.Message);
            stream.Refuse(TunnelResetCode.ConnectFailed, $"the relay could not reach its '{stream.Name}' service");
            return;
        }
        _metrics.DeviceStreams.Add(1, new KeyValuePair<string, object?>("service", stream.Name));
        await using (target.ConfigureAwait(false))
        using (stream)
        {
            stream.Accept();
            var up = CopyAsync(stream, target, ct);
            var down = CopyAsync(target, stream, ct);
            // Either end finishing ends the pair: MQTT has no use for a half-open connection.
            await Task.WhenAny(up, down).ConfigureAwait(false);
            try { await stream.CompleteWritesAsync(ct).ConfigureAwait(false); }
            catch (Exception e) when (e is IOException or OperationCanceledException) { }
        }

        // Neither end buffers writes (TunnelStream, NetworkStream, SslStream, WebSocketStream), so a plain copy
        // forwards each read at once.
        static async Task CopyAsync(Stream from, Stream to, CancellationToken ct)
        {
            try
            {
                await from.CopyToAsync(to, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or System.Net.WebSockets.WebSocketException)
            {
            }
        }
    }

    private Task RunTimersAsync(CancellationToken ct) => Task.WhenAll(WatchDeadLinkAsync(ct), SendAcksAndPingsAsync(ct));

    // Separate from the senders: a send stuck on a dead TCP connection must not delay detection.
    private async Task WatchDeadLinkAsync(CancellationToken ct)
    {
        var tick = _session.TickInterval;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(tick, _time, ct);
                var silence = _session.Silence;
                if (_session.CheckDeadLink() is null) continue;
                UplinkLog.DeadLink(_logger, DeviceId, silence);
                _metrics.DeadLinks.Add(1);
                await _stop.CancelAsync();
                _link.Socket.Abort();
                return;
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task SendAcksAndPingsAsync(CancellationToken ct)
    {
        var tick = Min(_options.AckInterval, _session.HeartbeatInterval);
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(tick, _time, ct);
                Ack? ack = null;
                lock (_ackLock)
                {
                    if (_lastSequence != _ackedSequence)
                    {
                        var delay = _time.GetElapsedTime(_lastFrameAt);
                        ack = new Ack(_lastSequence, _lastSendTimestamp, (uint)Math.Min(uint.MaxValue, delay.TotalMicroseconds), (ulong)_link.MediaBytesReceived);
                        _ackedSequence = _lastSequence;
                    }
                }
                if (ack is not null) await _link.SendAsync(ack, ct);
                Tunnels?.Reap();
                if (_session.TakeDuePing() is { } ping) await _link.SendAsync(ping, ct);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException)
        {
            // The receive loop reports how the session ended.
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    // Relay to device there is no video to yield to: data and control share the WebSocket's send lock in order.
    private sealed class RelayTunnelTransport(RelayUplinkSession session, CancellationToken stop) : ITunnelTransport
    {
        public bool SendControl(UplinkMessage message)
        {
            if (stop.IsCancellationRequested) return false;
            _ = SendQuietlyAsync(message);
            return true;
        }

        private async Task SendQuietlyAsync(UplinkMessage message)
        {
            try
            {
                await session._link.SendAsync(message, stop);
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException)
            {
                // The session is ending; its streams fail with it.
            }
        }

        public async ValueTask SendDataAsync(UplinkMessage message, CancellationToken cancellationToken)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stop);
            try
            {
                await session._link.SendAsync(message, linked.Token);
            }
            catch (Exception e) when (e is WebSocketException or ObjectDisposedException || (e is OperationCanceledException && stop.IsCancellationRequested))
            {
                throw new IOException("the uplink ended", e);
            }
        }
    }

    private sealed class AnnouncedStream(MediaStream stream, int trackCount)
    {
        public MediaStream Stream { get; } = stream;
        public int TrackCount { get; } = trackCount;
    }
}
