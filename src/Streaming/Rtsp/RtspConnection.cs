using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using Microsoft.Extensions.Logging;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;

namespace Pinhole.Streaming.Rtsp;

/// <summary>
/// One client TCP connection: reads requests (and interleaved RTCP) through a <see cref="PipeReader"/>,
/// parses them with the shared <see cref="RtspParser"/>, answers them, and owns the session set up on
/// it. Writes (responses and interleaved media) share one <see cref="PipeWriter"/> under a lock.
/// </summary>
internal sealed class RtspConnection : IAsyncDisposable
{
    private const string Public = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER";
    private const string PublicWithRecord = "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, PAUSE, RECORD, TEARDOWN, GET_PARAMETER";
    
    private const int MaxAuthFailures = 5;

    private readonly RtspServer _server;
    private readonly Socket _socket;
    private readonly NetworkStream _network;
    private readonly Stream _stream;
    private readonly SslStream? _tls;
    private readonly string _address;
    private readonly string _nonceScope;
    private readonly long _acceptedAt;
    private readonly Dictionary<string, ulong> _nonceCounts = new(StringComparer.Ordinal);
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _abort = new();
    private readonly RtspParserLimits _limits;
    private readonly ITimer _watchdog;
    private long _lastActivity;
    private long _writeStarted;
    private string? _verifiedBasic;
    private string? _user;
    private volatile bool _authenticated;
    private int _authFailures;
    private string? _closeReason;
    private RtspServerSession? _session;
    private RtspPublishSession? _publish;
    private CancellationTokenRegistration _publicationEnded;

