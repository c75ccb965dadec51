using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.Streaming;
using System.Diagnostics.Metrics;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sockets;

namespace Pinhole.Streaming.Rtsp;

/// <summary>
/// The relay's RTSP server (RFC 2326): re-serves every camera in the <see cref="MediaStreamRegistry"/>
/// at <c>rtsp://HOST:PORT/DEVICE/CAMERA</c> over RTP/AVP/TCP (interleaved) and RTP/AVP (UDP unicast),
/// with Basic and Digest authentication for the configured viewers. Each playing session is one
/// <see cref="MediaSubscription"/>, so a slow viewer skips to the next keyframe and never slows the
/// uplink or other viewers.
/// </summary>
public sealed class RtspServer : IHostedService, IAsyncDisposable
{
    private readonly RtspServerOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<RtspConnection, Task> _connections = new();
    private readonly ConnectionsPerAddress _perAddress;
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener, _tlsListener;
    private Task? _acceptLoop, _tlsAcceptLoop;

    /// <summary>Creates the server; nothing listens until <see cref="StartAsync"/>.</summary>
    /// <param name="options">Listen address and limits.</param>
    /// <param name="streams">The cameras to serve.</param>
    /// <param name="viewers">Who may watch; when empty, no authentication is asked.</param>
    /// <param name="meter">Where the server's instruments are created.</param>
    /// <param name="timeProvider">Clock for timeouts and RTCP.</param>
    /// <param name="logger">Logger; null for none.</param>
    /// <param name="throttle">The password-guessing throttle (the relay shares its web login's); null: none
    /// beyond the per-connection limit of failed attempts.</param>
    /// <param name="refusals">Where refusals are counted and logged; null: only the debug log.</param>
    /// <param name="publishing">Where streams published with ANNOUNCE/RECORD go; null: those methods are refused (405).</param>
    public RtspServer(RtspServerOptions options, MediaStreamRegistry streams, IRtspUserDirectory viewers,
        Meter meter, TimeProvider timeProvider, ILogger<RtspServer>? logger = null,
        IRtspLoginThrottle? throttle = null, IRtspRefusals? refusals = null, IRtspPublishHandler? publishing = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(meter);
        _options = options;
        _perAddress = new ConnectionsPerAddress(options.MaxConnectionsPerAddress);
        Streams = streams ?? throw new ArgumentNullException(nameof(streams));
        Viewers = viewers ?? throw new ArgumentNullException(nameof(viewers));
        Time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        Metrics = new RtspServerMetrics(meter);
        Digest = new DigestServer(options.Realm, options.NonceLifetime, timeProvider);
        Throttle = throttle ?? NoThrottle.Instance;
        Refusals = refusals ?? new LoggedRefusals(_logger);
        Publishing = publishing;
    }

    /// <summary>The bound address once started (useful with port 0).</summary>
    public IPEndPoint? LocalEndPoint => _listener?.LocalEndPoint as IPEndPoint;

    /// <summary>The bound TLS (<c>rtsps://</c>) address once started, when one is configured.</summary>
    public IPEndPoint? TlsLocalEndPoint => _tlsListener?.LocalEndPoint as IPEndPoint;

    /// <summary>Open TCP connections.</summary>
    public int ConnectionCount => Metrics.Connections;

    /// <summary>RTSP sessions that exist now (set up or playing).</summary>
    public int SessionCount => Metrics.Sessions;

    /// <summary>
    /// With several relays: given a device id, <c>rtsp://HOST:PORT</c> of the other relay that holds its uplink,
    /// or null; a DESCRIBE for such a device is answered with a 302 there. Null (one relay): never redirect.
    /// </summary>
    public Func<string, string?>? RedirectBase { get; set; }

    internal RtspServerOptions Options => _options;
    internal MediaStreamRegistry Streams { get; }
    internal IRtspUserDirectory Viewers { get; }
    internal TimeProvider Time { get; }
    internal ILogger Logger => _logger;
    internal RtspServerMetrics Metrics { get; }
    internal DigestServer Digest { get; }
    internal IRtspLoginThrottle Throttle { get; }
    internal IRtspRefusals Refusals { get; }
    internal IRtspPublishHandler? Publishing { get; }

    private sealed class NoThrottle : IRtspLoginThrottle
    {
        public static readonly NoThrottle Instance = new();
        public TimeSpan RetryAfter(string clientAddress, string user) => TimeSpan.Zero;
        public void Failed(string clientAddress, string user) { }
        public void Succeeded(string clientAddress, string user) { }
    }

