using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Pinhole.Transport.Media;
using Pinhole.Transport.Sockets;
using Pinhole.Transport.WebSockets;

namespace Pinhole.Transport.Uplink;

/// <summary>
/// The device's end of the uplink: one WebSocket (RFC 6455) to a relay, over TCP, optionally TLS and
/// an HTTP CONNECT proxy, carrying one uplink message per binary message. Built for a device that
/// streams all day on a small CPU, so the socket stays out of .NET's async engine:
/// <list type="bullet">
/// <item><see cref="Receive"/> blocks the calling thread in <c>poll</c>; give it a thread of its own.
/// A relay message wakes that thread and nothing else.</item>
/// <item><c>TrySend…</c> never block: they frame, mask and hand the message to the kernel, and return
/// false when the kernel did not take all of it. The rest is kept in order and leaves with
/// <see cref="FlushPending"/>, which blocks, on whichever thread can afford to wait.</item>
/// <item>Mask keys come from a block of cryptographically random bytes refilled every 1,024 frames,
/// not from one call into the crypto library per frame.</item>
/// </list>
/// Thread safety: one thread receives; sends may come from any thread (serialised inside).
/// <para>Where a middlebox strips <c>Upgrade</c>, <see cref="ConnectHttpAsync"/> builds the same connection
/// over plain HTTP(S) instead (<see cref="Transport"/> is then <see cref="UplinkTransport.Http"/>): a streaming
/// <c>GET</c> brings the relay's messages down, a streaming chunked <c>POST</c> takes the device's up, one
/// uplink message per chunk. Every member behaves the same on either transport.</para>
/// </summary>
public sealed class UplinkClientConnection : IDisposable
{
    private const int MaxHeadBytes = 16 * 1024;
    private static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();

    // Sending goes to _socket/_stream, receiving comes from _recvSocket/_recvStream: the same
    // connection for a WebSocket, the POST's and the GET's connections over HTTP.
    private readonly NonBlockingSocketStream _socket;
    private readonly Stream _stream;
    private readonly NonBlockingSocketStream _recvSocket;
    private readonly Stream _recvStream;
    private int _chunkRemaining; // HTTP: data bytes left in the current chunk of the GET's body
    private bool _chunkedBody, _inChunk, _bodyEnded;
    private readonly UplinkLimits _limits;
    private readonly Lock _sendLock = new();
    private readonly byte[] _maskKeys = new byte[4096];
    private int _nextMaskKey = 4096;
    private byte[] _read = new byte[16 * 1024];
    private int _readStart, _readEnd;
    private byte[] _message = new byte[4096];
    private long _mediaBytesSent;
    private volatile bool _closeSent, _closeReceived, _aborted;

    private UplinkClientConnection(NonBlockingSocketStream socket, Stream stream, UplinkLimits limits, string subProtocol)
        : this(socket, stream, socket, stream, limits, subProtocol, UplinkTransport.WebSocket)
    {
    }

    private UplinkClientConnection(NonBlockingSocketStream socket, Stream stream, NonBlockingSocketStream recvSocket, Stream recvStream,
        UplinkLimits limits, string subProtocol, UplinkTransport transport)
    {
        _socket = socket;
        _stream = stream;
        _recvSocket = recvSocket;
        _recvStream = recvStream;
        _limits = limits;
        SubProtocol = subProtocol;
        Transport = transport;
    }

    /// <summary>What carries the messages: a WebSocket, or the HTTP fallback.</summary>
    public UplinkTransport Transport { get; }

    /// <summary>The subprotocol the relay selected.</summary>
    public string SubProtocol { get; }

    /// <summary>Media-channel bytes (whole uplink messages) handed to the connection so far.</summary>
    public long MediaBytesSent => Interlocked.Read(ref _mediaBytesSent);

    /// <summary>Bytes were sent that the kernel has not taken yet; <see cref="FlushPending"/> pushes them.</summary>
    public bool HasPendingBytes => _socket.HasPending;

    /// <summary>
    /// Caps the bytes the kernel keeps unsent (<c>TCP_NOTSENT_LOWAT</c>, clamped to 16 KiB..4 MiB), so
    /// that frames wait in the caller's queue, where they can be dropped by GOP, rather than in a send
    /// buffer. False where the platform has no such option.
    /// </summary>
    public bool SetSendLowWatermark(int bytes) => TcpSendBuffer.TrySetNotSentLowWatermark(_socket.Socket, bytes);

    /// <summary>The watermark in force, or null where it cannot be read.</summary>
    public int? SendLowWatermark => TcpSendBuffer.NotSentLowWatermark(_socket.Socket);

    /// <summary>What the sending socket holds below this connection (in flight and unsent), its minimum RTT and
    /// delivery rate, from <c>TCP_INFO</c>; null where it cannot be read.</summary>
    public TcpQueueInfo? SendQueue => TcpSendBuffer.QueueInfo(_socket.Socket);

    /// <summary>Neither side has closed and the connection was not aborted.</summary>
    public bool IsOpen => !_closeSent && !_closeReceived && !_aborted;

    /// <summary>
    /// Called (on the receiving thread) when <see cref="Receive"/> answered a ping or a close and the
    /// kernel did not take the answer at once: whoever flushes should run.
    /// </summary>
    public Action? ReplyPending { get; set; }

