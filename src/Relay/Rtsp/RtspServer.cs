using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.Relay.Streaming;
using Pinhole.Relay.Viewers;
using Pinhole.Transport.Metrics;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Relay.Rtsp;

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
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener;
    private Task? _acceptLoop;

    /// <summary>Creates the server; nothing listens until <see cref="StartAsync"/>.</summary>
    /// <param name="options">Listen address and limits.</param>
    /// <param name="streams">The cameras to serve.</param>
    /// <param name="viewers">Who may watch; when empty, no authentication is asked.</param>
    /// <param name="metrics">Where the server's counters go.</param>
    /// <param name="timeProvider">Clock for timeouts and RTCP.</param>
    /// <param name="logger">Logger; null for none.</param>
    public RtspServer(RtspServerOptions options, MediaStreamRegistry streams, ViewerDirectory viewers,
        MetricsRegistry metrics, TimeProvider timeProvider, ILogger<RtspServer>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(metrics);
        _options = options;
        Streams = streams ?? throw new ArgumentNullException(nameof(streams));
        Viewers = viewers ?? throw new ArgumentNullException(nameof(viewers));
        Time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        Metrics = new RtspServerMetrics(metrics);
        Digest = new DigestServer(options.Realm, options.NonceLifetime, timeProvider);
    }

    /// <summary>The bound address once started (useful with port 0).</summary>
    public IPEndPoint? LocalEndPoint => _listener?.LocalEndPoint as IPEndPoint;

    /// <summary>Open TCP connections.</summary>
    public int ConnectionCount => Metrics.Connections;

    /// <summary>RTSP sessions that exist now (set up or playing).</summary>
    public int SessionCount => Metrics.Sessions;

    internal RtspServerOptions Options => _options;
    internal MediaStreamRegistry Streams { get; }
    internal ViewerDirectory Viewers { get; }
    internal TimeProvider Time { get; }
    internal ILogger Logger => _logger;
    internal RtspServerMetrics Metrics { get; }
    internal DigestServer Digest { get; }

    /// <summary>Binds the listen address and starts accepting connections.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_listener is not null) throw new InvalidOperationException("already started");
        var listener = new Socket(_options.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(_options.EndPoint);
            listener.Listen(128);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        _listener = listener;
        RtspServerLog.Listening(_logger, listener.LocalEndPoint!);
        _acceptLoop = AcceptLoopAsync(listener, _stopping.Token);
        return Task.CompletedTask;
    }

    /// <summary>Stops listening and closes every connection (their sessions end).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stopping.IsCancellationRequested) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        foreach (var c in _connections.Keys) c.Abort("server stopping");
        var all = _connections.Values.ToList();
        if (_acceptLoop is not null) all.Add(_acceptLoop);
        await Task.WhenAll(all).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync(Socket listener, CancellationToken stopping)
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
            if (Metrics.ConnectionOpened() > _options.MaxConnections)
            {
                Metrics.ConnectionClosed();
                Metrics.Rejected.Inc();
                RtspServerLog.TooManyConnections(_logger, socket.RemoteEndPoint, _options.MaxConnections);
                socket.Dispose();
                continue;
            }
            var connection = new RtspConnection(this, socket);
            _connections[connection] = RunConnectionAsync(connection, stopping);
        }
    }

    private async Task RunConnectionAsync(RtspConnection connection, CancellationToken stopping)
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
            _connections.TryRemove(connection, out _);
        }
    }
}