    private sealed class LoggedRefusals(ILogger logger) : IRtspRefusals
    {
        public void Refused(string cause, string? address, string detail) => RtspServerLog.Refused(logger, cause, address, detail);
    }

    /// <summary>Binds the listen address and starts accepting connections.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_listener is not null) throw new InvalidOperationException("already started");
        if (_options.TlsEndPoint is not null && _options.TlsCertificate is null)
            throw new InvalidOperationException("rtsps: a TLS listener needs a certificate");
        _listener = Listen(_options.EndPoint);
        if (_options.TlsEndPoint is { } tlsEndPoint)
        {
            try
            {
                _tlsListener = Listen(tlsEndPoint);
            }
            catch
            {
                _listener.Dispose();
                _listener = null;
                throw;
            }
        }
        RtspServerLog.Listening(_logger, _listener.LocalEndPoint!);
        if (!Viewers.Any)
        {
            if (_options.AnonymousViewing) RtspServerLog.AnonymousViewing(_logger);
            else RtspServerLog.NobodyMayView(_logger);
        }
        _acceptLoop = AcceptLoopAsync(_listener, tls: false, _stopping.Token);
        if (_tlsListener is not null)
        {
            RtspServerLog.ListeningTls(_logger, _tlsListener.LocalEndPoint!);
            _tlsAcceptLoop = AcceptLoopAsync(_tlsListener, tls: true, _stopping.Token);
        }
        return Task.CompletedTask;
    }

    private static Socket Listen(IPEndPoint endPoint)
    {
        var listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(endPoint);
            listener.Listen(128);
            return listener;
        }
        catch
        {
            listener.Dispose();
            throw;
        }
    }

    /// <summary>Stops listening and closes every connection (their sessions end).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stopping.IsCancellationRequested) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        _tlsListener?.Dispose();
        foreach (var c in _connections.Keys) c.Abort("server stopping");
        var all = _connections.Values.ToList();
        if (_acceptLoop is not null) all.Add(_acceptLoop);
        if (_tlsAcceptLoop is not null) all.Add(_tlsAcceptLoop);
        await Task.WhenAll(all).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync(Socket listener, bool tls, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                // A connection reset between SYN and accept: nothing to do but take the next one.
                continue;
            }
            var address = (socket.RemoteEndPoint as IPEndPoint)?.Address is { } a && a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : (socket.RemoteEndPoint as IPEndPoint)?.Address;
            if (address is null)
            {
                socket.Dispose();
                continue;
            }
            // Per address first: one client's flood must not count against everyone's total.
            if (!_perAddress.TryEnter(address))
            {
                Refuse(socket, "rtsp-connections-per-address", address, $"{_options.MaxConnectionsPerAddress} RTSP connections from this address already");
                continue;
            }
            if (Metrics.ConnectionOpened() > _options.MaxConnections)
            {
                Metrics.ConnectionClosed();
                ReleaseAddress(address);
                Refuse(socket, "rtsp-connections", address, $"{_options.MaxConnections} RTSP connections already");
                continue;
            }
            RtspConnection connection;
            try
            {
                connection = new RtspConnection(this, socket, address, tls);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Reset before we could set it up.
                Metrics.ConnectionClosed();
                ReleaseAddress(address);
                socket.Dispose();
                continue;
            }
            _connections[connection] = RunConnectionAsync(connection, address, stopping);
        }
    }

    private void Refuse(Socket socket, string cause, IPAddress address, string detail)
    {
        Metrics.Rejected.Add(1);
        Refusals.Refused(cause, address.ToString(), detail);
        // Closed without a word: an RTSP answer would need reading the request, which is what the limit avoids.
        socket.Dispose();
    }

    private void ReleaseAddress(IPAddress address) => _perAddress.Leave(address);

    /// <summary>Open connections from <paramref name="address"/> now.</summary>
    internal int ConnectionsFrom(IPAddress address) => _perAddress.Count(address);

    private async Task RunConnectionAsync(RtspConnection connection, IPAddress address, CancellationToken stopping)
    {
        await Task.Yield();
        try
        {
            await connection.RunAsync(stopping).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // A bug in one connection must not take the listener down.
            RtspServerLog.ConnectionFailed(_logger, connection.RemoteEndPoint, e);
        }
        finally
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            Metrics.ConnectionClosed();
            ReleaseAddress(address);
            _connections.TryRemove(connection, out _);
        }
    }
}