    /// <summary>
    /// Has <see cref="Receive"/> call <paramref name="check"/> on the receiving thread while it waits
    /// for the relay, at most every <paramref name="interval"/> (when it starts waiting and that long
    /// has passed, and again after each <paramref name="interval"/> of waiting). The caller's periodic
    /// checks (a dead link, heartbeats) then ride on the thread that waits anyway instead of a timer.
    /// <paramref name="check"/> may <see cref="Abort"/>; it must not receive. Set it before receiving.
    /// </summary>
    public void WhileWaiting(TimeSpan interval, Action check)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(check);
        _recvSocket.WaitingInterval = interval;
        _recvSocket.Waiting = check;
    }

    // ------------------------------------------------------------------ connecting

    /// <summary>
    /// Connects to <paramref name="relay"/> (<c>ws://</c> or <c>wss://</c>): DNS, TCP, the proxy tunnel,
    /// TLS and the upgrade, all within <see cref="UplinkConnectOptions.ConnectTimeout"/>.
    /// </summary>
    /// <exception cref="UplinkHandshakeException">The relay answered the upgrade with an HTTP status other than 101.</exception>
    /// <exception cref="IOException">The connection, proxy, TLS or the upgrade failed.</exception>
    /// <exception cref="SocketException">No address of the relay (or proxy) could be reached.</exception>
    /// <exception cref="TimeoutException">It took longer than the connect timeout.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static Task<UplinkClientConnection> ConnectAsync(Uri relay, UplinkConnectOptions options, CancellationToken cancellationToken) =>
        ConnectCoreAsync(relay, options, UplinkTransport.WebSocket, cancellationToken);

    /// <summary>
    /// Connects to <paramref name="relay"/> (the same <c>ws://</c> or <c>wss://</c> URL) over the HTTP fallback: a
    /// streaming <c>GET</c> down and a chunked streaming <c>POST</c> up, over <c>http://</c> or <c>https://</c>
    /// (and the proxy, TLS and timeout rules of <see cref="ConnectAsync"/>), tied by the session id the relay
    /// issues on the <c>GET</c> (docs/uplink-protocol.md §1a).
    /// </summary>
    /// <exception cref="UplinkHandshakeException">The relay answered the <c>GET</c> with an HTTP status other than 200.</exception>
    /// <exception cref="IOException">A connection, the proxy, TLS or the relay's answer failed.</exception>
    /// <exception cref="SocketException">No address of the relay (or proxy) could be reached.</exception>
    /// <exception cref="TimeoutException">It took longer than the connect timeout.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static Task<UplinkClientConnection> ConnectHttpAsync(Uri relay, UplinkConnectOptions options, CancellationToken cancellationToken) =>
        ConnectCoreAsync(relay, options, UplinkTransport.Http, cancellationToken);

    private static async Task<UplinkClientConnection> ConnectCoreAsync(Uri relay, UplinkConnectOptions options, UplinkTransport transport, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(relay);
        ArgumentNullException.ThrowIfNull(options);
        if (!relay.IsAbsoluteUri || relay.Scheme is not ("ws" or "wss")) throw new ArgumentException($"'{relay}' is not a ws:// or wss:// URL", nameof(relay));
        foreach (var (name, value) in options.Headers) CheckHeader(name, value);

        var proxy = options.Proxy ?? SystemProxyFor(relay, options.SystemProxy);
        var dial = proxy ?? relay;
        // The token below is what ends a slow handshake (it aborts the socket); the stream's own
        // deadline, a second later, only backs it up.
        var deadline = Stopwatch.GetTimestamp() + (long)((options.ConnectTimeout.TotalSeconds + 1) * Stopwatch.Frequency);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            var addresses = IPAddress.TryParse(dial.DnsSafeHost, out var literal)
                ? [literal]
                : await Dns.GetHostAddressesAsync(dial.DnsSafeHost, timeout.Token).ConfigureAwait(false);
            if (addresses.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
            // The whole handshake runs blocking on a thread of its own: one async call would put the
            // socket into the async engine for good. Cancelling aborts the socket, which ends it.
            var connecting = Task.Factory.StartNew(() => transport == UplinkTransport.Http
                    ? ConnectHttpBlocking(relay, proxy, addresses, dial.Port, options, deadline, timeout.Token)
                    : ConnectBlocking(relay, proxy, addresses, dial.Port, options, deadline, timeout.Token),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            _ = connecting.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            try
            {
                return await connecting.WaitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The thread may still finish; whatever it built is not wanted any more.
                _ = connecting.ContinueWith(static t => t.Result.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
                throw;
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {options.ConnectTimeout.TotalSeconds:0.#} s");
        }
    }

    private static Uri? SystemProxyFor(Uri relay, IWebProxy? system)
    {
        if (system is null) return null;
        // Proxies are configured for http/https; a WebSocket follows its HTTP scheme (wss -> HTTPS_PROXY).
        var http = new UriBuilder(relay) { Scheme = relay.Scheme == "wss" ? Uri.UriSchemeHttps : Uri.UriSchemeHttp, Port = relay.Port }.Uri;
        if (system.IsBypassed(http)) return null;
        var proxy = system.GetProxy(http);
        if (proxy is null || proxy == http) return null;
        // The environment's credentials live in the proxy object, not the URL.
        if (string.IsNullOrEmpty(proxy.UserInfo) && system.Credentials?.GetCredential(proxy, "Basic") is { } credential)
            proxy = new UriBuilder(proxy) { UserName = Uri.EscapeDataString(credential.UserName), Password = Uri.EscapeDataString(credential.Password) }.Uri;
        return proxy;
    }

    private static UplinkClientConnection ConnectBlocking(Uri relay, Uri? proxy, IPAddress[] addresses, int port, UplinkConnectOptions options, long deadline, CancellationToken cancellationToken)
    {
        var socket = BlockingConnect.Connect(addresses, port, options.ConnectTimeout, cancellationToken);
        var raw = new NonBlockingSocketStream(socket) { Deadline = deadline };
        SslStream? tls = null;
        using var abort = cancellationToken.UnsafeRegister(static s => ((NonBlockingSocketStream)s!).Abort(), raw);
        try
        {
            if (proxy is not null) OpenTunnel(raw, relay, proxy);
            Stream stream = raw;
            if (relay.Scheme == "wss")
            {
                tls = new SslStream(raw, leaveInnerStreamOpen: false);
                tls.AuthenticateAsClient(TlsOptions(relay, options.TrustedCa));
                stream = tls;
            }
            var buffer = new byte[4096];
            var filled = 0;
            // The connection is made; from here only the upgrade's answer is awaited, and a middlebox that holds
            // upgrades would hold it until the connect timeout: the upgrade timeout (when set) ends that sooner.
            long upgradeDeadline = long.MaxValue;
            if (options.UpgradeTimeout is { } upgradeTimeout)
            {
                upgradeDeadline = Stopwatch.GetTimestamp() + (long)(upgradeTimeout.TotalSeconds * Stopwatch.Frequency);
                if (upgradeDeadline < deadline) raw.Deadline = upgradeDeadline;
            }
            string subProtocol;
            int headLength;
            try
            {
                subProtocol = Upgrade(stream, relay, options, ref buffer, ref filled, out headLength);
            }
            catch (Exception e) when ((e is TimeoutException || e.InnerException is TimeoutException) && upgradeDeadline < deadline
                                      && Stopwatch.GetTimestamp() >= upgradeDeadline && !cancellationToken.IsCancellationRequested)
            {
                throw new UplinkUpgradeTimeoutException(
                    $"the WebSocket upgrade got no answer within {options.UpgradeTimeout!.Value.TotalSeconds:0.#} s (something on the way holds upgrades)", e);
            }
            var connection = new UplinkClientConnection(raw, stream, options.Limits, subProtocol);
            // Until the link's rate is known, keep the smallest backlog below us.
            TcpSendBuffer.TrySetNotSentLowWatermark(socket, TcpSendBuffer.MinLowWatermark);
            // The relay may send its first frame right behind the 101.
            if (filled > headLength)
            {
                connection._read = new byte[Math.Max(connection._read.Length, filled - headLength)];
                buffer.AsSpan(headLength, filled - headLength).CopyTo(connection._read);
                connection._readEnd = filled - headLength;
            }
            raw.Deadline = long.MaxValue;
            return connection;
        }
        catch (Exception e)
        {
            tls?.Dispose();
            raw.Abort();
            if (cancellationToken.IsCancellationRequested) throw new OperationCanceledException("connect cancelled", e, cancellationToken);
            throw;
        }
    }

    // One TCP (+ proxy tunnel + TLS) connection to the relay for the HTTP fallback.
    private static (NonBlockingSocketStream Raw, Stream Stream) OpenHttp(Uri relay, Uri? proxy, IPAddress[] addresses, int port, UplinkConnectOptions options, long deadline,
        List<NonBlockingSocketStream> opened, CancellationToken cancellationToken)
    {
        var socket = BlockingConnect.Connect(addresses, port, options.ConnectTimeout, cancellationToken);
        var raw = new NonBlockingSocketStream(socket) { Deadline = deadline };
        lock (opened) opened.Add(raw);
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (proxy is not null) OpenTunnel(raw, relay, proxy);
            if (relay.Scheme != "wss") return (raw, raw);
            var tls = new SslStream(raw, leaveInnerStreamOpen: false);
            tls.AuthenticateAsClient(TlsOptions(relay, options.TrustedCa));
            return (raw, tls);
        }
        catch
        {
            raw.Abort();
            raw.Dispose();
            throw;
        }
    }

    private static UplinkClientConnection ConnectHttpBlocking(Uri relay, Uri? proxy, IPAddress[] addresses, int port, UplinkConnectOptions options, long deadline, CancellationToken cancellationToken)
    {
        NonBlockingSocketStream? downRaw = null, upRaw = null;
        Stream? down = null, up = null;
        // Cancelling aborts whatever sockets are open so far, which ends a blocked read or write.
        var opened = new List<NonBlockingSocketStream>(2);
        using var abort = cancellationToken.UnsafeRegister(static s =>
        {
            var list = (List<NonBlockingSocketStream>)s!;
            lock (list) foreach (var raw in list) raw.Abort();
        }, opened);
        try
        {
            // Down first: the GET authenticates and the relay answers with the session id the POST names.
            (downRaw, down) = OpenHttp(relay, proxy, addresses, port, options, deadline, opened, cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();
            var common = new StringBuilder()
                .Append("Host: ").Append(Authority(relay)).Append("\r\n")
                .Append("Cache-Control: no-cache\r\n");
            foreach (var (name, value) in options.Headers) common.Append(name).Append(": ").Append(value).Append("\r\n");
            var get = new StringBuilder()
                .Append("GET ").Append(relay.PathAndQuery).Append(" HTTP/1.1\r\n")
                .Append(common)
                .Append(UplinkProtocol.TransportHeader).Append(": http\r\n")
                .Append("Accept: application/octet-stream\r\n\r\n");
            down.Write(Encoding.UTF8.GetBytes(get.ToString()));
            down.Flush();
            var buffer = new byte[4096];
            var filled = 0;
            var headLength = ReadHead(down, ref buffer, ref filled, "the relay");
            var (status, reason, headers) = ParseHead(buffer.AsSpan(0, headLength), "the relay");
            if (status != 200) throw new UplinkHandshakeException(status, reason, headers);
            if (!headers.TryGetValue(UplinkProtocol.SessionHeader, out var session) || session.Length is 0 or > 128
                || session.Any(c => c <= ' ' || c >= '\x7f'))
                throw new IOException($"the relay answered 200 without a valid {UplinkProtocol.SessionHeader} header (is something else answering at {relay.AbsolutePath}?)");
            var chunked = headers.TryGetValue("Transfer-Encoding", out var coding) && coding.Split(',').Last().Trim().Equals("chunked", StringComparison.OrdinalIgnoreCase);
            if (!chunked && headers.ContainsKey("Content-Length"))
                throw new IOException("the relay's uplink stream has a Content-Length; a proxy may be buffering it");

            (upRaw, up) = OpenHttp(relay, proxy, addresses, port, options, deadline, opened, cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();
            var post = new StringBuilder()
                .Append("POST ").Append(relay.PathAndQuery).Append(" HTTP/1.1\r\n")
                .Append(common)
                .Append(UplinkProtocol.SessionHeader).Append(": ").Append(session).Append("\r\n")
                .Append("Content-Type: application/octet-stream\r\n")
                .Append("Transfer-Encoding: chunked\r\n\r\n");
            up.Write(Encoding.UTF8.GetBytes(post.ToString()));
            up.Flush();

            var connection = new UplinkClientConnection(upRaw, up, downRaw, down, options.Limits, options.SubProtocol, UplinkTransport.Http)
            {
                _chunkedBody = chunked,
            };
            TcpSendBuffer.TrySetNotSentLowWatermark(upRaw.Socket, TcpSendBuffer.MinLowWatermark);
            if (filled > headLength)
            {
                connection._read = new byte[Math.Max(connection._read.Length, filled - headLength)];
                buffer.AsSpan(headLength, filled - headLength).CopyTo(connection._read);
                connection._readEnd = filled - headLength;
            }
            downRaw.Deadline = long.MaxValue;
            upRaw.Deadline = long.MaxValue;
            return connection;
        }
        catch (Exception e)
        {
            downRaw?.Abort();
            upRaw?.Abort();
            down?.Dispose();
            up?.Dispose();
            if (cancellationToken.IsCancellationRequested) throw new OperationCanceledException("connect cancelled", e, cancellationToken);
            throw;
        }
    }

    private static SslClientAuthenticationOptions TlsOptions(Uri relay, X509Certificate2Collection? trustedCa)
    {
        var options = new SslClientAuthenticationOptions { TargetHost = relay.DnsSafeHost };
        if (trustedCa is { Count: > 0 })
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck, // a private CA rarely publishes revocation lists
            };
            policy.CustomTrustStore.AddRange(trustedCa);
            options.CertificateChainPolicy = policy;
        }
        return options;
    }

    private static string Authority(Uri uri) =>
        (uri.HostNameType == UriHostNameType.IPv6 ? $"[{uri.DnsSafeHost}]" : uri.IdnHost) + (uri.IsDefaultPort ? "" : ":" + uri.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));

    // HTTP/1.1 CONNECT (RFC 9110 §9.3.6): the proxy opens a TCP tunnel to the relay and answers 2xx.
    private static void OpenTunnel(Stream raw, Uri relay, Uri proxy)
    {
        var target = (relay.HostNameType == UriHostNameType.IPv6 ? $"[{relay.DnsSafeHost}]" : relay.IdnHost) + ":" + relay.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var request = new StringBuilder().Append("CONNECT ").Append(target).Append(" HTTP/1.1\r\nHost: ").Append(target).Append("\r\n");
        if (!string.IsNullOrEmpty(proxy.UserInfo))
        {
            var credentials = Uri.UnescapeDataString(proxy.UserInfo);
            request.Append("Proxy-Authorization: Basic ").Append(Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials))).Append("\r\n");
        }
        request.Append("\r\n");
        raw.Write(Encoding.ASCII.GetBytes(request.ToString()));
        var buffer = new byte[1024];
        var filled = 0;
        var head = ReadHead(raw, ref buffer, ref filled, "the proxy");
        var (status, reason, _) = ParseHead(buffer.AsSpan(0, head), "the proxy");
        if (status is < 200 or > 299) throw new IOException($"the proxy refused the tunnel: HTTP {status} {reason}".TrimEnd());
        if (filled > head) throw new IOException("the proxy sent data before the tunnel was used");
    }

    // RFC 6455 §4.1: the opening handshake. Returns the selected subprotocol.
    private static string Upgrade(Stream stream, Uri relay, UplinkConnectOptions options, ref byte[] buffer, ref int filled, out int headLength)
    {
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        var request = new StringBuilder()
            .Append("GET ").Append(relay.PathAndQuery).Append(" HTTP/1.1\r\n")
            .Append("Host: ").Append(Authority(relay)).Append("\r\n")
            .Append("Upgrade: websocket\r\nConnection: Upgrade\r\n")
            .Append("Sec-WebSocket-Key: ").Append(key).Append("\r\n")
            .Append("Sec-WebSocket-Version: 13\r\n")
            .Append("Sec-WebSocket-Protocol: ").Append(options.SubProtocol).Append("\r\n");
        foreach (var (name, value) in options.Headers) request.Append(name).Append(": ").Append(value).Append("\r\n");
        request.Append("\r\n");
        stream.Write(Encoding.UTF8.GetBytes(request.ToString()));
        stream.Flush();

        headLength = ReadHead(stream, ref buffer, ref filled, "the relay");
        var (status, reason, headers) = ParseHead(buffer.AsSpan(0, headLength), "the relay");
        if (status != 101) throw new UplinkHandshakeException(status, reason, headers);
        if (!headers.TryGetValue("Upgrade", out var upgrade) || !upgrade.Equals("websocket", StringComparison.OrdinalIgnoreCase))
            throw new IOException("the relay answered 101 without 'Upgrade: websocket'");
        if (!headers.TryGetValue("Connection", out var connection) || !connection.Split(',').Any(t => t.Trim().Equals("upgrade", StringComparison.OrdinalIgnoreCase)))
            throw new IOException("the relay answered 101 without 'Connection: Upgrade'");
        if (!headers.TryGetValue("Sec-WebSocket-Accept", out var accept) || accept != WebSocketFraming.ComputeAccept(key))
            throw new IOException("the relay's Sec-WebSocket-Accept does not match the key (RFC 6455 §4.1)");
        if (!headers.TryGetValue("Sec-WebSocket-Protocol", out var selected) || selected != options.SubProtocol)
            throw new IOException($"the relay did not select the '{options.SubProtocol}' subprotocol");
        return selected;
    }

    private static int ReadHead(Stream stream, ref byte[] buffer, ref int filled, string who)
    {
        while (true)
        {
            var end = buffer.AsSpan(0, filled).IndexOf(HeadEnd);
            if (end >= 0) return end + HeadEnd.Length;
            if (filled >= MaxHeadBytes) throw new IOException($"{who} sent more than {MaxHeadBytes} bytes of HTTP header");
            if (filled == buffer.Length) Array.Resize(ref buffer, Math.Min(MaxHeadBytes, buffer.Length * 2));
            var n = stream.Read(buffer, filled, buffer.Length - filled);
            if (n == 0) throw new IOException($"{who} closed the connection {(filled == 0 ? "without an answer" : "in the middle of its answer")}");
            filled += n;
        }
    }

    private static (int Status, string Reason, Dictionary<string, string> Headers) ParseHead(ReadOnlySpan<byte> head, string who)
    {
        var text = Encoding.Latin1.GetString(head);
        var lines = text.Split("\r\n");
        var status = lines[0].Split(' ', 3);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || status[1].Length != 3
            || !int.TryParse(status[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var code))
            throw new IOException($"{who} did not answer HTTP: '{Printable(lines[0])}'");
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            if (line.Length == 0) continue;
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0) throw new IOException($"{who} sent a malformed header line: '{Printable(line)}'");
            var name = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            headers[name] = headers.TryGetValue(name, out var earlier) ? earlier + "," + value : value;
        }
        return (code, status.Length > 2 ? status[2] : "", headers);
    }

    private static string Printable(string s) => new(s.Take(120).Select(c => c is >= ' ' and < '\x7f' ? c : '?').ToArray());

    private static void CheckHeader(string name, string value)
    {
        if (name.Length == 0 || name.Any(c => c <= ' ' || c >= '\x7f' || c == ':'))
            throw new ArgumentException($"'{name}' is not a valid header name");
        if (value.Any(c => c is '\r' or '\n' or '\0'))
            throw new ArgumentException($"the value of header '{name}' contains a line break");
    }

    // ------------------------------------------------------------------ receiving

    /// <summary>
    /// Blocks until the next uplink message arrives and returns it; answers WebSocket pings on the way.
    /// Returns null when the relay closed the WebSocket (the close is answered).
    /// </summary>
    /// <exception cref="UplinkProtocolException">A text message, an oversized message or malformed uplink bytes.</exception>
    /// <exception cref="WebSocketFramingException">Bytes that are not WebSocket frames.</exception>
    /// <exception cref="IOException">The connection failed or the relay closed it without a close frame.</exception>
    public UplinkMessage? Receive()
    {
        try
        {
            return Transport == UplinkTransport.Http ? ReceiveHttpMessage() : ReceiveMessage();
        }
        catch (ObjectDisposedException e)
        {
            throw Aborted(e);
        }
    }

    private UplinkMessage? ReceiveMessage()
    {
        var filled = 0;
        var expected = -1;
        var inMessage = false;
        Span<byte> control = stackalloc byte[WebSocketFraming.MaxControlPayload];
        while (true)
        {
            var header = ReadFrameHeader();
            if (header.Masked) throw new WebSocketFramingException("the relay masked a frame; a server must not (RFC 6455 §5.1)");
            if (header.IsControl)
            {
                var payload = control[..(int)header.PayloadLength];
                ReadExactly(payload);
                switch (header.Opcode)
                {
                    case WebSocketOpcode.Ping:
                        Reply(WebSocketOpcode.Pong, payload);
                        break;
                    case WebSocketOpcode.Close:
                        _closeReceived = true;
                        // Echo the status code (§5.5.1); the connection is over either way.
                        if (!_closeSent) Reply(WebSocketOpcode.Close, payload.Length >= 2 ? payload[..2] : []);
                        return null;
                }
                continue;
            }
            if (header.Opcode == WebSocketOpcode.Text) throw new UplinkProtocolException("text WebSocket message on the uplink; every message is binary");
            if (header.Opcode == WebSocketOpcode.Binary && inMessage) throw new WebSocketFramingException("a new message began before the previous one ended (RFC 6455 §5.4)");
            if (header.Opcode == WebSocketOpcode.Continuation && !inMessage) throw new WebSocketFramingException("a continuation frame outside a message (RFC 6455 §5.4)");
            inMessage = true;

            var remaining = header.PayloadLength;
            while (true)
            {
                if (expected < 0 && UplinkCodec.TryPeekBodyLength(_message.AsSpan(0, filled), _limits, out var body))
                    expected = UplinkProtocol.HeaderSize + body;
                if (expected >= 0 && filled + remaining > expected)
                    throw new UplinkProtocolException($"WebSocket message longer than the {expected} bytes its header announced");
                if (remaining == 0) break;
                // Until the uplink header is in, read only up to it, so its length is checked first.
                var want = (int)(expected < 0 ? Math.Min(remaining, UplinkProtocol.HeaderSize - filled) : remaining);
                if (_message.Length < filled + want) Array.Resize(ref _message, Math.Max(filled + want, Math.Min(_message.Length * 2, expected)));
                ReadExactly(_message.AsSpan(filled, want));
                filled += want;
                remaining -= want;
            }
            if (!header.Fin) continue;
            if (filled != expected)
                throw new UplinkProtocolException($"WebSocket message of {filled} bytes, its header announced {Math.Max(expected, UplinkProtocol.HeaderSize)}");
            return UplinkCodec.ParseOne(_message.AsMemory(0, filled), _limits);
        }
    }

    // HTTP fallback: the GET's body is a byte stream of uplink messages, carried in chunks (or, from a
    // proxy that un-chunks, until the connection closes); chunk and message boundaries need not agree.
    private UplinkMessage? ReceiveHttpMessage()
    {
        Span<byte> header = stackalloc byte[UplinkProtocol.HeaderSize];
        if (!ReadBody(header, atMessageStart: true)) return null;
        UplinkCodec.TryPeekBodyLength(header, _limits, out var body); // throws when over the limit
        var length = UplinkProtocol.HeaderSize + body;
        if (_message.Length < length) Array.Resize(ref _message, Math.Max(length, Math.Min(_message.Length * 2, _limits.MaxMessageBytes + UplinkProtocol.HeaderSize)));
        header.CopyTo(_message);
        ReadBody(_message.AsSpan(UplinkProtocol.HeaderSize, body), atMessageStart: false);
        return UplinkCodec.ParseOne(_message.AsMemory(0, length), _limits);
    }

    // Fills destination from the body; false when the body ended cleanly before its first byte (only
    // allowed at a message boundary).
    private bool ReadBody(Span<byte> destination, bool atMessageStart)
    {
        var first = true;
        while (!destination.IsEmpty)
        {
            if (_bodyEnded) return EndOfBody(first && atMessageStart);
            if (_chunkedBody && !_inChunk)
            {
                if (!NextChunk()) return EndOfBody(first && atMessageStart);
                continue;
            }
            if (_readEnd == _readStart)
            {
                if (!_chunkedBody)
                {
                    // Until close: a clean end is the relay closing the connection.
                    if (_readStart > 0) _readStart = _readEnd = 0;
                    var n = _recvStream.Read(_read, 0, _read.Length);
                    if (n == 0) { _bodyEnded = true; continue; }
                    _readEnd = n;
                }
                else
                {
                    Fill();
                }
            }
            var take = Math.Min(destination.Length, _readEnd - _readStart);
            if (_chunkedBody) take = Math.Min(take, _chunkRemaining);
            _read.AsSpan(_readStart, take).CopyTo(destination);
            _readStart += take;
            destination = destination[take..];
            first = false;
            if (_chunkedBody)
            {
                _chunkRemaining -= take;
                if (_chunkRemaining == 0)
                {
                    while (_readEnd - _readStart < 2) Fill();
                    if (!_read.AsSpan(_readStart, 2).SequenceEqual(UplinkHttpFraming.ChunkEnd))
                        throw new UplinkProtocolException("a chunk's data is not followed by CRLF (RFC 9112 §7.1)");
                    _readStart += 2;
                    _inChunk = false;
                }
            }
        }
        return true;
    }

    private bool EndOfBody(bool clean)
    {
        _closeReceived = true;
        if (clean) return false;
        throw new IOException("the relay's stream ended in the middle of a message");
    }

    // Reads the next chunk-size line; false at the last chunk (its trailers are read too).
    private bool NextChunk()
    {
        int size, consumed;
        while (!UplinkHttpFraming.TryReadChunkHeader(_read.AsSpan(_readStart, _readEnd - _readStart), out size, out consumed)) Fill();
        _readStart += consumed;
        if (size > 0)
        {
            _chunkRemaining = size;
            _inChunk = true;
            return true;
        }
        while (true)
        {
            if (!UplinkHttpFraming.TryReadTrailerLine(_read.AsSpan(_readStart, _readEnd - _readStart), out var last, out consumed))
            {
                Fill();
                continue;
            }
            _readStart += consumed;
            if (last) break;
        }
        _bodyEnded = true;
        return false;
    }

    private WebSocketFrameHeader ReadFrameHeader()
    {
        while (true)
        {
            if (WebSocketFraming.TryReadHeader(_read.AsSpan(_readStart, _readEnd - _readStart), out var header))
            {
                _readStart += header.HeaderLength;
                return header;
            }
            Fill();
        }
    }

    private void Fill()
    {
        if (_readStart > 0)
        {
            _read.AsSpan(_readStart, _readEnd - _readStart).CopyTo(_read);
            _readEnd -= _readStart;
            _readStart = 0;
        }
        var n = _recvStream.Read(_read, _readEnd, _read.Length - _readEnd);
        if (n == 0)
            throw new IOException(_closeSent ? "the relay closed the connection"
                : Transport == UplinkTransport.Http ? "the relay closed the connection in the middle of its stream"
                : "the relay closed the connection without a WebSocket close");
        _readEnd += n;
    }

    private void ReadExactly(Span<byte> destination)
    {
        var buffered = Math.Min(destination.Length, _readEnd - _readStart);
        _read.AsSpan(_readStart, buffered).CopyTo(destination);
        _readStart += buffered;
        destination = destination[buffered..];
        while (!destination.IsEmpty)
        {
            // Large payloads go straight to their place; small ones through the buffer.
            if (destination.Length >= _read.Length / 2)
            {
                var n = _recvStream.Read(destination);
                if (n == 0) throw new IOException("the relay closed the connection in the middle of a frame");
                destination = destination[n..];
            }
            else
            {
                Fill();
                var take = Math.Min(destination.Length, _readEnd - _readStart);
                _read.AsSpan(_readStart, take).CopyTo(destination);
                _readStart += take;
                destination = destination[take..];
            }
        }
    }

    private void Reply(WebSocketOpcode opcode, ReadOnlySpan<byte> payload)
    {
        lock (_sendLock)
        {
            if (_closeSent) return;
            WriteFrame(opcode, payload);
            if (opcode == WebSocketOpcode.Close) _closeSent = true;
        }
        if (HasPendingBytes) ReplyPending?.Invoke();
    }

    // ------------------------------------------------------------------ sending

    /// <summary>
    /// Sends <paramref name="message"/> as one binary WebSocket message without blocking. True when the
    /// kernel took all of it; false when some of it waits for <see cref="FlushPending"/>.
    /// </summary>
    /// <exception cref="IOException">The connection failed or was closed.</exception>
    public bool TrySend(UplinkMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var body = UplinkCodec.Encode(message);
        lock (_sendLock)
        {
            ThrowIfClosed();
            WriteFrame(WebSocketOpcode.Binary, body);
            if (message.Channel == UplinkChannel.Media) Interlocked.Add(ref _mediaBytesSent, body.Length);
        }
        return !HasPendingBytes;
    }

    /// <summary>
    /// Sends one <see cref="MediaFrame"/> (header and <paramref name="unit"/>'s payload) as one
    /// WebSocket frame without blocking; true when the kernel took all of it.
    /// </summary>
    /// <exception cref="ArgumentException">The frame exceeds the message size limit.</exception>
    /// <exception cref="IOException">The connection failed or was closed.</exception>
    public bool TrySendFrame(ulong sequence, ushort streamId, ulong sendTimestamp, in AccessUnit unit)
    {
        var length = UplinkProtocol.FrameHeaderSize + unit.Data.Length;
        if (length - UplinkProtocol.HeaderSize > _limits.MaxMessageBytes)
            throw new ArgumentException($"frame of {unit.Data.Length} bytes exceeds the {_limits.MaxMessageBytes}-byte message limit", nameof(unit));
        if (Transport == UplinkTransport.Http) return TrySendFrameChunk(sequence, streamId, sendTimestamp, unit, length);
        var headerLength = WebSocketFraming.ClientHeaderLength(length);
        var buffer = ArrayPool<byte>.Shared.Rent(headerLength + length);
        try
        {
            // One buffer, one copy of the payload, masked in place, one write.
            var message = buffer.AsSpan(headerLength, length);
            UplinkCodec.WriteFrameHeader(message, sequence, streamId, sendTimestamp, unit);
            unit.Data.Span.CopyTo(message[UplinkProtocol.FrameHeaderSize..]);
            lock (_sendLock)
            {
                ThrowIfClosed();
                var key = NextMaskKey();
                WebSocketFraming.WriteClientHeader(buffer, WebSocketOpcode.Binary, length, key);
                WebSocketFraming.Mask(message, key);
                _stream.Write(buffer, 0, headerLength + length);
                Interlocked.Add(ref _mediaBytesSent, length);
            }
        }
        catch (ObjectDisposedException e)
        {
            throw Aborted(e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return !HasPendingBytes;
    }

    private bool TrySendFrameChunk(ulong sequence, ushort streamId, ulong sendTimestamp, in AccessUnit unit, int length)
    {
        var headerLength = UplinkHttpFraming.ChunkHeaderLength(length);
        var buffer = ArrayPool<byte>.Shared.Rent(headerLength + length + 2);
        try
        {
            UplinkHttpFraming.WriteChunkHeader(buffer, length);
            var message = buffer.AsSpan(headerLength, length);
            UplinkCodec.WriteFrameHeader(message, sequence, streamId, sendTimestamp, unit);
            unit.Data.Span.CopyTo(message[UplinkProtocol.FrameHeaderSize..]);
            UplinkHttpFraming.ChunkEnd.CopyTo(buffer.AsSpan(headerLength + length));
            lock (_sendLock)
            {
                ThrowIfClosed();
                _stream.Write(buffer, 0, headerLength + length + 2);
                Interlocked.Add(ref _mediaBytesSent, length);
            }
        }
        catch (ObjectDisposedException e)
        {
            throw Aborted(e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return !HasPendingBytes;
    }

    /// <summary>Sends <paramref name="message"/> and blocks until the kernel took all of it.</summary>
    public void Send(UplinkMessage message, CancellationToken cancellationToken)
    {
        if (!TrySend(message)) FlushPending(cancellationToken);
    }

    /// <summary>Blocks until every byte sent so far is in the kernel (the peer is reading).</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (checked every quarter second).</exception>
    /// <exception cref="IOException">The connection failed.</exception>
    public void FlushPending(CancellationToken cancellationToken)
    {
        try
        {
            _socket.FlushPending(cancellationToken);
        }
        catch (ObjectDisposedException e)
        {
            throw Aborted(e);
        }
    }

    /// <summary>
    /// Closes gracefully: sends <paramref name="goodbye"/> (if any) and a close frame, waiting at most
    /// <paramref name="timeout"/> for the kernel to take them; aborts when that fails. The relay's
    /// answering close arrives through <see cref="Receive"/>, which returns null.
    /// </summary>
    public void Close(UplinkMessage? goodbye, ushort status, string description, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(description);
        try
        {
            lock (_sendLock)
            {
                if (!_closeSent && !_aborted && Transport == UplinkTransport.Http)
                {
                    // The POST's body ends; the relay then ends the GET's, which Receive sees as null.
                    if (goodbye is not null) WriteChunk(UplinkCodec.Encode(goodbye));
                    _stream.Write(UplinkHttpFraming.LastChunk);
                    _closeSent = true;
                }
                if (!_closeSent && !_aborted)
                {
                    if (goodbye is not null) WriteFrame(WebSocketOpcode.Binary, UplinkCodec.Encode(goodbye));
                    var reason = Encoding.UTF8.GetBytes(description);
                    var payload = new byte[2 + Math.Min(reason.Length, WebSocketFraming.MaxControlPayload - 2)];
                    BinaryPrimitives.WriteUInt16BigEndian(payload, status);
                    reason.AsSpan(0, payload.Length - 2).CopyTo(payload.AsSpan(2));
                    WriteFrame(WebSocketOpcode.Close, payload);
                    _closeSent = true;
                }
            }
            using var cts = new CancellationTokenSource(timeout);
            _socket.FlushPending(cts.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            Abort();
        }
    }

    /// <summary>Ends the connection at once; blocked <see cref="Receive"/> and <see cref="FlushPending"/> calls fail.</summary>
    public void Abort()
    {
        _aborted = true;
        _socket.Abort();
        if (_recvSocket != _socket) _recvSocket.Abort();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Abort();
        _stream.Dispose();
        if (_recvStream != _stream) _recvStream.Dispose();
    }

    private void ThrowIfClosed()
    {
        if (_aborted) throw new IOException("the uplink connection was aborted");
        if (_closeSent) throw new IOException("the uplink connection is closing");
    }

    // Caller holds _sendLock.
    private void WriteFrame(WebSocketOpcode opcode, ReadOnlySpan<byte> payload)
    {
        if (Transport == UplinkTransport.Http)
        {
            // Only whole uplink messages travel over HTTP; the protocol's own Ping/Pong are the heartbeats.
            if (opcode == WebSocketOpcode.Binary) WriteChunk(payload);
            return;
        }
        var headerLength = WebSocketFraming.ClientHeaderLength(payload.Length);
        var buffer = ArrayPool<byte>.Shared.Rent(headerLength + payload.Length);
        try
        {
            var key = NextMaskKey();
            WebSocketFraming.WriteClientHeader(buffer, opcode, payload.Length, key);
            payload.CopyTo(buffer.AsSpan(headerLength));
            WebSocketFraming.Mask(buffer.AsSpan(headerLength, payload.Length), key);
            _stream.Write(buffer, 0, headerLength + payload.Length);
        }
        catch (ObjectDisposedException e)
        {
            throw Aborted(e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // HTTP fallback: one uplink message, one chunk, one write. Caller holds _sendLock.
    private void WriteChunk(ReadOnlySpan<byte> message)
    {
        var headerLength = UplinkHttpFraming.ChunkHeaderLength(message.Length);
        var buffer = ArrayPool<byte>.Shared.Rent(headerLength + message.Length + 2);
        try
        {
            UplinkHttpFraming.WriteChunkHeader(buffer, message.Length);
            message.CopyTo(buffer.AsSpan(headerLength));
            UplinkHttpFraming.ChunkEnd.CopyTo(buffer.AsSpan(headerLength + message.Length));
            _stream.Write(buffer, 0, headerLength + message.Length + 2);
        }
        catch (ObjectDisposedException e)
        {
            throw Aborted(e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // RFC 6455 §5.3: a fresh, unpredictable key per frame. Drawn from a random block refilled every
    // 1,024 keys. Caller holds _sendLock.
    private uint NextMaskKey()
    {
        if (_nextMaskKey == _maskKeys.Length)
        {
            RandomNumberGenerator.Fill(_maskKeys);
            _nextMaskKey = 0;
        }
        var key = BinaryPrimitives.ReadUInt32LittleEndian(_maskKeys.AsSpan(_nextMaskKey));
        _nextMaskKey += 4;
        return key;
    }

    private static IOException Aborted(Exception e) => new("the uplink connection was aborted", e);
}

/// <summary>What carries an uplink connection.</summary>
public enum UplinkTransport
{
    /// <summary>One WebSocket (the normal case).</summary>
    WebSocket,

    /// <summary>The HTTP fallback: a streaming <c>GET</c> down and a chunked streaming <c>POST</c> up.</summary>
    Http,
}
