using System.Buffers.Binary;
using System.Security.Cryptography;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.Tls.Crypto.Impl.BC;
using Org.BouncyCastle.Tls;
using Pinhole.Streaming;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Srtp;

namespace Pinhole.Relay.WebRtc;

/// <summary>The state of one WHEP viewer.</summary>
public enum WebRtcPeerState
{
    /// <summary>Answered; waiting for the browser's connectivity checks and DTLS handshake.</summary>
    Connecting,

    /// <summary>DTLS done: media flows.</summary>
    Connected,

    /// <summary>Ended (DELETE, consent lost, handshake failed, the stream went away).</summary>
    Closed,
}

/// <summary>
/// One WHEP viewer: the ICE-lite side of its connectivity checks (the browser checks, the relay
/// answers and follows the nominated path), the DTLS-SRTP handshake on a thread of its own, and the
/// sender that packetizes the camera's frames (the cached GOP first), protects them with SRTP,
/// keeps the last packets for NACK retransmission, answers PLI from the GOP cache and sends RTCP SR.
/// </summary>
internal sealed class WebRtcPeer : IDisposable
{
    private const int MaxRtpPacket = 1200;
    private const int NackBufferSize = 1024;
    private readonly WebRtcServer _server;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly DtlsCertificate _identity;
    private readonly DtlsDatagramTransport _dtls;
    private readonly CancellationTokenSource _closing = new();
    private readonly byte[] _protectBuffer = new byte[MaxRtpPacket + SrtpSession.SrtcpTrailerLength + 64];
    // The last NackBufferSize protected video packets by sequence number, for NACK resends. Slot buffers
    // are reused, so the send path copies into one instead of allocating a packet per packet.
    private readonly (ushort Seq, byte[]? Buffer, int Length)[] _sent = new (ushort, byte[]?, int)[NackBufferSize];
    private readonly Lock _sendLock = new();
    private volatile IcePath? _path;
    private MediaSubscription _subscription;
    private SrtpSession? _srtp;
    private SrtpSession? _srtcp;
    private Thread? _dtlsThread;
    private int _handshakeStarted;
    private long _lastConsent;
    private readonly long _created;
    private int _closed;
    private RtpPacketizer?[] _packetizers = [];
    private long[] _lastSentAt = [];
    private long?[] _lastDts = [];
    private bool _anchored, _resume;
    private volatile bool _keyframeRequested;
    private long _lastKeyframeAnswer;
    private uint _videoSsrc;

    public WebRtcPeer(WebRtcServer server, string user, WebRtcOffer offer, IReadOnlyList<AnsweredMedia> media, MediaSubscription subscription,
        DtlsCertificate identity, TimeProvider time, ILogger log)
    {
        _server = server;
        _time = time;
        _log = log;
        _identity = identity;
        User = user;
        Offer = offer;
        Media = media;
        _subscription = subscription;
        Id = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();
        LocalUfrag = RandomIceString(8);
        LocalPassword = RandomIceString(24);
        _dtls = new DtlsDatagramTransport(() => _path);
        _created = time.GetTimestamp();
        _lastConsent = _created;
        _videoSsrc = media.FirstOrDefault(m => m.Offered.Kind == "video" && m.PayloadType >= 0)?.Ssrc ?? 0;
    }

    public string Id { get; }

    public string User { get; }

    public string LocalUfrag { get; }

    public string LocalPassword { get; }

    public WebRtcOffer Offer { get; }

    public IReadOnlyList<AnsweredMedia> Media { get; }

    public MediaStream Stream => _subscription.Stream;

    public WebRtcPeerState State { get; private set; } = WebRtcPeerState.Connecting;

    public string? CloseReason { get; private set; }

    public IcePath? Path => _path;

    public long PacketsSent;
    public long BytesSent;
    public long Retransmitted;
    public long NacksReceived;
    public long KeyframeRequests;
    public int? LastFractionLost;

    private static string RandomIceString(int length)
    {
        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        return RandomNumberGenerator.GetString(Alphabet, length);
    }

    /// <summary>A connectivity check with the right credentials arrived on <paramref name="path"/> (RFC 8445 §7.3).</summary>
    public void OnBindingRequest(IcePath path, bool useCandidate)
    {
        Interlocked.Exchange(ref _lastConsent, _time.GetTimestamp());
        // ICE-lite (RFC 8445 §2.5): the browser controls; the relay sends on the pair it nominates,
        // and on the first checked pair until then so DTLS can answer at once.
        if (_path is null || (useCandidate && !path.Equals(_path)))
        {
            if (_path is not null) WebRtcLog.PathChanged(_log, Id, _path.ToString(), path.ToString());
            _path = path;
        }
    }

