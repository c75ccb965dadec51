using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;

namespace Pinhole.Benchmarks.Scale;

/// <summary>
/// A lightweight RTSP viewer for the load test: RTSP/TCP with interleaved RTP (RFC 2326 §10.12),
/// DESCRIBE (following 302 redirects to another relay, §11.3.3, and Digest or Basic authentication),
/// SETUP of the video track, PLAY, then only a look at each RTP packet: no depacketizing. The stamp
/// SEI that starts each frame (<see cref="StampedClip"/>) says which frame it is and when it left the
/// device; the packet with the marker bit ends the frame, which is then counted with its added delay
/// (arrival of its last packet minus the send time). A GET_PARAMETER every 20 s keeps the session.
/// </summary>
internal sealed class LoadViewer
{
    private static readonly TimeSpan KeepaliveInterval = TimeSpan.FromSeconds(20);
    private readonly Lock _lock = new();
    private readonly List<Arrival> _arrivals = [];
    private readonly string _user, _password;
    private int _cseq;
    private HttpClientAuthenticator? _auth;
    private string? _session;

    public LoadViewer(int index, Uri url, int device, string user, string password)
    {
        Index = index;
        Url = url;
        Device = device;
        _user = user;
        _password = password;
    }

    /// <summary>One frame seen: its sequence number, arrival (load-generator clock) and added delay.</summary>
    public readonly record struct Arrival(ulong Sequence, long At, double DelayMs);

    public int Index { get; }

    /// <summary>What the viewer asks for first (the balancer's or the relay's address).</summary>
    public Uri Url { get; }

    /// <summary>The index of the device watched.</summary>
    public int Device { get; }

    /// <summary>Where it played after redirects.</summary>
    public Uri? PlayedFrom { get; private set; }

    /// <summary>How many 302s it followed.</summary>
    public int Redirects { get; private set; }

    /// <summary>True once PLAY was answered 200.</summary>
    public bool Playing { get; private set; }

    /// <summary>Why the viewer stopped early, or null.</summary>
    public string? Failure { get; private set; }

    /// <summary>RTP packets received.</summary>
    public long Packets;

    public IReadOnlyList<Arrival> Snapshot()
    {
        lock (_lock) return [.. _arrivals];
    }

