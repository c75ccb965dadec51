using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Sdp;

namespace Pinhole.Transport.Rtsp;

/// <summary>How RTP travels from the camera.</summary>
public enum RtspLowerTransport
{
    /// <summary>Interleaved on the RTSP TCP connection (RFC 2326 §10.12): works through NAT and firewalls.</summary>
    Tcp,

    /// <summary>UDP unicast to a pair of local ports (RTP even, RTCP odd; RFC 3550 §11).</summary>
    Udp,
}

/// <summary>Settings of an <see cref="RtspClient"/>.</summary>
public sealed record RtspClientOptions
{
    /// <summary>RTP transport (the first one tried when <see cref="TransportFallback"/> is on); TCP interleaved by default.</summary>
    public RtspLowerTransport Transport { get; init; } = RtspLowerTransport.Tcp;

    /// <summary>
    /// When true (a camera's <c>auto</c> transport), a session whose SETUP is refused for its lower
    /// transport (461, or answered with the other one) is retried at once over the other transport,
    /// and a UDP session that receives no RTP within <see cref="UdpFirstPacketTimeout"/> of PLAY is
    /// retried over TCP. Each transport is tried at most once per <see cref="RtspClient.RunAsync"/>.
    /// When false the session uses <see cref="Transport"/> or fails.
    /// </summary>
    public bool TransportFallback { get; init; }

    /// <summary>
    /// With <see cref="TransportFallback"/>: how long a UDP session may go without its first RTP
    /// packet after PLAY before it counts as blocked (a firewall or NAT between camera and edge).
    /// </summary>
    public TimeSpan UdpFirstPacketTimeout { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>Time allowed for the TCP connect.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Time allowed for each response.</summary>
    public TimeSpan ResponseTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The session fails when no RTP arrives for this long after PLAY.</summary>
    public TimeSpan MediaTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Keepalive interval; null picks a third of the session timeout (RFC 2326 §12.37).</summary>
    public TimeSpan? KeepaliveInterval { get; init; }

    /// <summary>How often RTCP receiver reports go to the server (RFC 3550 §6.2 suggests about 5 s).</summary>
    public TimeSpan ReceiverReportInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Most 3xx redirects followed.</summary>
    public int MaxRedirects { get; init; } = 3;

    /// <summary>The User-Agent header.</summary>
    public string UserAgent { get; init; } = "Pinhole";

    /// <summary>Parser limits for the server's messages.</summary>
    public RtspParserLimits ParserLimits { get; init; } = RtspParserLimits.Default;
}

/// <summary>
/// Plays one RTSP URL (RFC 2326): OPTIONS, DESCRIBE, SETUP per supported track, PLAY, keepalive,
/// TEARDOWN; Basic/Digest auth on 401 with credentials from the URL; bounded 3xx redirects.
/// Access units go to an <see cref="IMediaSink"/>. Credentials never appear in logs or exceptions.
/// </summary>
public sealed partial class RtspClient
{
    private readonly Uri _url;
    private readonly RtspClientOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly string? _user;
    private readonly string? _password;
    private readonly object _mediaLock = new();
    private int _cseq;
    private HttpClientAuthenticator? _auth;
    private RtspSession? _session;
    private long _lastMediaTimestamp;
    private long _protocolErrors;
    private RtpReceptionStatistics[] _statistics = [];
    private long _rtpPackets;
    private RtspLowerTransport _sessionTransport;
    private TaskCompletionSource? _bye;
    private readonly uint _ssrc = (uint)Random.Shared.NextInt64(1, uint.MaxValue);