    /// <summary>How long since the browser's last valid check (consent freshness, RFC 7675).</summary>
    public TimeSpan SinceConsent => _time.GetElapsedTime(Interlocked.Read(ref _lastConsent));

    public TimeSpan Age => _time.GetElapsedTime(_created);

    /// <summary>A DTLS record from a checked address.</summary>
    public void OnDtls(ReadOnlySpan<byte> record)
    {
        if (State == WebRtcPeerState.Closed) return;
        _dtls.Deliver(record);
        if (Interlocked.Exchange(ref _handshakeStarted, 1) == 0)
        {
            _dtlsThread = new Thread(RunDtls) { IsBackground = true, Name = "webrtc-dtls-" + Id[..8] };
            _dtlsThread.Start();
        }
    }

    private void RunDtls()
    {
        var server = new DtlsSrtpServer(new BcTlsCrypto(new SecureRandom()), _identity, Offer.Fingerprints);
        DtlsTransport? transport = null;
        try
        {
            transport = new DtlsServerProtocol().Accept(server, _dtls);
            var (localKey, localSalt, remoteKey, remoteSalt) = SrtpKeyMaterial.FromDtlsExporter(server.KeyingMaterial!, weAreDtlsServer: true);
            _srtp = new SrtpSession(localKey, localSalt);
            _srtcp = new SrtpSession(remoteKey, remoteSalt);
            State = WebRtcPeerState.Connected;
            WebRtcLog.Connected(_log, Id, User, Stream.DeviceId, Stream.Camera, _path?.ToString() ?? "?", (long)Age.TotalMilliseconds);
            _ = Task.Run(() => SendLoopAsync(_closing.Token));
            // Keep reading: a close_notify or alert ends the session; retransmitted Finished flights are answered.
            var buffer = new byte[2048];
            while (!_closing.IsCancellationRequested)
            {
                var n = transport.Receive(buffer, 0, buffer.Length, 1000);
                if (n < 0) continue;
            }
        }
        catch (TlsFatalAlertReceived e)
        {
            Close("the browser sent DTLS alert " + AlertDescription.GetText(e.AlertDescription));
        }
        catch (TlsFatalAlert e)
        {
            Close("DTLS handshake refused: " + (server.Refusal ?? e.Message));
        }
        catch (Exception e) when (e is TlsException or IOException or ObjectDisposedException or InvalidOperationException or ArgumentException)
        {
            Close("DTLS: " + (server.Refusal ?? e.Message));
        }
        finally
        {
            // close_notify tells the browser at once (its connection closes and the player falls back to MSE).
            try { transport?.Close(); } catch (Exception e) when (e is IOException or TlsException or ObjectDisposedException) { }
            _dtls.Close();
        }
    }

    /// <summary>An SRTCP packet from the browser: receiver reports, NACK, PLI, FIR.</summary>
    public void OnSrtcp(ReadOnlySpan<byte> packet)
    {
        var srtcp = _srtcp;
        if (srtcp is null) return;
        var plain = new byte[packet.Length];
        int length;
        lock (srtcp)
        {
            if (!srtcp.TryUnprotectRtcp(packet, plain, out length)) return;
        }
        RtcpFeedback feedback;
        try
        {
            feedback = RtcpFeedback.Parse(plain.AsSpan(0, length));
        }
        catch (MediaFormatException)
        {
            return; // authenticated but malformed: the browser's bug, not a reason to end the session
        }
        foreach (var rr in feedback.ReceiverReports)
            foreach (var block in rr.Reports)
                if (block.Ssrc == _videoSsrc) LastFractionLost = block.FractionLost;
        var nacked = feedback.Nacks.Where(n => n.MediaSsrc == _videoSsrc).SelectMany(n => n.LostSequenceNumbers).ToList();
        if (nacked.Count > 0)
        {
            Interlocked.Add(ref NacksReceived, nacked.Count);
            var path = _path;
            if (path is null) return;
            foreach (var seq in nacked)
            {
                byte[]? again;
                lock (_sent)
                {
                    // A copy: the slot is reused by the send path once 1024 newer packets went out.
                    var slot = _sent[seq % NackBufferSize];
                    again = slot.Seq == seq && slot.Buffer is not null ? slot.Buffer.AsSpan(0, slot.Length).ToArray() : null;
                }
                if (again is null) continue;
                // The packet goes again exactly as protected the first time: same index, same bytes.
                path.Send(again);
                Interlocked.Increment(ref Retransmitted);
            }
        }
        if (feedback.PictureLossIndications.Any(p => p.MediaSsrc == _videoSsrc) || feedback.FullIntraRequests.Any(f => f.MediaSsrc == _videoSsrc))
        {
            Interlocked.Increment(ref KeyframeRequests);
            _keyframeRequested = true;
        }
    }