    public RtspConnection(RtspServer server, Socket socket, IPAddress address, bool tls)
    {
        _server = server;
        _socket = socket;
        _address = address.ToString();
        // Digest nonces issued on this connection are good only on it (a captured header cannot be replayed elsewhere).
        _nonceScope = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(12));
        RemoteEndPoint = socket.RemoteEndPoint;
        socket.NoDelay = true;
        socket.SendBufferSize = server.Options.SocketSendBufferBytes;
        _network = new NetworkStream(socket, ownsSocket: false);
        _tls = tls ? new SslStream(_network, leaveInnerStreamOpen: true) : null;
        _stream = (Stream?)_tls ?? _network;
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 4096, leaveOpen: true));
        _output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 4096, leaveOpen: true));
        _limits = new RtspParserLimits { MaxHeaderBytes = server.Options.MaxHeaderBytes, MaxBodyBytes = server.Options.MaxBodyBytes };
        _lastActivity = _acceptedAt = Time.GetTimestamp();
        var period = TimeSpan.FromTicks(Math.Clamp(Math.Min(Math.Min(server.Options.SessionTimeout.Ticks, server.Options.WriteTimeout.Ticks),
                server.Options.AuthenticationTimeout.Ticks) / 4,
            TimeSpan.TicksPerMillisecond * 50, TimeSpan.TicksPerSecond));
        _watchdog = Time.CreateTimer(_ => CheckTimeouts(), null, period, period);
    }

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>True on the RTSPS listener.</summary>
    public bool IsTls => _tls is not null;

    internal TimeProvider Time => _server.Time;

    internal RtspServerOptions Options => _server.Options;

    private ILogger Logger => _server.Logger;

    /// <summary>Closes the connection (from any thread); the request loop and the sender stop.</summary>
    public void Abort(string reason)
    {
        Interlocked.CompareExchange(ref _closeReason, reason, null);
        try
        {
            _abort.Cancel();
            // Unblocks a write stuck on a client that stopped reading.
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is ObjectDisposedException or SocketException)
        {
        }
    }

    internal void Fail(Exception e)
    {
        RtspServerLog.ConnectionFailed(Logger, RemoteEndPoint, e);
        Abort("internal error");
    }

    internal void EndSessionForCodecChange(RtspServerSession session)
    {
        RtspServerLog.CodecChanged(Logger, session.Id);
        // RTSP 1.0 has no way to tell a playing client that the SDP changed; closing the control
        // connection ends the session cleanly so the client reconnects and describes again.
        Abort("codec changed");
    }

    private void Touch() => Volatile.Write(ref _lastActivity, Time.GetTimestamp());

    private void CheckTimeouts()
    {
        _session?.ReportDrops();
        // Until it authenticates a connection is on a deadline that nothing it sends extends: OPTIONS or
        // empty interleaved frames would otherwise hold a slot for ever.
        if (!_authenticated && Time.GetElapsedTime(_acceptedAt) > Options.AuthenticationTimeout)
        {
            _server.Refusals.Refused("rtsp-authentication-deadline", _address,
                $"did not authenticate within {Options.AuthenticationTimeout.TotalSeconds:0.#} s of connecting");
            Abort("not authenticated in time");
            return;
        }
        if (Time.GetElapsedTime(Volatile.Read(ref _lastActivity)) > Options.SessionTimeout)
        {
            Abort("session timeout");
            return;
        }
        var started = Volatile.Read(ref _writeStarted);
        if (started != 0 && Time.GetElapsedTime(started) > Options.WriteTimeout)
            Abort("client stopped reading");
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping, _abort.Token);
        var ct = linked.Token;
        // Beyond this much unparsed input something is wrong whatever the parser thinks.
        var maxBuffered = Math.Max(Options.MaxHeaderBytes + Options.MaxBodyBytes, ushort.MaxValue + InterleavedFrame.HeaderLength) + 1;
        try
        {
            if (_tls is not null && !await HandshakeAsync(ct).ConfigureAwait(false)) return;
            while (true)
            {
                var result = await _input.ReadAsync(ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                try
                {
                    while (TryParse(ref buffer, out var message, out var frame))
                    {
                        if (_authenticated) Touch();
                        if (message is RtspRequest request)
                            await HandleAsync(request, ct).ConfigureAwait(false);
                        else if (message is null && _publish is { IsRecording: true } publish)
                            publish.OnInterleaved(frame);
                        // Otherwise interleaved RTCP receiver reports only keep the session alive; responses
                        // from the client are not expected (the server sends no requests).
                    }
                    if (buffer.Length >= maxBuffered)
                        throw new RtspProtocolException("message larger than the configured limits");
                }
                finally
                {
                    _input.AdvanceTo(buffer.Start, buffer.End);
                }
                if (result.IsCompleted)
                {
                    Interlocked.CompareExchange(ref _closeReason, "closed by client", null);
                    return;
                }
            }
        }
        catch (MediaFormatException e)
        {
            RtspServerLog.MalformedRequest(Logger, RemoteEndPoint, e.Message);
            Interlocked.CompareExchange(ref _closeReason, "malformed request", null);
            await TryWriteFinalAsync(400).ConfigureAwait(false);
            await DrainAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            Interlocked.CompareExchange(ref _closeReason, stopping.IsCancellationRequested ? "server stopping" : "connection lost", null);
        }
    }

    private async Task<bool> HandshakeAsync(CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Options.TlsHandshakeTimeout);
        try
        {
            await _tls!.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificate = Options.TlsCertificate,
                ClientCertificateRequired = false,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            }, timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            RtspServerLog.TlsHandshakeFailed(Logger, RemoteEndPoint, e is OperationCanceledException ? "timed out" : e.Message);
            Interlocked.CompareExchange(ref _closeReason, "TLS handshake failed", null);
            return false;
        }
    }

    private bool TryParse(ref ReadOnlySequence<byte> buffer, out RtspMessage? message, out InterleavedFrame frame)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!RtspParser.TryParse(ref reader, out message, out frame, _limits)) return false;
        buffer = buffer.Slice(reader.Position);
        return true;
    }

    // Answers a request that could not be parsed, then the connection closes: after a framing
    // error the position of the next message is unknown.
    private async Task TryWriteFinalAsync(int status)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2), Time);
            var response = new RtspResponse(status, RtspResponse.ReasonFor(status));
            response.Headers["Server"] = Options.ServerName;
            response.Headers["Connection"] = "close";
            await WriteResponseAsync(response, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
        }
    }

    // Closing a socket with unread input makes the kernel send RST, which can destroy the error
    // response before the client reads it. Half-close, then read and discard a bounded amount.
    private async Task DrainAsync()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1), Time);
            var buffer = new byte[4096];
            for (var total = 0; total < 256 * 1024;)
            {
                var n = await _socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                if (n == 0) break;
                total += n;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task WriteResponseAsync(RtspResponse response, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            RtspWriter.Write(response, _output);
            await FlushLockedAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Packetizes one access unit onto the connection (interleaved) and flushes. Waits while the
    /// client is slow; only this viewer's subscription fills up and skips frames meanwhile.</summary>
    /// <remarks><paramref name="ct"/> (PAUSE, TEARDOWN) stops the wait for the connection, never a write
    /// under way: a cancelled socket write leaves part of a packet on the wire, the client loses the
    /// framing and the response to the PAUSE that cancelled it never reads as one. A write only ends
    /// early when the connection is aborted (the watchdog's write timeout covers a client that stopped
    /// reading).</remarks>
    internal async ValueTask WriteAsync(RtpPacketizer packetizer, AccessUnit unit, RtpPacketHandler handler, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            packetizer.Packetize(unit, handler);
            await FlushLockedAsync(_abort.Token).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    internal async ValueTask WriteRtcpAsync(RtspTrackOutput output, ReadOnlyMemory<byte> packet, CancellationToken ct)
    {
        if (!output.IsInterleaved)
        {
            output.SendRtcp(packet.Span);
            return;
        }
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            output.SendRtcp(packet.Span);
            await FlushLockedAsync(_abort.Token).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async ValueTask FlushLockedAsync(CancellationToken ct)
    {
        Volatile.Write(ref _writeStarted, Time.GetTimestamp());
        try
        {
            var r = await _output.FlushAsync(ct).ConfigureAwait(false);
            if (r.IsCanceled || r.IsCompleted) throw new IOException("connection closed");
        }
        finally
        {
            Volatile.Write(ref _writeStarted, 0);
        }
    }

    private async Task HandleAsync(RtspRequest request, CancellationToken ct)
    {
        RtspResponse response;
        Action? afterResponse = null;
        try
        {
            (response, afterResponse) = await DispatchAsync(request).ConfigureAwait(false);
        }
        catch (MediaFormatException e)
        {
            // A header that parsed as RTSP but whose value is malformed (Transport, Session, …).
            RtspServerLog.MalformedRequest(Logger, RemoteEndPoint, e.Message);
            response = Status(400);
        }
        if (request.CSeq >= 0) response.CSeq = request.CSeq;
        response.Headers["Server"] = Options.ServerName;
        await WriteResponseAsync(response, ct).ConfigureAwait(false);
        afterResponse?.Invoke();
        if (_authFailures >= MaxAuthFailures) Abort("too many failed authentications");
    }

    private static RtspResponse Status(int code) => new(code, RtspResponse.ReasonFor(code));

    private async Task<(RtspResponse, Action?)> DispatchAsync(RtspRequest request)
    {
        // RFC 2326 §12.32: a Require'd option the server does not know is refused with 551.
        if (request.Headers["Require"] is { } require)
        {
            var r = Status(551);
            r.Headers["Unsupported"] = require;
            return (r, null);
        }
        if (request.Method == "OPTIONS")
        {
            // Reveals nothing about streams, so clients may ask before authenticating.
            var r = Status(200);
            r.Headers["Public"] = AllowedMethods;
            return (r, null);
        }
        var publishing = _server.Publishing is not null;
        if (request.Method is not ("DESCRIBE" or "SETUP" or "PLAY" or "PAUSE" or "TEARDOWN" or "GET_PARAMETER")
            && !(publishing && request.Method is "ANNOUNCE" or "RECORD"))
        {
            var r = Status(request.Method is "ANNOUNCE" or "RECORD" or "SET_PARAMETER" or "REDIRECT" ? 405 : 501);
            r.Headers["Allow"] = AllowedMethods;
            return (r, null);
        }
        // Several relays (docs/scale-out.md): a DESCRIBE for a camera whose device holds its uplink on another
        // relay is sent there (RFC 2326 §11.3.3, 302 + Location) before any credentials are asked for, since a
        // client follows a redirect with a fresh authentication exchange against the new server.
        if (request.Method == "DESCRIBE" && Redirect(request) is { } moved) return (moved, null);
        if (Authenticate(request) is { } challenge) return (challenge, null);

        if (_publish is not null && request.Method is "TEARDOWN")
            return (await EndPublishAsync(request).ConfigureAwait(false), null);
        if (_publish is not null && request.Method is "GET_PARAMETER")
            return (PublishSessionMatches(request) ? WithPublishSession(Status(200)) : Status(454), null);
        return request.Method switch
        {
            "ANNOUNCE" => (Announce(request), null),
            "RECORD" => (Record(request), null),
            "SETUP" when _publish is not null || IsPublishUri(request.Uri) => (SetupRecord(request), null),
            "DESCRIBE" or "PLAY" or "PAUSE" when _publish is not null || IsPublishUri(request.Uri) => (Status(455), null),
            "DESCRIBE" => (Describe(request), null),
            "SETUP" => (Setup(request), null),
            "PLAY" => Play(request),
            "PAUSE" => (await PauseAsync(request).ConfigureAwait(false), null),
            "TEARDOWN" => (await TeardownAsync(request).ConfigureAwait(false), null),
            _ => (WithSession(request, Status(200)), null), // GET_PARAMETER: keepalive (RFC 2326 §10.8)
        };
    }

    private string AllowedMethods => _server.Publishing is null ? Public : PublicWithRecord;

    // --- publishing (RFC 2326 §10.3 ANNOUNCE, §10.11 RECORD) ---------------------------------

    private static string? PathOf(string uri) =>
        Uri.TryCreate(uri, UriKind.Absolute, out var u) && u.Scheme is "rtsp" or "rtsps" ? u.AbsolutePath.TrimEnd('/') : null;

    private bool IsPublishUri(string uri) =>
        _server.Publishing is { } p && PathOf(uri) is { } path
        && (p.IsPublishPath(path) || (_publish is not null && path.StartsWith(_publish.Path, StringComparison.Ordinal)));

    private static RtspResponse Refusal(RtspPublishDecision d) => new(d.Status, d.Reason ?? RtspResponse.ReasonFor(d.Status));

    private bool PublishSessionMatches(RtspRequest request) =>
        _publish is not null && request.Headers["Session"] is { } header && header.Split(';', 2)[0].Trim() == _publish.Id;

    private RtspResponse WithPublishSession(RtspResponse response)
    {
        response.Headers["Session"] = new RtspSession(_publish!.Id, (int)Math.Max(1, Options.SessionTimeout.TotalSeconds)).ToString();
        return response;
    }

    private RtspResponse Announce(RtspRequest request)
    {
        var handler = _server.Publishing!;
        if (_session is not null || _publish is not null) return Status(455); // one session per connection
        if (PathOf(request.Uri) is not { } path || !handler.IsPublishPath(path)) return Refusal(new(404, "Not Found (publish to /DEVICE/in/NAME)"));
        if (request.Headers["Content-Type"] is not { } type || !type.StartsWith("application/sdp", StringComparison.OrdinalIgnoreCase))
            return Refusal(new(415, "Unsupported Media Type (ANNOUNCE needs application/sdp)"));
        var decision = handler.Check(_user, path);
        if (!decision.IsAccepted)
        {
            _server.Refusals.Refused("rtsp-publish", _address, $"publish to {path} refused: {decision.Status} {decision.Reason}");
            return Refusal(decision);
        }
        var session = RtspPublishSession.Create(path, Encoding.UTF8.GetString(request.Body.Span), out var refusal);
        if (session is null) return Refusal(refusal);
        _publish = session;
        return Status(200);
    }

    private RtspResponse SetupRecord(RtspRequest request)
    {
        if (_publish is null) return Status(455); // SETUP for publishing needs the ANNOUNCE first
        if (_publish.IsRecording) return Status(455);
        if (request.Headers["Session"] is not null && !PublishSessionMatches(request)) return Status(454);
        if (PathOf(request.Uri) is not { } path || !path.StartsWith(_publish.Path, StringComparison.Ordinal)) return Status(404);
        var track = _publish.TrackFor(path);
        if (track < 0) return Status(404);
        var transportHeader = request.Headers["Transport"];
        if (transportHeader is null) return Status(461);
        foreach (var offer in RtspTransport.ParseList(transportHeader))
        {
            // Only TCP interleaved: UDP recording would need ports opened toward the WAN client.
            if (!offer.IsTcp || !offer.Unicast) continue;
            if (offer.Mode is { } mode && !mode.Equals("record", StringComparison.OrdinalIgnoreCase)) continue;
            var channels = offer.Interleaved ?? new RtspRange(2 * track, 2 * track + 1);
            if (!_publish.SetUp(track, channels)) continue;
            var response = Status(200);
            response.Headers["Transport"] = new RtspTransport { Protocol = "RTP/AVP/TCP", Interleaved = channels, Mode = "record" }.ToString();
            return WithPublishSession(response);
        }
        return Status(461);
    }

    private RtspResponse Record(RtspRequest request)
    {
        // RFC 2326 §A.1: RECORD is valid only once a track is set up (before that there is no session to name).
        if (_publish is null || !_publish.HasTracksSetUp) return Status(455);
        if (!PublishSessionMatches(request)) return Status(454);
        if (_publish.IsRecording) return WithPublishSession(Status(200));
        var publication = _server.Publishing!.Start(_user, _publish.Path, out var refusal);
        if (publication is null)
        {
            _server.Refusals.Refused("rtsp-publish", _address, $"publish to {_publish.Path} refused at RECORD: {refusal.Status} {refusal.Reason}");
            return Refusal(refusal);
        }
        _publish.Record(publication);
        _publicationEnded = publication.Ended.Register(() => Abort("publication target left"));
        RtspServerLog.Publishing(Logger, _publish.Id, RemoteEndPoint, _publish.Path);
        return WithPublishSession(Status(200));
    }

    private async Task<RtspResponse> EndPublishAsync(RtspRequest request)
    {
        if (!PublishSessionMatches(request)) return Status(454);
        await EndPublishAsync("teardown").ConfigureAwait(false);
        return Status(200);
    }

    private async Task EndPublishAsync(string reason)
    {
        var publish = _publish;
        _publish = null;
        if (publish is null) return;
        await _publicationEnded.DisposeAsync().ConfigureAwait(false);
        publish.Dispose();
        RtspServerLog.PublishEnded(Logger, publish.Id, reason, publish.BadPackets);
    }

    // --- authentication (RFC 7617 Basic, RFC 7616 / 2617 Digest) -----------------------------

    private RtspResponse? Authenticate(RtspRequest request)
    {
        var viewers = _server.Viewers;
        if (!viewers.Any && Options.AnonymousViewing)
        {
            _authenticated = true;
            return null;
        }
        var header = request.Headers["Authorization"];
        var stale = false;
        if (header is not null)
        {
            var basic = header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase);
            if (basic && !BasicAllowed)
            {
                // Basic sends the password readable by anyone on the path: refused on plaintext RTSP
                // without looking at it, and the challenge below offers only Digest.
                _server.Refusals.Refused("rtsp-basic-on-plaintext", _address, "Basic credentials on the plaintext RTSP port (use Digest, or rtsps://)");
            }
            else if (basic)
            {
                // PBKDF2 is deliberately slow: verify a connection's credentials once, not on every request
                // (and the directory remembers credentials it verified recently).
                if (header == _verifiedBasic) return Authenticated(null);
                if (DigestServer.TryParseBasic(header, out var user, out var password))
                {
                    if (Throttled(user) is { } wait) return wait;
                    if (viewers.Verify(user, password))
                    {
                        _verifiedBasic = header;
                        return Authenticated(user);
                    }
                    CountFailure(user, "Basic");
                }
                else
                {
                    CountFailure(null, "Basic");
                }
            }
            else if (header.StartsWith("Digest ", StringComparison.OrdinalIgnoreCase))
            {
                var user = DigestUser(header);
                // A connection that proved itself as this user is not cut off mid-stream because someone
                // elsewhere is now guessing at the account; everyone else asks the throttle first.
                if (!(_authenticated && user == _user) && Throttled(user) is { } wait) return wait;
                var verdict = DigestUriMatches(header, request.Uri) || PublishDigestUriMatches(header, request.Uri)
                    ? _server.Digest.Verify(header, request.Method, viewers.DigestHa1, out _, _nonceScope)
                    : DigestVerdict.Invalid;
                if (verdict == DigestVerdict.Valid && !NonceCountAdvances(header)) verdict = DigestVerdict.Invalid;
                if (verdict == DigestVerdict.Valid) return Authenticated(user);
                stale = verdict == DigestVerdict.Stale;
                if (!stale) CountFailure(user, "Digest");
            }
            else
            {
                CountFailure(null, header.Split(' ', 2)[0]);
            }
        }
        var response = Status(401);
        // RFC 7616 §3.7: challenges in order of preference. Clients that know only MD5 (FFmpeg,
        // live555) use the last Digest challenge they see, so MD5 goes after SHA-256.
        response.Headers.Add("WWW-Authenticate", _server.Digest.CreateChallenge(DigestAlgorithm.Sha256, stale, _nonceScope));
        response.Headers.Add("WWW-Authenticate", _server.Digest.CreateChallenge(DigestAlgorithm.Md5, stale, _nonceScope));
        if (BasicAllowed) response.Headers.Add("WWW-Authenticate", _server.Digest.CreateBasicChallenge());
        return response;
    }

    private bool BasicAllowed => IsTls || Options.AllowBasicOnPlaintext;

    private RtspResponse? Authenticated(string? user)
    {
        if (!_authenticated && user is not null)
        {
            // Once per connection: the throttle forgets this address's and user's misses.
            _server.Throttle.Succeeded(_address, user);
        }
        _user ??= user;
        _authenticated = true;
        return null;
    }

    // The shared throttle (web login, RTSP) is asked before any password work is done.
    private RtspResponse? Throttled(string? user)
    {
        var wait = _server.Throttle.RetryAfter(_address, user ?? "");
        if (wait <= TimeSpan.Zero) return null;
        _server.Refusals.Refused("rtsp-login-throttled", _address, $"too many failed logins; next attempt admitted in {Math.Ceiling(wait.TotalSeconds)} s");
        _authFailures = MaxAuthFailures; // nothing more to try on this connection
        // RFC 2326 §7.1.1: 503 with Retry-After says "come back later", which 401 would not.
        var r = Status(503);
        r.Headers["Retry-After"] = Math.Ceiling(wait.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        return r;
    }

    private void CountFailure(string? user, string scheme)
    {
        _authFailures++;
        _server.Metrics.AuthFailures.Add(1);
        _server.Throttle.Failed(_address, user ?? "");
        RtspServerLog.AuthenticationFailed(Logger, RemoteEndPoint, scheme);
    }

    private static string? DigestUser(string header)
    {
        try
        {
            return HttpAuthChallenge.ParseOne(header)["username"];
        }
        catch (MediaFormatException)
        {
            return null;
        }
    }

    // RFC 7616 §3.4: with qop the client counts its uses of a nonce in nc; a count that does not go up is
    // a replayed header. (The nonce itself is good only on this connection.)
    private bool NonceCountAdvances(string header)
    {
        HttpAuthChallenge a;
        try { a = HttpAuthChallenge.ParseOne(header); }
        catch (MediaFormatException) { return false; }
        if (a["qop"] is null) return true;
        if (a["nonce"] is not { } nonce || !ulong.TryParse(a["nc"], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var nc)) return false;
        if (_nonceCounts.TryGetValue(nonce, out var last) && nc <= last) return false;
        if (_nonceCounts.Count >= 16 && !_nonceCounts.ContainsKey(nonce)) _nonceCounts.Clear();
        _nonceCounts[nonce] = nc;
        return true;
    }

    // RFC 7616 §3.4.6: the digest-uri must name the requested resource, or a response captured for
    // one stream could be replayed for another with the same nonce. "The same resource" is the
    // stream, not the exact string: clients built on live555 (openRTSP, VLC, most NVRs) sign every
    // request after DESCRIBE with the session's base URL (the Content-Base, "rtsp://H/DEV/CAM/"),
    // so SETUP .../trackID=0 arrives with uri="rtsp://H/DEV/CAM/". Accepted: the request URL; the
    // stream's base URL with or without the trailing slash; the aggregate control URL (".../*");
    // each of these as a path alone. Never a URI of another stream, nor another track's URL.
    // A publisher signs its requests with the announced URL or the request's own (a track URL); never
    // another publish target's.
    private bool PublishDigestUriMatches(string header, string requestUri)
    {
        if (!IsPublishUri(requestUri) || PathOf(requestUri) is not { } requestPath) return false;
        string? uri;
        try { uri = HttpAuthChallenge.ParseOne(header)["uri"]; }
        catch (MediaFormatException) { return false; }
        if (uri is null) return false;
        var signed = uri.StartsWith('/') ? uri.TrimEnd('/') : PathOf(uri);
        return signed is not null && (signed == requestPath || (_publish is not null && signed == _publish.Path));
    }

    private bool DigestUriMatches(string header, string requestUri)
    {
        string? uri;
        try { uri = HttpAuthChallenge.ParseOne(header)["uri"]; }
        catch (MediaFormatException) { return false; }
        if (uri is null) return false;
        if (uri == requestUri) return true;
        if (!Uri.TryCreate(requestUri, UriKind.Absolute, out var request) || !TryResolve(requestUri, out var wanted)) return false;
        Uri? signed;
        if (uri.StartsWith('/'))
        {
            // A path alone (RFC 7616 §3.4: digest-uri may be the request-target's path form).
            if (!Uri.TryCreate(request, uri, out signed)) return false;
        }
        else if (!Uri.TryCreate(uri, UriKind.Absolute, out signed) || signed.Port != request.Port)
        {
            return false;
        }
        if (!TryResolve(signed.AbsoluteUri, out var named)) return false;
        if (named.Device != wanted.Device || named.Camera != wanted.Camera) return false;
        // The base or aggregate URL covers every request of the stream; a track URL only itself.
        return named.Track == -1 || named.Track == wanted.Track;
    }

    // --- request URIs ------------------------------------------------------------------------

    private readonly record struct Target(string Device, string Camera, int Track, string BaseUrl);

    // rtsp://host[:port]/DEVICE/CAMERA[/trackID=N], or with SingleDevice rtsp://host[:port]/CAMERA[/trackID=N]
    private bool TryResolve(string uri, out Target target)
    {
        target = default;
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var u) || u.Scheme is not ("rtsp" or "rtsps" or "rtspu")) return false;
        var segments = u.AbsolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (Options.SingleDevice is { } implied)
        {
            if (implied.Length == 0) return false;
            // The same rules as below, one segment shorter: the device is implied.
            segments = [Uri.EscapeDataString(implied), .. segments];
        }
        if (segments.Length is < 2 or > 3) return false;
        var track = -1;
        // Some clients append the session-level "a=control:*" to the base URL literally.
        if (segments.Length == 3 && segments[2] != "*")
        {
            const string prefix = "trackID=";
            if (!segments[2].StartsWith(prefix, StringComparison.Ordinal)
                || !int.TryParse(segments[2].AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out track))
                return false;
        }
        var device = Uri.UnescapeDataString(segments[0]);
        var camera = Uri.UnescapeDataString(segments[1]);
        var baseUrl = Options.SingleDevice is null ? $"{u.Scheme}://{u.Authority}/{segments[0]}/{segments[1]}" : $"{u.Scheme}://{u.Authority}/{segments[1]}";
        target = new Target(device, camera, track, baseUrl);
        return true;
    }

    private bool IsSessionTarget(Target t) =>
        _session is not null && _session.Stream.DeviceId == t.Device && _session.Stream.Camera == t.Camera;

    // RFC 2326 §12.37: requests in a session carry its id; a wrong one is 454.
    private bool SessionMatches(RtspRequest request)
    {
        var header = request.Headers["Session"];
        if (header is null || _session is null) return false;
        var id = header.Split(';', 2)[0].Trim();
        return id == _session.Id;
    }

    private RtspResponse WithSession(RtspRequest request, RtspResponse response)
    {
        if (request.Headers["Session"] is not null && !SessionMatches(request)) return Status(454);
        if (_session is not null && request.Headers["Session"] is not null)
            response.Headers["Session"] = SessionHeader();
        return response;
    }

    private string SessionHeader() =>
        new RtspSession(_session!.Id, (int)Math.Max(1, Options.SessionTimeout.TotalSeconds)).ToString();

    // --- methods ---------------------------------------------------------------------------

    private RtspResponse? Redirect(RtspRequest request)
    {
        if (_server.RedirectBase is not { } locate || !TryResolve(request.Uri, out var t) || t.Track >= 0) return null;
        if (_server.Streams.TryGet(t.Device, t.Camera, out var local) && local.IsOnline) return null;
        if (locate(t.Device) is not { } elsewhere) return null;
        var response = Status(302);
        response.Headers["Location"] = $"{elsewhere}/{Uri.EscapeDataString(t.Device)}/{Uri.EscapeDataString(t.Camera)}";
        _server.Metrics.Redirected();
        return response;
    }

    private RtspResponse Describe(RtspRequest request)
    {
        if (!TryResolve(request.Uri, out var t) || t.Track >= 0) return Status(404);
        if (!_server.Streams.TryGet(t.Device, t.Camera, out var stream)) return Status(404);
        var tracks = stream.Tracks;
        if (!stream.IsOnline || tracks is null || tracks.Count == 0) return Status(503);
        var response = Status(200);
        response.Headers["Content-Base"] = t.BaseUrl + "/";
        response.Headers["Content-Type"] = "application/sdp";
        response.Body = Encoding.UTF8.GetBytes(SdpWriter.Build(tracks).ToString());
        return response;
    }

    private RtspResponse Setup(RtspRequest request)
    {
        if (!TryResolve(request.Uri, out var t)) return Status(404);
        if (_session is not null)
        {
            if (!SessionMatches(request)) return Status(request.Headers["Session"] is null ? 459 : 454);
            if (!IsSessionTarget(t)) return Status(459); // one camera per session (aggregate control)
            if (_session.IsPlaying) return Status(455);
        }
        if (!_server.Streams.TryGet(t.Device, t.Camera, out var stream)) return Status(404);
        var tracks = _session?.Tracks ?? stream.Tracks;
        if (!stream.IsOnline || tracks is null || tracks.Count == 0) return Status(503);
        // Without a track in the URL, a single-track stream's only track is meant.
        var index = t.Track >= 0 ? t.Track : tracks.Count == 1 ? 0 : -1;
        if ((uint)index >= (uint)tracks.Count) return Status(404);
        var transportHeader = request.Headers["Transport"];
        if (transportHeader is null) return Status(461);
        // Parsed before anything is created: a malformed header (400) must leave no session behind.
        var offers = RtspTransport.ParseList(transportHeader);

        var created = false;
        if (_session is null)
        {
            _session = new RtspServerSession(this, _server.Metrics, stream, tracks);
            created = true;
        }
        var session = _session;
        var output = CreateOutput(session, index, offers);
        if (output is null)
        {
            if (created)
            {
                _ = session.DisposeAsync().AsTask();
                _session = null;
            }
            return Status(461);
        }
        session.SetOutput(index, output);
        var response = Status(200);
        response.Headers["Transport"] = output.TransportHeader;
        response.Headers["Session"] = SessionHeader();
        return response;
    }

    private RtspTrackOutput? CreateOutput(RtspServerSession session, int index, IReadOnlyList<RtspTransport> offers)
    {
        var packetizer = RtpPacketizerFactory.Create(session.Tracks[index], session.PayloadType(index),
            new RtpPacketizerOptions { MaxPacketSize = Options.MaxRtpPacketSize });
        foreach (var offer in offers)
        {
            if (!offer.Unicast) continue;
            if (offer.IsTcp)
            {
                var channels = offer.Interleaved ?? new RtspRange(2 * index, 2 * index + 1);
                if (channels.First is < 0 or > 255 || channels.Second is < 0 or > 255) continue;
                if (session.Outputs.Any(o => o is InterleavedTrackOutput i && o.TrackIndex != index
                    && (i.Channels.First == channels.First || i.Channels.Second == channels.First
                        || i.Channels.First == channels.Second || i.Channels.Second == channels.Second))) continue;
                return new InterleavedTrackOutput(index, packetizer, _output, channels);
            }
            if (offer.Protocol is "RTP/AVP" or "RTP/AVP/UDP" && offer.ClientPort is { } ports
                && ports.First is > 0 and <= 65535 && ports.Second is > 0 and <= 65535
                && _socket.LocalEndPoint is IPEndPoint local && RemoteEndPoint is IPEndPoint remote)
            {
                var udp = UdpTrackOutput.Create(index, packetizer, local.Address, remote.Address, ports, Touch);
                if (udp is not null) return udp;
            }
        }
        return null;
    }

    private (RtspResponse, Action?) Play(RtspRequest request)
    {
        if (_session is null || !SessionMatches(request)) return (Status(_session is null ? 455 : 454), null);
        var session = _session;
        if (!TryResolve(request.Uri, out var t) || !IsSessionTarget(t)) return (Status(404), null);
        if (!session.HasOutputs) return (Status(455), null);
        var response = Status(200);
        response.Headers["Session"] = SessionHeader();
        response.Headers["Range"] = "npt=0.000-";
        if (session.IsPlaying) return (response, null);
        var subscription = session.Stream.Subscribe(_user);
        if (subscription is null)
        {
            _server.Metrics.Rejected.Add(1);
            _server.Refusals.Refused("viewer-limit", _address, $"viewer limit reached for {session.Stream.DeviceId}/{session.Stream.Camera} (per stream, per user or in total)");
            return (Status(503), null);
        }
        // RFC 2326 §12.33: where each track's RTP starts, so the client can map RTP time to npt.
        var info = new StringBuilder();
        for (var i = 0; i < session.Outputs.Length; i++)
        {
            if (session.Outputs[i] is not { } o) continue;
            if (info.Length > 0) info.Append(',');
            info.Append(CultureInfo.InvariantCulture, $"url={t.BaseUrl}/{SdpWriter.TrackControl(i)};seq={o.Packetizer.SequenceNumber};rtptime={session.InitialRtpTime(i)}");
        }
        response.Headers["RTP-Info"] = info.ToString();
        var transport = session.Outputs.Any(o => o is UdpTrackOutput) ? "UDP" : "TCP";
        return (response, () =>
        {
            session.Play(subscription);
            RtspServerLog.SessionPlaying(Logger, session.Id, RemoteEndPoint, session.Stream.DeviceId, session.Stream.Camera, transport);
        });
    }

    private async Task<RtspResponse> PauseAsync(RtspRequest request)
    {
        if (_session is null || !SessionMatches(request)) return Status(454);
        await _session.StopAsync().ConfigureAwait(false);
        var response = Status(200);
        response.Headers["Session"] = SessionHeader();
        return response;
    }

    private async Task<RtspResponse> TeardownAsync(RtspRequest request)
    {
        if (_session is null || !SessionMatches(request)) return Status(454);
        await EndSessionAsync("teardown").ConfigureAwait(false);
        return Status(200);
    }

    private async Task EndSessionAsync(string reason)
    {
        var session = _session;
        _session = null;
        if (session is null) return;
        await session.DisposeAsync().ConfigureAwait(false);
        RtspServerLog.SessionEnded(Logger, session.Id, reason, session.FramesSent, session.BytesSent, session.FramesDropped);
    }

    public async ValueTask DisposeAsync()
    {
        Abort(_closeReason ?? "closed");
        await _watchdog.DisposeAsync().ConfigureAwait(false);
        await EndSessionAsync(_closeReason ?? "connection closed").ConfigureAwait(false);
        await EndPublishAsync(_closeReason ?? "connection closed").ConfigureAwait(false);
        RtspServerLog.ConnectionClosed(Logger, RemoteEndPoint, _closeReason ?? "closed");
        await _input.CompleteAsync().ConfigureAwait(false);
        try { await _output.CompleteAsync().ConfigureAwait(false); }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException) { }
        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
        _abort.Dispose();
        _writeLock.Dispose();
    }
}
