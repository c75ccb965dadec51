using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Pinhole.Relay.Configuration;
using Pinhole.Transport.Stun;

namespace Pinhole.Relay.WebRtc;

/// <summary>
/// The relay's WebRTC transport: one UDP port for every viewer, demultiplexed by the first byte
/// (RFC 7983: 0-3 STUN, 20-63 DTLS, 128-191 RTP/RTCP), and ICE-TCP passive (RFC 6544, RFC 4571
/// framing) on the same port number. STUN binding requests are answered as an ICE-lite agent
/// (RFC 8445 §2.5) and identify the viewer by the USERNAME's first ufrag; DTLS and SRTCP are routed
/// by the address that passed a check. Viewers whose checks stop for 30 s lose consent (RFC 7675).
/// </summary>
public sealed class WebRtcServer : IHostedService, IDisposable
{
    /// <summary>Consent expires this long after the last valid check (RFC 7675 §5.1).</summary>
    public static readonly TimeSpan ConsentTimeout = TimeSpan.FromSeconds(30);

    private readonly WebRtcConfig _config;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<string, WebRtcPeer> _byUfrag = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, WebRtcPeer> _byId = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<IPEndPoint, WebRtcPeer> _byAddress = new();
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;
    private Socket? _udp;
    private TcpListener? _tcp;
    private ITimer? _watchdog;

    /// <summary>Creates the server from relay.json's <c>webrtc</c>.</summary>
    public WebRtcServer(RelayConfig config, TimeProvider time, ILogger<WebRtcServer> log)
    {
        ArgumentNullException.ThrowIfNull(config);
        _config = config.WebRtc ?? throw new ArgumentException("webrtc is not configured", nameof(config));
        _time = time;
        _log = log;
        Identity = DtlsCertificate.Create(time);
    }

    /// <summary>The DTLS certificate whose fingerprint every answer carries.</summary>
    public DtlsCertificate Identity { get; }

    /// <summary>The bound UDP endpoint (its port is resolved when the config said 0).</summary>
    public IPEndPoint? UdpEndPoint => _udp?.LocalEndPoint as IPEndPoint;

    /// <summary>The bound ICE-TCP endpoint, or null without one.</summary>
    public IPEndPoint? TcpEndPoint => _tcp?.LocalEndpoint as IPEndPoint;

    /// <summary>Viewers now (connecting or connected).</summary>
    public int PeerCount => _byId.Count;