    /// <summary>Creates a client for <paramref name="url"/> (<c>rtsp://[user:pass@]host[:port]/path</c>).</summary>
    public RtspClient(Uri url, RtspClientOptions? options = null, ILogger<RtspClient>? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (!url.IsAbsoluteUri || !url.Scheme.Equals("rtsp", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"not an rtsp:// URL: {RtspUrl.Redact(url)}", nameof(url));
        if (RtspUrl.TryGetCredentials(url, out var user, out var password)) (_user, _password) = (user, password);
        _url = RtspUrl.WithoutCredentials(url);
        _options = options ?? new RtspClientOptions();
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The camera URL without credentials (safe to log).</summary>
    public string SafeUrl => RtspUrl.Redact(_url);

    /// <summary>The session description of the last DESCRIBE.</summary>
    public SessionDescription? Description { get; private set; }

    /// <summary>Access units delivered to the sink so far.</summary>
    public long DeliveredUnits { get; private set; }

    /// <summary>
    /// The lower transport of the latest session that delivered RTP (null before the first packet).
    /// Kept after <see cref="RunAsync"/> ends, so a caller can remember what worked.
    /// </summary>
    public RtspLowerTransport? PlayedTransport { get; private set; }

    /// <summary>
    /// Raised when a session's first RTP packet arrives, with the session's lower transport. Runs on
    /// the receiving thread: keep it short.
    /// </summary>
    public event Action<RtspLowerTransport>? Playing;

    /// <summary>
    /// Connects, sets up every supported track and delivers media to <paramref name="sink"/> until
    /// <paramref name="cancellationToken"/> is cancelled (then sends TEARDOWN and returns normally).
    /// With <see cref="RtspClientOptions.TransportFallback"/>, a refused or silent lower transport is
    /// retried once over the other one (a new connection and session; the sink sees the tracks again).
    /// Throws <see cref="RtspClientException"/> (credential-free) when the camera is unreachable,
    /// refuses, stops sending, ends the stream (RTCP BYE) or closes the connection.
    /// </summary>
    public async Task RunAsync(IMediaSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var transport = _options.Transport;
        string? fellBackBecause = null;
        while (true)
        {
            try
            {
                await RunSessionAsync(sink, transport, fellBackBecause, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (RtspClientException e) when (fellBackBecause is not null && Interlocked.Read(ref _rtpPackets) == 0
                && !e.Message.Contains(fellBackBecause, StringComparison.Ordinal))
            {
                // The other transport failed too, before any media: say why the first one was left.
                throw new RtspClientException($"{e.Message} (after {fellBackBecause})", e.StatusCode, e);
            }
            catch (LowerTransportFailedException e) when (fellBackBecause is null)
            {
                // A session exists on the camera (a refusal on a later track, a SETUP answered with
                // the other transport, or a silent UDP session): it was torn down; start afresh on a
                // new connection, as servers keep one transport per session. (A 461 before any
                // session is retried on the same connection, in RunSessionAsync.)
                var other = Other(transport);
                Log.FallingBack(_logger, SafeUrl, Name(transport), Name(other), e.Message);
                fellBackBecause = $"{Name(transport)}: {e.Message}";
                transport = other;
            }
        }
    }

    private static string Name(RtspLowerTransport transport) => transport == RtspLowerTransport.Tcp ? "TCP" : "UDP";

    private static RtspLowerTransport Other(RtspLowerTransport transport) => transport == RtspLowerTransport.Tcp ? RtspLowerTransport.Udp : RtspLowerTransport.Tcp;

    /// <summary>One session over <paramref name="lowerTransport"/>; <paramref name="fellBackBecause"/> is null on the first attempt.</summary>
    private async Task RunSessionAsync(IMediaSink sink, RtspLowerTransport lowerTransport, string? fellBackBecause, CancellationToken cancellationToken)
    {
        var canFallBack = _options.TransportFallback && fellBackBecause is null;

        // Each run is a fresh session: nothing from an earlier attempt may leak into it.
        _session = null;
        _auth = null;
        _publicMethods = "";
        _credentialsAllowed = true;
        var url = _url;
        RtspConnection? connection = null;
        var udpSockets = new List<UdpClient>();
        try
        {
            RtspResponse describe;
            for (var redirects = 0; ; redirects++)
            {
                connection = await ConnectAsync(url, cancellationToken).ConfigureAwait(false);
                var options = await RequestAsync(connection, new RtspRequest("OPTIONS", url.AbsoluteUri), cancellationToken, allowRedirect: true).ConfigureAwait(false);
                if (options.StatusCode is >= 300 and < 400 || options.IsSuccess)
                {
                    _publicMethods = options.Headers["Public"] ?? "";
                }
                var req = new RtspRequest("DESCRIBE", url.AbsoluteUri);
                req.Headers.Add("Accept", "application/sdp");
                describe = options.StatusCode is >= 300 and < 400 ? options : await RequestAsync(connection, req, cancellationToken, allowRedirect: true).ConfigureAwait(false);
                if (describe.StatusCode is < 300 or >= 400) break;
                // RFC 2326 §11.3.2/3: the Location header names the new URL.
                var location = describe.Headers["Location"];
                if (redirects >= _options.MaxRedirects || location is null || !Uri.TryCreate(url, location, out var next) || next.Scheme != "rtsp")
                    throw new RtspClientException($"{RtspUrl.Redact(url)}: redirect {describe.StatusCode} without a usable rtsp:// Location, or more than {_options.MaxRedirects} redirects", describe.StatusCode);
                Log.Redirected(_logger, RtspUrl.Redact(url), RtspUrl.Redact(next));
                // Credentials from the configured URL go only to the host they were configured for.
                if (!string.Equals(next.IdnHost, _url.IdnHost, StringComparison.OrdinalIgnoreCase)) _credentialsAllowed = false;
                url = RtspUrl.WithoutCredentials(next);
                await connection.DisposeAsync().ConfigureAwait(false);
                connection = null;
                _auth = null;
            }
            EnsureSuccess(describe, "DESCRIBE", url);
            var sdp = describe.Headers["Content-Type"] is { } type && !type.StartsWith("application/sdp", StringComparison.OrdinalIgnoreCase)
                ? throw new RtspClientException($"{RtspUrl.Redact(url)}: DESCRIBE answered {type}, not application/sdp")
                : ParseSdp(describe, url);
            Description = sdp;
            var baseUrl = BaseUrl(describe, url);

            // One depacketizer per supported media section; the rest are skipped.
            var tracks = new List<(RtpDepacketizer Depacketizer, Uri Control, MediaDescription Media)>();
            foreach (var media in sdp.Media)
            {
                if (!RtpDepacketizerFactory.TryCreate(media, tracks.Count, out var depacketizer))
                {
                    Log.TrackSkipped(_logger, SafeUrl, media.Media, media.RtpMap(media.PayloadType)?.EncodingName ?? string.Join(' ', media.Formats));
                    continue;
                }
                tracks.Add((depacketizer!, RtspUrl.ResolveControl(baseUrl, media.Control), media));
            }
            if (tracks.Count == 0) throw new RtspClientException($"{RtspUrl.Redact(url)}: no track with a supported codec (H.264, H.265, AAC, G.711)");

            var mux = new MediaSinkMultiplexer(new CountingSink(sink, this), tracks.Count, tracks.Select(t => t.Depacketizer.TrackInfo));
            var channelMap = new Dictionary<int, RtpDepacketizer>();
            var rtcpChannelMap = new Dictionary<int, int>();
            _statistics = tracks.Select(_ => new RtpReceptionStatistics()).ToArray();
            Interlocked.Exchange(ref _rtpPackets, 0);
            _sessionTransport = lowerTransport;
            var bye = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _bye = bye;
            var rtcpTargets = new Func<byte[], Task>?[tracks.Count];
            var udpTasks = new List<Task>();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            for (var i = 0; i < tracks.Count; i++)
            {
                var (dep, control, _) = tracks[i];
                var setup = new RtspRequest("SETUP", control.AbsoluteUri);
                UdpClient? rtp = null, rtcp = null;
                if (lowerTransport == RtspLowerTransport.Tcp)
                {
                    setup.Headers.Add("Transport", new RtspTransport { Protocol = "RTP/AVP/TCP", Interleaved = new RtspRange(2 * i, 2 * i + 1) }.ToString());
                }
                else
                {
                    (rtp, rtcp) = BindUdpPair();
                    udpSockets.Add(rtp);
                    udpSockets.Add(rtcp);
                    var port = ((IPEndPoint)rtp.Client.LocalEndPoint!).Port;
                    setup.Headers.Add("Transport", new RtspTransport { Protocol = "RTP/AVP", ClientPort = new RtspRange(port, port + 1) }.ToString());
                }
                var response = await RequestAsync(connection!, setup, cancellationToken).ConfigureAwait(false);
                // RFC 2326 §11.4.4: 461 Unsupported Transport — the camera does not offer this lower transport.
                if (response.StatusCode == 461 && canFallBack)
                {
                    var refused = $"SETUP refused: 461 {response.ReasonPhrase}";
                    if (_session is not null) throw new LowerTransportFailedException(refused);
                    // Nothing is set up yet (the usual case: the first SETUP): ask again on this
                    // connection. A new one raced GStreamer's shared media, still being torn down
                    // for the closed connection, and its DESCRIBE got 503.
                    var other = Other(lowerTransport);
                    Log.FallingBack(_logger, SafeUrl, Name(lowerTransport), Name(other), refused);
                    fellBackBecause = $"{Name(lowerTransport)}: {refused}";
                    lowerTransport = other;
                    _sessionTransport = other;
                    canFallBack = false;
                    rtp?.Dispose();
                    rtcp?.Dispose();
                    i = -1;
                    continue;
                }
                EnsureSuccess(response, "SETUP", control);
                if (response.Headers["Session"] is { } sessionHeader) _session ??= ParseOrFail(() => RtspSession.Parse(sessionHeader), url);
                if (_session is null) throw new RtspClientException($"{RtspUrl.Redact(url)}: SETUP answered without a Session header");
                var transportHeader = response.Headers["Transport"] ?? throw new RtspClientException($"{RtspUrl.Redact(url)}: SETUP answered without a Transport header");
                var transport = ParseOrFail(() => RtspTransport.ParseList(transportHeader)[0], url);
                if (lowerTransport == RtspLowerTransport.Tcp != transport.IsTcp)
                {
                    // §12.39: the server answers with the transport it chose; one we did not offer is a refusal of ours.
                    if (canFallBack) throw new LowerTransportFailedException($"SETUP answered with another lower transport ('{transport.Protocol}')");
                    throw new RtspClientException($"{RtspUrl.Redact(url)}: SETUP asked for {lowerTransport} but the server answered '{transport.Protocol}'", 461);
                }
                if (lowerTransport == RtspLowerTransport.Tcp)
                {
                    // The server may pick other channels than we asked for (§12.39).
                    var channel = transport.Interleaved?.First ?? 2 * i;
                    var rtcpChannel = transport.Interleaved?.Second ?? channel + 1;
                    channelMap[channel] = dep;
                    rtcpChannelMap[rtcpChannel] = i;
                    var c = connection!;
                    rtcpTargets[i] = bytes =>
                    {
                        var w = new System.Buffers.ArrayBufferWriter<byte>(bytes.Length + 4);
                        InterleavedFrame.Write(w, (byte)rtcpChannel, bytes);
                        return c.WriteAsync(w.WrittenMemory, stop.Token);
                    };
                }
                else
                {
                    var server = Normalize(connection!.RemoteEndPoint!.Address);
                    udpTasks.Add(ReceiveUdpAsync(rtp!, dep, mux, server, stop.Token));
                    udpTasks.Add(ReceiveRtcpAsync(rtcp!, i, server, stop.Token));
                    if (transport.ServerPort is { } serverPort)
                    {
                        var socket = rtcp!;
                        var target = new IPEndPoint(server, serverPort.Second);
                        rtcpTargets[i] = async bytes => await socket.SendAsync(bytes, target, stop.Token).ConfigureAwait(false);
                    }
                }
                Log.TrackSetUp(_logger, SafeUrl, i, tracks[i].Media.RtpMap(tracks[i].Media.PayloadType)?.EncodingName ?? "?", transport.ToString());
            }

            if (lowerTransport == RtspLowerTransport.Tcp)
            {
                connection!.FrameReceived = frame =>
                {
                    // RTP and RTCP channels come from each track's Transport answer (§10.12).
                    if (channelMap.TryGetValue(frame.Channel, out var dep)) HandleRtp(frame.Payload, dep, mux);
                    else if (rtcpChannelMap.TryGetValue(frame.Channel, out var track)) HandleRtcp(frame.Payload.Span, track);
                };
            }
            connection!.RequestReceived = request => request.Method is "OPTIONS" or "GET_PARAMETER"
                ? new RtspResponse(200, "OK")
                : new RtspResponse(501, RtspResponse.ReasonFor(501));

            var play = new RtspRequest("PLAY", RtspUrl.ResolveControl(baseUrl, sdp.Control).AbsoluteUri);
            play.Headers.Add("Range", "npt=0.000-");
            _lastMediaTimestamp = _time.GetTimestamp();
            var playResponse = await RequestAsync(connection, play, cancellationToken).ConfigureAwait(false);
            EnsureSuccess(playResponse, "PLAY", url);
            Log.Playing(_logger, SafeUrl, tracks.Count, Name(lowerTransport), _session!.TimeoutSeconds);

            var keepalive = KeepaliveAsync(connection, url, stop.Token);
            var watchdog = MediaWatchdogAsync(stop.Token);
            var reports = ReceiverReportsAsync(rtcpTargets, stop.Token);
            var all = new List<Task> { connection.Completion, keepalive, watchdog, reports, bye.Task };
            all.AddRange(udpTasks);
            if (lowerTransport == RtspLowerTransport.Udp && _options.TransportFallback)
                all.Add(FirstUdpPacketAsync(canFallBack, fellBackBecause, stop.Token));
            var cancelled = Task.Delay(Timeout.InfiniteTimeSpan, _time, cancellationToken);
            all.Add(cancelled);
            var first = await Task.WhenAny(all).ConfigureAwait(false);
            await stop.CancelAsync().ConfigureAwait(false);
            if (first == cancelled || cancellationToken.IsCancellationRequested)
            {
                await TeardownAsync(connection, url, TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                return;
            }
            if (first == bye.Task)
            {
                // The camera ended the stream: free the session on it now rather than at its timeout,
                // but do not wait long for the answer.
                await TeardownAsync(connection, url, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            }
            try { await first.ConfigureAwait(false); }
            catch (LowerTransportFailedException) { throw; }
            catch (RtspClientException) { throw; }
            catch (MediaFormatException e) { throw new RtspClientException($"{RtspUrl.Redact(url)}: malformed data from the server: {e.Message}", e); }
            catch (Exception e) when (e is IOException or SocketException) { throw new RtspClientException($"{RtspUrl.Redact(url)}: connection failed: {e.Message}", e); }
            throw new RtspClientException($"{RtspUrl.Redact(url)}: the stream ended");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Normal stop.
        }
        catch (LowerTransportFailedException) when (connection is not null && _session is not null)
        {
            // A silent UDP session, or a refusal on a later track after the earlier ones were set up:
            // free what the camera holds before the next attempt.
            await TeardownAsync(connection, url, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            throw;
        }
        catch (RtspClientException e) when (!e.Message.StartsWith("rtsp://", StringComparison.OrdinalIgnoreCase))
        {
            // Connection-level failures are raised without the URL; every message names the camera.
            throw new RtspClientException($"{SafeUrl}: {e.Message}", e);
        }
        catch (MediaFormatException e)
        {
            throw new RtspClientException($"{SafeUrl}: malformed data from the server: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            throw new RtspClientException($"{SafeUrl}: connection failed: {e.Message}", e);
        }
        catch (TimeoutException e)
        {
            throw new RtspClientException($"{SafeUrl}: {e.Message}", e);
        }
        finally
        {
            foreach (var s in udpSockets) s.Dispose();
            if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private string _publicMethods = "";
    private bool _credentialsAllowed = true;

    private async Task<RtspConnection> ConnectAsync(Uri url, CancellationToken cancellationToken)
    {
        var port = url.IsDefaultPort || url.Port <= 0 ? 554 : url.Port;
        using var timeout = new CancellationTokenSource(_options.ConnectTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            var c = await RtspConnection.ConnectAsync(url.IdnHost, port, _options.ParserLimits, _options.ConnectTimeout, linked.Token).ConfigureAwait(false);
            Log.Connected(_logger, RtspUrl.Redact(url));
            return c;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new RtspClientException($"{RtspUrl.Redact(url)}: no TCP connection within {_options.ConnectTimeout.TotalSeconds:0.#} s");
        }
        catch (SocketException e)
        {
            throw new RtspClientException($"{RtspUrl.Redact(url)}: cannot connect: {e.SocketErrorCode}", e);
        }
    }

    private async Task<RtspResponse> RequestAsync(RtspConnection connection, RtspRequest request, CancellationToken cancellationToken, bool allowRedirect = false)
    {
        var response = await SendOnceAsync(connection, request, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == 401)
        {
            var challenges = ParseOrFail(() => HttpAuthChallenge.ParseAll(response.Headers.GetValues("WWW-Authenticate")), _url);
            if (_user is null)
                throw new RtspClientException($"{SafeUrl}: the camera requires credentials (401) and the URL has none", 401);
            if (!_credentialsAllowed)
                throw new RtspClientException($"{SafeUrl}: redirected to another host that asks for credentials; they are only sent to the configured host", 401);
            var retry = _auth is null || challenges.Any(c => string.Equals(c["stale"], "true", StringComparison.OrdinalIgnoreCase));
            if (!retry) throw new RtspClientException($"{SafeUrl}: authentication failed (401): wrong user name or password", 401);
            _auth = HttpClientAuthenticator.Create(challenges, _user, _password ?? "")
                ?? throw new RtspClientException($"{SafeUrl}: the camera offers no supported authentication scheme ({string.Join(", ", challenges.Select(c => c.Scheme))})", 401);
            Log.Authenticating(_logger, SafeUrl, _auth.Scheme, DigestMath.Name(_auth.Algorithm));
            var again = new RtspRequest(request.Method, request.Uri) { Body = request.Body };
            foreach (var h in request.Headers)
                if (!h.Key.Equals("CSeq", StringComparison.OrdinalIgnoreCase) && !h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase)) again.Headers.Add(h.Key, h.Value);
            response = await SendOnceAsync(connection, again, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode == 401) throw new RtspClientException($"{SafeUrl}: authentication failed (401): wrong user name or password", 401);
        }
        if (!allowRedirect && response.StatusCode is >= 300 and < 400)
            throw new RtspClientException($"{SafeUrl}: unexpected redirect {response.StatusCode} to {request.Method}", response.StatusCode);
        return response;
    }

    private Task<RtspResponse> SendOnceAsync(RtspConnection connection, RtspRequest request, CancellationToken cancellationToken)
    {
        request.CSeq = Interlocked.Increment(ref _cseq);
        request.Headers["User-Agent"] = _options.UserAgent;
        if (_session is not null) request.Headers["Session"] = _session.Id;
        if (_auth is not null) request.Headers["Authorization"] = _auth.Authorize(request.Method, request.Uri);
        Log.Sending(_logger, request.Method, RtspUrl.Redact(request.Uri), request.CSeq);
        return connection.SendAsync(request, _options.ResponseTimeout, _time, cancellationToken);
    }

    private void EnsureSuccess(RtspResponse response, string method, Uri url)
    {
        if (response.IsSuccess) return;
        throw new RtspClientException($"{RtspUrl.Redact(url)}: {method} failed: {response.StatusCode} {response.ReasonPhrase}", response.StatusCode);
    }

    private static SessionDescription ParseSdp(RtspResponse describe, Uri url)
    {
        try { return SessionDescription.Parse(describe.BodyText); }
        catch (MediaFormatException e) { throw new RtspClientException($"{RtspUrl.Redact(url)}: bad SDP: {e.Message}", e); }
    }

    private static T ParseOrFail<T>(Func<T> parse, Uri url)
    {
        try { return parse(); }
        catch (MediaFormatException e) { throw new RtspClientException($"{RtspUrl.Redact(url)}: {e.Message}", e); }
    }

    private static Uri BaseUrl(RtspResponse describe, Uri requestUrl)
    {
        // RFC 2326 §C.1.1: Content-Base, else Content-Location, else the request URL.
        foreach (var name in new[] { "Content-Base", "Content-Location" })
            if (describe.Headers[name] is { } v && Uri.TryCreate(requestUrl, v, out var u) && u.Scheme == "rtsp") return RtspUrl.WithoutCredentials(u);
        return requestUrl;
    }

    private void HandleRtp(ReadOnlyMemory<byte> datagram, RtpDepacketizer depacketizer, MediaSinkMultiplexer mux)
    {
        RtpPacket packet;
        try { packet = RtpPacket.Parse(datagram); }
        catch (MediaFormatException e)
        {
            CountBadPacket(depacketizer, e);
            return;
        }
        HandleRtp(packet, depacketizer, mux);
    }

    private void CountBadPacket(RtpDepacketizer depacketizer, MediaFormatException e)
    {
        // One bad packet costs one access unit (the depacketizer waits for the next keyframe), not the session.
        var n = Interlocked.Increment(ref _protocolErrors);
        if (n <= 5 || n % 1000 == 0) Log.BadPacket(_logger, SafeUrl, depacketizer.Track, n, e.Message);
    }

    private sealed class CountingSink(IMediaSink inner, RtspClient owner) : IMediaSink
    {
        public void OnTracks(IReadOnlyList<TrackInfo> tracks) => inner.OnTracks(tracks);

        public void OnAccessUnit(in AccessUnit unit)
        {
            owner.DeliveredUnits++;
            inner.OnAccessUnit(unit);
        }
    }

    private async Task ReceiveUdpAsync(UdpClient socket, RtpDepacketizer depacketizer, MediaSinkMultiplexer mux, IPAddress server, CancellationToken cancellationToken)
    {
        var reorder = new RtpReorderBuffer(32);
        var ready = new List<RtpPacket>();
        var buffer = new byte[65536];
        while (!cancellationToken.IsCancellationRequested)
        {
            SocketReceiveFromResult r;
            try
            {
                r = await socket.Client.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) { return; }
            // Only the camera may feed this track (anyone on the LAN could send to the port).
            if (r.RemoteEndPoint is not IPEndPoint from || !Normalize(from.Address).Equals(server)) continue;
            RtpPacket packet;
            try { packet = RtpPacket.Parse(buffer.AsSpan(0, r.ReceivedBytes).ToArray()); }
            catch (MediaFormatException e)
            {
                CountBadPacket(depacketizer, e);
                continue;
            }
            ready.Clear();
            reorder.Push(packet, ready);
            foreach (var p in ready) HandleRtp(p, depacketizer, mux);
        }
    }

    private void HandleRtp(RtpPacket packet, RtpDepacketizer depacketizer, MediaSinkMultiplexer mux)
    {
        if (Interlocked.Increment(ref _rtpPackets) == 1)
        {
            // Media arrived: this transport works (a PLAY answered 200 proves nothing for UDP). Said
            // before the packet goes on, so the sink's OnTracks already sees it.
            PlayedTransport = _sessionTransport;
            Playing?.Invoke(_sessionTransport);
        }
        lock (_mediaLock)
        {
            _lastMediaTimestamp = _time.GetTimestamp();
            _statistics[depacketizer.Track].OnRtp(packet);
            try { depacketizer.Push(packet, mux); }
            catch (MediaFormatException e) { CountBadPacket(depacketizer, e); }
        }
    }

    private static IPAddress Normalize(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;

    private async Task ReceiveRtcpAsync(UdpClient socket, int track, IPAddress server, CancellationToken cancellationToken)
    {
        // Sender reports feed LSR/DLSR of our receiver reports; reading also keeps the socket buffer empty.
        var buffer = new byte[2048];
        while (!cancellationToken.IsCancellationRequested)
        {
            SocketReceiveFromResult r;
            try { r = await socket.Client.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), cancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            catch (SocketException) { return; }
            if (r.RemoteEndPoint is IPEndPoint from && Normalize(from.Address).Equals(server)) HandleRtcp(buffer.AsSpan(0, r.ReceivedBytes), track);
        }
    }

    private void HandleRtcp(ReadOnlySpan<byte> data, int track)
    {
        IReadOnlyList<RtcpPacket> packets;
        try { packets = RtcpPacket.ParseCompound(data); }
        catch (MediaFormatException) { return; } // RTCP is advisory; a bad one is ignored
        lock (_mediaLock)
        {
            foreach (var p in packets)
            {
                // RFC 3550 §6.6: the sender leaves. Any BYE on the session's RTCP channel ends the session,
                // whatever SSRC it names: only the camera can write there (interleaved on our own RTSP
                // connection, or UDP from the camera's address to ports we told only the camera), a
                // unicast session has no other participant, and VLC's RTSP output says BYE (and SR/SDES)
                // with SSRC 0, not its stream's SSRC, when its input ends.
                if (p.PacketType == RtcpPacket.ByeType)
                {
                    if (_bye is not { Task.IsCompleted: false } bye) continue; // said once already
                    var reason = string.IsNullOrEmpty(p.Reason) ? "" : ": " + RtspUrl.RedactText(p.Reason);
                    Log.ByeReceived(_logger, SafeUrl, track, reason);
                    bye.TrySetException(new RtspClientException($"{SafeUrl}: the camera ended the stream (RTCP BYE{reason})"));
                }
                else
                {
                    _statistics[track].OnSenderReport(p, _time.GetTimestamp());
                }
            }
        }
    }

    private async Task FirstUdpPacketAsync(bool canFallBack, string? fellBackBecause, CancellationToken cancellationToken)
    {
        // A camera behind a NAT or a LAN firewall that drops UDP accepts SETUP and PLAY and then
        // nothing arrives; the usual media timeout would take 10 s to say so, and say it vaguely.
        try
        {
            await Task.Delay(_options.UdpFirstPacketTimeout, _time, cancellationToken).ConfigureAwait(false);
            if (Interlocked.Read(ref _rtpPackets) > 0)
            {
                // Media flows; from here on the media watchdog watches it. Stay pending until the session ends.
                await Task.Delay(Timeout.InfiniteTimeSpan, _time, cancellationToken).ConfigureAwait(false);
                return;
            }
        }
        catch (OperationCanceledException) { return; }
        var wait = _options.UdpFirstPacketTimeout.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
        if (canFallBack) throw new LowerTransportFailedException($"received no RTP over UDP within {wait} s of PLAY");
        throw new RtspClientException($"{SafeUrl}: no RTP over UDP within {wait} s of PLAY (after {fellBackBecause}): "
            + "is a firewall or NAT between the camera and this device dropping UDP?");
    }

    private async Task ReceiverReportsAsync(Func<byte[], Task>?[] targets, CancellationToken cancellationToken)
    {
        // RFC 3550 §6.2: a receiver reports about every 5 s; some servers also treat RTCP as a liveness signal.
        while (true)
        {
            try { await Task.Delay(_options.ReceiverReportInterval, _time, cancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            for (var i = 0; i < targets.Length; i++)
            {
                if (targets[i] is not { } send) continue;
                RtcpReportBlock? block;
                lock (_mediaLock) block = _statistics[i].CreateReport(_time);
                if (block is null) continue;
                var rr = new RtcpPacket { PacketType = RtcpPacket.ReceiverReportType, Ssrc = _ssrc, Reports = [block.Value] };
                try { await send(rr.ToArray()).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
                catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException) { /* the session loop reports real failures */ }
            }
        }
    }

    private static (UdpClient Rtp, UdpClient Rtcp) BindUdpPair()
    {
        // RFC 3550 §11: RTP on an even port, RTCP on the next one.
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var rtp = new UdpClient(new IPEndPoint(IPAddress.Any, 0));
            var port = ((IPEndPoint)rtp.Client.LocalEndPoint!).Port;
            if (port % 2 != 0 || port == 65535) { rtp.Dispose(); continue; }
            try
            {
                var rtcp = new UdpClient(new IPEndPoint(IPAddress.Any, port + 1));
                rtp.Client.ReceiveBufferSize = 1 << 20;
                return (rtp, rtcp);
            }
            catch (SocketException)
            {
                rtp.Dispose();
            }
        }
        throw new RtspClientException("cannot bind a pair of UDP ports for RTP/RTCP");
    }

    private async Task KeepaliveAsync(RtspConnection connection, Uri url, CancellationToken cancellationToken)
    {
        var interval = _options.KeepaliveInterval ?? TimeSpan.FromSeconds(Math.Max(1, _session!.TimeoutSeconds / 3.0));
        var method = _publicMethods.Split(',', StringSplitOptions.TrimEntries).Contains("GET_PARAMETER", StringComparer.OrdinalIgnoreCase) ? "GET_PARAMETER" : "OPTIONS";
        while (true)
        {
            try { await Task.Delay(interval, _time, cancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            var response = await RequestAsync(connection, new RtspRequest(method, url.AbsoluteUri), cancellationToken).ConfigureAwait(false);
            Log.Keepalive(_logger, SafeUrl, method, response.StatusCode);
            if (response.StatusCode == 454) throw new RtspClientException($"{RtspUrl.Redact(url)}: the server dropped the session (454)", 454);
        }
    }

    private async Task MediaWatchdogAsync(CancellationToken cancellationToken)
    {
        var period = TimeSpan.FromMilliseconds(Math.Max(50, _options.MediaTimeout.TotalMilliseconds / 4));
        while (true)
        {
            try { await Task.Delay(period, _time, cancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            long last;
            lock (_mediaLock) last = _lastMediaTimestamp;
            if (_time.GetElapsedTime(last) > _options.MediaTimeout)
                throw new RtspClientException($"{SafeUrl}: no media for {_options.MediaTimeout.TotalSeconds:0.#} s");
        }
    }

    private async Task TeardownAsync(RtspConnection connection, Uri url, TimeSpan timeout)
    {
        if (connection.Completion.IsCompleted) return;
        try
        {
            using var cts = new CancellationTokenSource(timeout, _time);
            var request = new RtspRequest("TEARDOWN", url.AbsoluteUri);
            await SendOnceAsync(connection, request, cts.Token).ConfigureAwait(false);
            Log.TornDown(_logger, SafeUrl);
        }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException or RtspClientException or IOException or ObjectDisposedException)
        {
            // Best effort: the session times out on the server anyway.
        }
    }

    /// <summary>The session's lower transport was refused or stays silent; <see cref="RunAsync"/> tries the other one.</summary>
    private sealed class LowerTransportFailedException(string message) : Exception(message);

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "RTSP {Url}: connected")]
        public static partial void Connected(ILogger logger, string url);

        [LoggerMessage(EventId = 2, Level = LogLevel.Debug, Message = "RTSP > {Method} {Url} CSeq {CSeq}")]
        public static partial void Sending(ILogger logger, string method, string url, int cSeq);

        [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "RTSP {Url}: redirected to {Location}")]
        public static partial void Redirected(ILogger logger, string url, string location);

        [LoggerMessage(EventId = 4, Level = LogLevel.Debug, Message = "RTSP {Url}: authenticating with {Scheme} ({Algorithm})")]
        public static partial void Authenticating(ILogger logger, string url, string scheme, string algorithm);

        [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "RTSP {Url}: skipping unsupported {Media} track ({Encoding})")]
        public static partial void TrackSkipped(ILogger logger, string url, string media, string encoding);

        [LoggerMessage(EventId = 6, Level = LogLevel.Debug, Message = "RTSP {Url}: track {Track} {Encoding} set up: {Transport}")]
        public static partial void TrackSetUp(ILogger logger, string url, int track, string encoding, string transport);

        [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "RTSP {Url}: playing {Tracks} track(s) over {Transport}, session timeout {Timeout} s")]
        public static partial void Playing(ILogger logger, string url, int tracks, string transport, int timeout);

        [LoggerMessage(EventId = 8, Level = LogLevel.Warning, Message = "RTSP {Url}: dropped a malformed RTP packet on track {Track} ({Count} so far): {Reason}")]
        public static partial void BadPacket(ILogger logger, string url, int track, long count, string reason);

        [LoggerMessage(EventId = 9, Level = LogLevel.Trace, Message = "RTSP {Url}: keepalive {Method} -> {Status}")]
        public static partial void Keepalive(ILogger logger, string url, string method, int status);

        [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "RTSP {Url}: torn down")]
        public static partial void TornDown(ILogger logger, string url);

        [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "RTSP {Url}: {Transport}: {Reason}; trying {Other}")]
        public static partial void FallingBack(ILogger logger, string url, string transport, string other, string reason);

        [LoggerMessage(EventId = 12, Level = LogLevel.Information, Message = "RTSP {Url}: RTCP BYE on track {Track}{Reason}")]
        public static partial void ByeReceived(ILogger logger, string url, int track, string reason);
    }
}