    /// <summary>Plays until <paramref name="cancellationToken"/> fires; failures end up in <see cref="Failure"/>.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            await PlayAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is IOException or SocketException or RtspProtocolException or FormatException or InvalidOperationException or OperationCanceledException)
        {
            Failure = e.Message;
        }
    }

    private async Task PlayAsync(CancellationToken ct)
    {
        var url = Url;
        for (var hop = 0; ; hop++)
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                connectTimeout.CancelAfter(TimeSpan.FromSeconds(10));
                await socket.ConnectAsync(url.Host, url.Port, connectTimeout.Token);
            }
            var reader = new Reader(socket);
            var describe = new RtspRequest("DESCRIBE", url.AbsoluteUri);
            describe.Headers.Add("Accept", "application/sdp");
            var answer = await RequestAsync(socket, reader, describe, ct);
            if (answer.StatusCode is 301 or 302 or 303 or 305 or 307)
            {
                if (hop >= 3 || answer.Headers["Location"] is not { } location || !Uri.TryCreate(url, location, out var next) || next.Scheme != "rtsp")
                    throw new InvalidOperationException($"DESCRIBE {url}: {answer.StatusCode} without a usable Location (or too many redirects)");
                url = next;
                Redirects++;
                _auth = null;
                continue;
            }
            if (answer.StatusCode != 200) throw new InvalidOperationException($"DESCRIBE {url}: {answer.StatusCode} {answer.ReasonPhrase}");
            var sdp = SessionDescription.Parse(answer.BodyText);
            var baseUrl = answer.Headers["Content-Base"] is { } b && Uri.TryCreate(b, UriKind.Absolute, out var bu) ? bu : url;
            var video = sdp.Media.FirstOrDefault(m => m.Media == "video") ?? throw new InvalidOperationException($"DESCRIBE {url}: no video track");
            var setup = new RtspRequest("SETUP", RtspUrl.ResolveControl(baseUrl, video.Control).AbsoluteUri);
            setup.Headers.Add("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1");
            answer = await RequestAsync(socket, reader, setup, ct);
            if (answer.StatusCode != 200) throw new InvalidOperationException($"SETUP: {answer.StatusCode} {answer.ReasonPhrase}");
            _session = RtspSession.Parse(answer.Headers["Session"] ?? throw new InvalidOperationException("SETUP answered without Session")).Id;
            var channel = answer.Headers["Transport"] is { } t ? RtspTransport.ParseList(t)[0].Interleaved?.First ?? 0 : 0;
            var play = new RtspRequest("PLAY", RtspUrl.ResolveControl(baseUrl, sdp.Control).AbsoluteUri);
            answer = await RequestAsync(socket, reader, play, ct);
            if (answer.StatusCode != 200) throw new InvalidOperationException($"PLAY: {answer.StatusCode} {answer.ReasonPhrase}");
            PlayedFrom = url;
            Playing = true;
            await ReceiveAsync(socket, reader, channel, url, ct);
            return;
        }
    }

    private async Task<RtspResponse> RequestAsync(Socket socket, Reader reader, RtspRequest request, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            await SendAsync(socket, request, ct);
            RtspResponse? response;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                timeout.CancelAfter(TimeSpan.FromSeconds(15));
                do
                {
                    response = await reader.NextMessageAsync(timeout.Token) as RtspResponse;
                } while (response is null || response.CSeq != request.CSeq);
            }
            if (response.StatusCode != 401 || attempt > 0) return response;
            _auth = HttpClientAuthenticator.Create(HttpAuthChallenge.ParseAll(response.Headers.GetValues("WWW-Authenticate")), _user, _password)
                ?? throw new InvalidOperationException("the relay offers no authentication scheme this viewer speaks");
        }
    }

    private async Task SendAsync(Socket socket, RtspRequest request, CancellationToken ct)
    {
        request.CSeq = ++_cseq;
        if (_session is not null) request.Headers["Session"] = _session;
        if (_auth is not null) request.Headers["Authorization"] = _auth.Authorize(request.Method, request.Uri);
        var bytes = RtspWriter.ToBytes(request);
        await socket.SendAsync(bytes, SocketFlags.None, ct);
    }

    private async Task ReceiveAsync(Socket socket, Reader reader, int channel, Uri url, CancellationToken ct)
    {
        ulong current = 0;
        long sentAt = 0;
        var keepalive = Stopwatch.GetTimestamp();
        while (true)
        {
            var payload = await reader.NextRtpAsync(channel, ct);
            if (payload.Length == 0) throw new IOException("the relay closed the connection");
            Packets++;
            var now = Stopwatch.GetTimestamp();
            if (TryRtpPayload(payload.Span, out var marker, out var nal))
            {
                if (StampedClip.TryReadStamp(nal, out var device, out var sequence, out var clock) && device == (uint)Device)
                {
                    current = sequence;
                    sentAt = clock;
                }
                if (marker && current != 0)
                {
                    var arrival = new Arrival(current, now, Stopwatch.GetElapsedTime(sentAt, now).TotalMilliseconds);
                    lock (_lock) _arrivals.Add(arrival);
                    current = 0;
                }
            }
            if (Stopwatch.GetElapsedTime(keepalive, now) > KeepaliveInterval)
            {
                keepalive = now;
                await SendAsync(socket, new RtspRequest("GET_PARAMETER", url.AbsoluteUri), ct);
            }
        }
    }

    /// <summary>The RTP payload (RFC 3550 §5.1: fixed header, CSRCs, header extension, padding) and the marker bit.</summary>
    private static bool TryRtpPayload(ReadOnlySpan<byte> packet, out bool marker, out ReadOnlySpan<byte> payload)
    {
        marker = false;
        payload = default;
        if (packet.Length < 12 || packet[0] >> 6 != 2) return false;
        marker = (packet[1] & 0x80) != 0;
        var offset = 12 + 4 * (packet[0] & 0x0F);
        if ((packet[0] & 0x10) != 0)
        {
            if (packet.Length < offset + 4) return false;
            offset += 4 + 4 * BinaryPrimitives.ReadUInt16BigEndian(packet[(offset + 2)..]);
        }
        var end = packet.Length;
        if ((packet[0] & 0x20) != 0 && end > offset) end -= packet[end - 1];
        if (end <= offset) return false;
        payload = packet[offset..end];
        return true;
    }

    /// <summary>Bytes from the relay, cut into RTSP messages and interleaved frames.</summary>
    private sealed class Reader(Socket socket)
    {
        private byte[] _buffer = new byte[128 * 1024];
        private int _start, _end;

        /// <summary>The next message; interleaved frames before it are skipped.</summary>
        public async Task<RtspMessage?> NextMessageAsync(CancellationToken ct)
        {
            while (true)
            {
                if (TryFrame(out _, out _)) continue;
                if (TryMessage(out var message)) return message;
                if (!await FillAsync(ct)) throw new IOException("the relay closed the connection");
            }
        }

        /// <summary>The next RTP packet on <paramref name="channel"/>; other frames and messages (keep-alive answers) are skipped. Empty at the end of the stream.</summary>
        public async Task<ReadOnlyMemory<byte>> NextRtpAsync(int channel, CancellationToken ct)
        {
            while (true)
            {
                if (TryFrame(out var ch, out var payload))
                {
                    if (ch == channel) return payload;
                    continue;
                }
                if (TryMessage(out _)) continue;
                if (!await FillAsync(ct)) return ReadOnlyMemory<byte>.Empty;
            }
        }

        private bool TryFrame(out int channel, out ReadOnlyMemory<byte> payload)
        {
            channel = -1;
            payload = default;
            var available = _buffer.AsSpan(_start, _end - _start);
            if (available.Length < InterleavedFrame.HeaderLength || available[0] != RtspParser.InterleavedMarker) return false;
            if (!InterleavedFrame.TryReadHeader(available, out var ch, out var length) || available.Length < InterleavedFrame.HeaderLength + length) return false;
            channel = ch;
            payload = _buffer.AsMemory(_start + InterleavedFrame.HeaderLength, length);
            _start += InterleavedFrame.HeaderLength + length;
            return true;
        }

        private bool TryMessage(out RtspMessage? message)
        {
            message = null;
            if (_end == _start || _buffer[_start] == RtspParser.InterleavedMarker) return false;
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(_buffer, _start, _end - _start));
            if (!RtspParser.TryParseMessage(ref reader, out message)) return false;
            _start += (int)reader.Consumed;
            return true;
        }

        private async Task<bool> FillAsync(CancellationToken ct)
        {
            // The payload handed out last is used before the next call, so the buffer may move now.
            if (_start > 0)
            {
                _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2);
            var n = await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, ct);
            _end += n;
            return n > 0;
        }
    }
}