    private async Task SendLoopAsync(CancellationToken ct)
    {
        var lastReport = _time.GetTimestamp();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                if (_keyframeRequested) AnswerKeyframeRequest();
                // Queued events are taken at once; only an empty queue waits, and then at most a second
                // (sender reports and keyframe requests), so no timer is made per frame.
                if (!_subscription.TryRead(out var evt))
                {
                    using var tick = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    tick.CancelAfter(TimeSpan.FromSeconds(1));
                    try
                    {
                        evt = await _subscription.ReadAsync(tick.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                        // A cancelled read takes nothing from the queue.
                        SendSenderReports();
                        lastReport = _time.GetTimestamp();
                        continue;
                    }
                }
                switch (evt.Kind)
                {
                    case MediaEventKind.Tracks:
                        if (!UseTracks(evt.Tracks!)) { Close("the camera's codecs changed; reconnect"); return; }
                        _resume = _anchored;
                        break;
                    case MediaEventKind.Offline:
                    case MediaEventKind.Restart:
                        _resume = _anchored;
                        break;
                    case MediaEventKind.Frame:
                        if (!SendFrame(evt.Unit)) return;
                        break;
                }
                if (_time.GetElapsedTime(lastReport) >= TimeSpan.FromSeconds(1))
                {
                    lastReport = _time.GetTimestamp();
                    SendSenderReports();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        catch (Exception e)
        {
            // A bug in sending one viewer's stream ends that viewer, never the relay.
            WebRtcLog.SenderFailed(_log, e, Id);
            Close("sender failed: " + e.Message);
        }
    }

    private bool UseTracks(IReadOnlyList<TrackInfo> tracks)
    {
        if (_packetizers.Length == 0)
        {
            _packetizers = new RtpPacketizer?[tracks.Count];
            _lastSentAt = new long[tracks.Count];
            _lastDts = new long?[tracks.Count];
            foreach (var m in Media)
            {
                if (m.PayloadType < 0 || m.TrackIndex >= tracks.Count) continue;
                _packetizers[m.TrackIndex] = RtpPacketizerFactory.Create(tracks[m.TrackIndex], (byte)m.PayloadType,
                    new RtpPacketizerOptions { MaxPacketSize = MaxRtpPacket, Ssrc = m.Ssrc });
            }
            return true;
        }
        if (tracks.Count != _packetizers.Length) return false;
        for (var i = 0; i < tracks.Count; i++)
            if (_packetizers[i] is { } p && !p.TryUpdateTrack(tracks[i])) return false;
        return true;
    }

    private bool SendFrame(in AccessUnit unit)
    {
        if ((uint)unit.Track >= (uint)_packetizers.Length || _packetizers[unit.Track] is not { } packetizer) return true;
        if (packetizer.ClockRate == 90000 && unit.Pts != unit.Dts)
        {
            // WebRTC has no decode timestamps: a stream with B-frames would play out of order. MSE plays it.
            Close("the camera sends B-frames, which WebRTC cannot carry; play it over MSE");
            return false;
        }
        var path = _path;
        if (path is null) return true;
        if (!_anchored)
        {
            _anchored = true;
        }
        else if (_resume || (_lastDts[unit.Track] is { } last && (unit.Dts < last || unit.Dts - last > 10L * packetizer.ClockRate)))
        {
            Resume(unit);
            _resume = false;
        }
        var video = packetizer.Ssrc == _videoSsrc;
        packetizer.Packetize(unit, packet => SendRtp(packet, path, video));
        _lastSentAt[unit.Track] = _time.GetTimestamp();
        _lastDts[unit.Track] = unit.Dts;
        return true;
    }

    // After a restart of the source its clock may start anew: every track continues from its last
    // RTP time advanced by the wallclock gap (RFC 3550 §5.1), so the browser sees a pause, not a jump back.
    private void Resume(in AccessUnit first)
    {
        var anchorClock = _packetizers[first.Track]!.ClockRate;
        for (var i = 0; i < _packetizers.Length; i++)
        {
            if (_packetizers[i] is not { PacketCount: > 0 } p) continue;
            var target = unchecked(p.LastTimestamp + (uint)(_time.GetElapsedTime(_lastSentAt[i]).TotalSeconds * p.ClockRate));
            var ticks = (long)((Int128)first.Pts * p.ClockRate / anchorClock);
            p.TimestampOffset = unchecked(target - (uint)ticks);
            _lastDts[i] = null;
        }
    }

    private void SendRtp(ReadOnlySpan<byte> packet, IcePath path, bool video)
    {
        var srtp = _srtp!;
        int n;
        lock (_sendLock)
        {
            n = srtp.ProtectRtp(packet, _protectBuffer);
            if (video)
            {
                var seq = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
                lock (_sent)
                {
                    ref var slot = ref _sent[seq % NackBufferSize];
                    if (slot.Buffer is null || slot.Buffer.Length < n) slot.Buffer = new byte[Math.Max(n, 1500)];
                    _protectBuffer.AsSpan(0, n).CopyTo(slot.Buffer);
                    slot.Seq = seq;
                    slot.Length = n;
                }
            }
            path.Send(_protectBuffer.AsSpan(0, n));
        }
        Interlocked.Increment(ref PacketsSent);
        Interlocked.Add(ref BytesSent, n);
    }

    // PLI/FIR (RFC 4585 §6.3.1): the relay cannot ask the camera for a keyframe, but it has the
    // stream's current GOP. A fresh subscription starts with it: its pictures go out again, packed
    // one RTP tick apart right after the last timestamp sent, so the decoder rebuilds the current
    // picture at once; live frames then follow on the old timeline.
    private void AnswerKeyframeRequest()
    {
        _keyframeRequested = false;
        if (_time.GetElapsedTime(_lastKeyframeAnswer) < TimeSpan.FromSeconds(1)) return;
        _lastKeyframeAnswer = _time.GetTimestamp();
        var fresh = Stream.Subscribe(User);
        if (fresh is null) return;
        var old = _subscription;
        _subscription = fresh;
        old.Dispose();
        var path = _path;
        if (path is null) return;
        var replayed = new List<AccessUnit>();
        while (fresh.TryRead(out var evt))
        {
            if (evt.Kind == MediaEventKind.Frame) replayed.Add(evt.Unit);
            else if (evt.Kind == MediaEventKind.Tracks) UseTracks(evt.Tracks!);
        }
        foreach (var unit in replayed)
        {
            if ((uint)unit.Track >= (uint)_packetizers.Length || _packetizers[unit.Track] is not { } p || p.PacketCount == 0) continue;
            var saved = p.TimestampOffset;
            var lastDts = _lastDts[unit.Track];
            if (lastDts is { } dts && unit.Dts > dts)
            {
                // Not sent yet: it goes out normally.
                SendFrame(unit);
                continue;
            }
            // Already shown: squeeze it in one tick after the last timestamp.
            p.TimestampOffset = unchecked(p.LastTimestamp + 1 - (uint)unit.Pts);
            var video = p.Ssrc == _videoSsrc;
            p.Packetize(unit, packet => SendRtp(packet, path, video));
            p.TimestampOffset = saved;
        }
    }

    // RFC 3550 §6.4.1: pair the wallclock with the RTP time of the same instant.
    private void SendSenderReports()
    {
        var path = _path;
        if (path is null || _srtp is null) return;
        var ntp = Pinhole.Streaming.Rtsp.RtspServerSession.ToNtp(_time.GetUtcNow());
        for (var i = 0; i < _packetizers.Length; i++)
        {
            if (_packetizers[i] is not { PacketCount: > 0 } p) continue;
            var rtpNow = unchecked(p.LastTimestamp + (uint)(_time.GetElapsedTime(_lastSentAt[i]).TotalSeconds * p.ClockRate));
            var sr = new RtcpPacket
            {
                PacketType = RtcpPacket.SenderReportType,
                Ssrc = p.Ssrc,
                NtpTimestamp = ntp,
                RtpTimestamp = rtpNow,
                PacketCount = unchecked((uint)p.PacketCount),
                OctetCount = unchecked((uint)p.OctetCount),
            }.ToArray();
            lock (_sendLock)
            {
                var n = _srtp.ProtectRtcp(sr, _protectBuffer);
                path.Send(_protectBuffer.AsSpan(0, n));
            }
        }
    }

    /// <summary>Ends the session (idempotent): stops the sender and DTLS, leaves the stream, tells the server.</summary>
    public void Close(string reason)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        CloseReason = reason;
        WebRtcLog.Closed(_log, Id, User, Stream.DeviceId, Stream.Camera, reason, Interlocked.Read(ref PacketsSent), Interlocked.Read(ref Retransmitted));
        var connected = State == WebRtcPeerState.Connected;
        State = WebRtcPeerState.Closed;
        _closing.Cancel();
        // A handshake in progress is cut off here; after it the DTLS thread sends close_notify first.
        if (!connected || _dtlsThread is null) _dtls.Close();
        _subscription.Dispose();
        _server.Forget(this);
    }

    public void Dispose()
    {
        Close("relay stopping");
        _closing.Dispose();
    }
}