    internal IEnumerable<WebRtcPeer> Peers => _byId.Values;

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!RelayConfigLoader.TryParseEndPoint(_config.Udp, out var endPoint))
            throw new InvalidOperationException($"webrtc.udp: \"{_config.Udp}\" is not HOST:PORT");
        _udp = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        // Bursts of keyframes to many viewers go out faster than the kernel's default buffer drains.
        _udp.SendBufferSize = 4 * 1024 * 1024;
        _udp.ReceiveBufferSize = 1024 * 1024;
        _udp.Bind(endPoint);
        var bound = (IPEndPoint)_udp.LocalEndPoint!;
        if (_config.Tcp)
        {
            _tcp = new TcpListener(new IPEndPoint(endPoint.Address, bound.Port));
            _tcp.Start(64);
            _ = Task.Run(() => AcceptLoopAsync(_tcp, _stopping.Token));
        }
        _ = Task.Run(() => UdpLoopAsync(_udp, _stopping.Token));
        _watchdog = _time.CreateTimer(_ => CheckConsent(), null, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2));
        WebRtcLog.Listening(_log, bound.ToString(), _tcp is null ? "" : " and tcp " + _tcp.LocalEndpoint,
            string.Join(", ", Candidates(udp: true).Select(c => $"{c.Address}:{c.Port}")));
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping.Cancel();
        _watchdog?.Dispose();
        foreach (var p in _byId.Values) p.Close("relay stopping");
        _udp?.Dispose();
        _tcp?.Stop();
        return Task.CompletedTask;
    }

    /// <summary>The host candidates to announce: <c>publicAddresses</c>, else the listen address, else loopback.</summary>
    internal IReadOnlyList<(string Address, int Port)> Candidates(bool udp)
    {
        var ep = udp ? UdpEndPoint : TcpEndPoint;
        if (ep is null) return [];
        if (_config.PublicAddresses.Count > 0) return [.. _config.PublicAddresses.Select(a => (a, ep.Port))];
        var address = ep.Address.Equals(IPAddress.Any) || ep.Address.Equals(IPAddress.IPv6Any) ? IPAddress.Loopback : ep.Address;
        return [(address.ToString(), ep.Port)];
    }

    internal void Add(WebRtcPeer peer)
    {
        _byUfrag[peer.LocalUfrag] = peer;
        _byId[peer.Id] = peer;
    }

    internal bool TryGet(string id, out WebRtcPeer peer) => _byId.TryGetValue(id, out peer!);

    internal void Forget(WebRtcPeer peer)
    {
        _byUfrag.TryRemove(new KeyValuePair<string, WebRtcPeer>(peer.LocalUfrag, peer));
        _byId.TryRemove(new KeyValuePair<string, WebRtcPeer>(peer.Id, peer));
        foreach (var kv in _byAddress)
            if (kv.Value == peer) _byAddress.TryRemove(kv);
    }

    private void CheckConsent()
    {
        foreach (var p in _byId.Values)
        {
            if (p.State == WebRtcPeerState.Connecting && p.Age > ConsentTimeout) p.Close("no ICE connectivity within 30 s");
            else if (p.SinceConsent > ConsentTimeout) p.Close("consent expired: no connectivity check for 30 s (RFC 7675)");
        }
    }

    private async Task UdpLoopAsync(Socket socket, CancellationToken ct)
    {
        var buffer = new byte[2048];
        EndPoint any = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (!ct.IsCancellationRequested)
        {
            SocketReceiveFromResult r;
            try
            {
                r = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, ct).ConfigureAwait(false);
            }
            catch (SocketException)
            {
                continue; // ICMP unreachable from an earlier send to a viewer who left
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            var remote = (IPEndPoint)r.RemoteEndPoint;
            try
            {
                Dispatch(buffer.AsSpan(0, r.ReceivedBytes), remote, () => new UdpPath(socket, remote));
            }
            catch (Exception e)
            {
                // Whatever a datagram holds, the port keeps serving everyone else.
                WebRtcLog.LoopFailed(_log, e, "udp");
            }
        }
    }

    private async Task AcceptLoopAsync(TcpListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(ct).ConfigureAwait(false);
            }
            catch (SocketException)
            {
                continue;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => TcpConnectionAsync(client, ct));
        }
    }

    // RFC 4571 framing, read with the library's IceTcpFraming over a pipe: one receive brings as many
    // packets as the kernel has, and a packet split across reads waits for its rest.
    private async Task TcpConnectionAsync(Socket client, CancellationToken ct)
    {
        var path = new TcpPath(client);
        var reader = PipeReader.Create(new NetworkStream(client, ownsSocket: false));
        var scratch = new byte[IceTcpFraming.MaxPacketLength];
        var identified = false;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // A connection that does not pass a check soon is somebody else's: let it go.
        idle.CancelAfter(TimeSpan.FromSeconds(10));
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(identified ? ct : idle.Token).ConfigureAwait(false);
                var frames = new SequenceReader<byte>(result.Buffer);
                while (IceTcpFraming.TryReadFrame(ref frames, out var packet))
                {
                    var remote = path.Remote;
                    if (packet.IsSingleSegment)
                        Dispatch(packet.FirstSpan, remote, () => path);
                    else
                    {
                        packet.CopyTo(scratch);
                        Dispatch(scratch.AsSpan(0, (int)packet.Length), remote, () => path);
                    }
                    identified |= _byAddress.ContainsKey(remote);
                }
                reader.AdvanceTo(frames.Position, result.Buffer.End);
                if (result.IsCompleted) break;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or IOException)
        {
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
            _byAddress.TryRemove(path.Remote, out _);
            path.Dispose();
        }
    }

    private void Dispatch(ReadOnlySpan<byte> packet, IPEndPoint remote, Func<IcePath> path)
    {
        if (packet.Length == 0) return;
        var first = packet[0];
        if (first <= 3)
        {
            HandleStun(packet, remote, path);
        }
        else if (first is >= 20 and <= 63)
        {
            if (_byAddress.TryGetValue(remote, out var peer)) peer.OnDtls(packet);
            else WebRtcLog.Dropped(_log, remote.ToString(), "DTLS from an address that passed no connectivity check");
        }
        else if (first is >= 128 and <= 191)
        {
            // Only RTCP comes this way (the relay sends media, the browser sends reports): PT 192-223 (RFC 5761 §4).
            if (packet.Length >= 2 && packet[1] is >= 192 and <= 223 && _byAddress.TryGetValue(remote, out var peer)) peer.OnSrtcp(packet);
        }
    }

    private void HandleStun(ReadOnlySpan<byte> packet, IPEndPoint remote, Func<IcePath> pathFactory)
    {
        if (!StunMessage.IsStun(packet)) return;
        StunMessage request;
        try
        {
            request = StunMessage.Parse(packet);
        }
        catch (StunProtocolException e)
        {
            WebRtcLog.Dropped(_log, remote.ToString(), e.Message);
            return;
        }
        // Indications (keepalives) and responses need no answer from a lite agent.
        if (request.Class != StunClass.Request || request.Method != StunMethods.Binding) return;
        if (!StunMessage.VerifyFingerprint(packet)) { WebRtcLog.Dropped(_log, remote.ToString(), "STUN FINGERPRINT wrong or missing"); return; }
        var username = request.Username;
        var colon = username?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        if (username is null || colon <= 0 || !_byUfrag.TryGetValue(username[..colon], out var peer))
        {
            // RFC 8489 §9.1.3: unknown USERNAME is 401 — sent without integrity, there is no key.
            var refuse = new StunMessage { Class = StunClass.ErrorResponse, Method = StunMethods.Binding, TransactionId = request.TransactionId, Error = (401, "Unauthorized") };
            pathFactory().Send(refuse.Encode());
            return;
        }
        var key = Encoding.UTF8.GetBytes(peer.LocalPassword);
        if (!StunMessage.VerifyMessageIntegrity(packet, key) || username[(colon + 1)..] != peer.Offer.IceUfrag)
        {
            WebRtcLog.Dropped(_log, remote.ToString(), "STUN MESSAGE-INTEGRITY or USERNAME does not match the session");
            return;
        }
        var path = pathFactory();
        var response = new StunMessage
        {
            Class = StunClass.SuccessResponse,
            Method = StunMethods.Binding,
            TransactionId = request.TransactionId,
            XorMappedAddress = remote,
        };
        path.Send(response.Encode(key));
        _byAddress[remote] = peer;
        peer.OnBindingRequest(path, request.UseCandidate);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // The host may dispose it more than once (as a service and as a hosted service): once is enough.
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stopping.Cancel();
        _watchdog?.Dispose();
        _udp?.Dispose();
        _tcp?.Stop();
        _stopping.Dispose();
    }
}
