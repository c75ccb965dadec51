using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Pinhole.Transport.Aac;
using Pinhole.Transport.Fmp4;
using Pinhole.Transport.G711;
using Pinhole.Transport.H264;
using Pinhole.Transport.H265;
using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;
using Pinhole.Transport.Srtp;
using Pinhole.Transport.Stun;
using Pinhole.Transport.Updates;
using Pinhole.Transport.Uplink;
using Pinhole.Transport.WebSockets;

namespace Pinhole.Fuzz;

/// <summary>
/// Every parser in Pinhole.Transport that reads bytes from the network (or from a capture process),
/// as a libFuzzer target. A target feeds the input the way the product does (a stream of messages,
/// interleaved RTP, one SDP body…) and checks a few properties on the way (a parse does not depend on
/// how the bytes were split into segments; what was parsed can be written and parsed back).
/// </summary>
public static class FuzzTargets
{
    /// <summary>The targets by name.</summary>
    public static IReadOnlyDictionary<string, FuzzTarget> All { get; } = new[]
    {
        new FuzzTarget("rtsp", "RTSP requests/responses and interleaved frames as a stream (RtspParser), split in two segments too; then the Transport, Session, WWW-Authenticate and Authorization headers (RtspTransport, RtspSession, HttpAuthChallenge, DigestServer.Verify, Basic)",
            typeof(MediaFormatException), Rtsp),
        new FuzzTarget("rtp", "length-prefixed RTP packets (RtpPacket.Parse), write-and-parse-back, then RtpReorderBuffer and RtpReceptionStatistics",
            typeof(MediaFormatException), Rtp),
        new FuzzTarget("rtcp", "one compound RTCP packet (RtcpPacket.ParseCompound); SR/RR written and parsed back",
            typeof(MediaFormatException), Rtcp),
        new FuzzTarget("sdp", "an SDP body (SessionDescription.Parse), each media section through RtpDepacketizerFactory (rtpmap, fmtp, sprop-*, config) and control URL resolution, written and parsed back",
            typeof(MediaFormatException), Sdp),
        new FuzzTarget("h264", "RTSP interleaved RTP into H264Depacketizer (single NAL, STAP-A, FU-A, in-band SPS through H264Sps)",
            typeof(MediaFormatException), data => Depacketize(data, _ => new H264Depacketizer(0))),
        new FuzzTarget("h265", "RTSP interleaved RTP into H265Depacketizer (single NAL, AP, FU, in-band SPS through H265Sps)",
            typeof(MediaFormatException), data => Depacketize(data, _ => new H265Depacketizer(0))),
        new FuzzTarget("aac", "RTSP interleaved RTP into AacDepacketizer (RFC 3640 AAC-hbr AU headers, fragmented AUs); channel 2 uses AAC-lbr-like lengths",
            typeof(MediaFormatException), data => Depacketize(data, AacFor)),
        new FuzzTarget("g711", "RTSP interleaved RTP into G711Depacketizer (PCMA mono on channel 0, PCMU stereo on channel 2)",
            typeof(MediaFormatException), data => Depacketize(data, G711For)),
        new FuzzTarget("uplink", "the uplink codec as a byte stream (UplinkCodec.TryParse), split in two segments too; every message encoded and parsed back",
            typeof(UplinkProtocolException), Uplink),
        new FuzzTarget("tunnel", "a stream of uplink messages into one TunnelMux, as the device or as the relay (three opens of its own pending) by the first byte, the peer's opens accepted or refused by name; every open is answered, the stream limit holds",
            typeof(UplinkProtocolException), Tunnel),
        new FuzzTarget("http-chunks", "the relay's chunked GET body of the HTTP fallback (UplinkHttpFraming chunk-size and trailer lines, every prefix of a line too) dechunked as the edge does and split into uplink messages",
            typeof(UplinkProtocolException), HttpChunks),
        new FuzzTarget("websocket", "WebSocket frame headers from the relay (WebSocketFraming.TryReadHeader) and unmasking",
            typeof(WebSocketFramingException), WebSocket),
        new FuzzTarget("parameter-sets", "first byte picks: H.264 SPS (H264Sps), H.265 SPS (H265Sps), AudioSpecificConfig, each also as an fMP4 codec string (CodecStrings)",
            typeof(MediaFormatException), ParameterSets),
        new FuzzTarget("annexb", "an Annex-B byte stream as exec: capture pipes produce it (AnnexBReader), split in two segments too",
            typeof(MediaFormatException), AnnexB),
        new FuzzTarget("stun", "one STUN datagram (StunMessage.Parse, VerifyFingerprint, VerifyMessageIntegrity), written back with MESSAGE-INTEGRITY and FINGERPRINT and parsed again; the same bytes as an RFC 4571 ICE-TCP stream (IceTcpFraming), whole and split",
            typeof(StunProtocolException), Stun),
        new FuzzTarget("srtp", "length-prefixed packets into an SRTP session (TryUnprotectRtp/TryUnprotectRtcp by RFC 5761 type); each RTP/RTCP packet also protected by one session and unprotected by another, which must give it back",
            typeof(NoExceptionAllowed), Srtp),
        new FuzzTarget("rtcp-feedback", "one compound RTCP packet from a WebRTC viewer (RtcpFeedback.Parse: NACK, PLI, FIR, RR, BYE); every NACK, PLI and FIR written and parsed back",
            typeof(MediaFormatException), RtcpFeedbackTarget),
        new FuzzTarget("release-manifest", "the head of a release bundle (ReleaseBundle.TryReadHead, Verify against a fixed key) and the same bytes as a manifest (ReleaseManifest.Parse); a manifest written and parsed back writes the same",
            typeof(ReleaseBundleException), Release),
    }.ToDictionary(t => t.Name, StringComparer.Ordinal);

    // ------------------------------------------------------------------ RTSP

    // Objects of the instrumented assembly live in holder classes, created on first use: SharpFuzz's
    // coverage map is only set up inside Fuzzer.LibFuzzer.Run, and instrumented code running before
    // that (say, in this class's static constructor) writes through a null map.
    private static class Shared
    {
        public static readonly DigestServer Digest = new("pinhole", TimeSpan.FromMinutes(1));
        public static readonly UplinkLimits SmallLimits = new() { MaxMessageBytes = 256 * 1024 };
    }

    // Not instrumented (System.Security.Cryptography), but kept with the other lazily made objects.
    private static class Keys
    {
        public static readonly ECDsa Release = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    }

    private static readonly Uri BaseUrl = new("rtsp://127.0.0.1:8554/gw1/cam");

    private static void Rtsp(ReadOnlySpan<byte> data)
    {
        var bytes = data.ToArray();
        var whole = ParseRtspStream(new ReadOnlySequence<byte>(bytes), out var messages);
        var split = ParseRtspStream(Segments.Split(bytes, Segments.SplitPoint(bytes)), out _);
        if (whole != split)
            throw new PropertyViolationException($"RTSP parse depends on the segment split: '{whole}' vs '{split}'");
        foreach (var message in messages) RtspHeaders(message);
    }

    // The outcome of parsing a whole stream, as text that must not depend on segmentation.
    private static string ParseRtspStream(ReadOnlySequence<byte> sequence, out List<RtspMessage> messages)
    {
        messages = [];
        var reader = new SequenceReader<byte>(sequence);
        var frames = 0;
        try
        {
            while (RtspParser.TryParse(ref reader, out var message, out var frame))
            {
                if (message is not null) messages.Add(message);
                else frames += 1 + frame.Payload.Length;
            }
        }
        catch (MediaFormatException)
        {
            return $"rejected after {messages.Count} messages, {frames} frame bytes";
        }
        return $"{messages.Count} messages, {frames} frame bytes, {reader.Consumed} consumed";
    }

    private static void RtspHeaders(RtspMessage message)
    {
        _ = message.CSeq;
        _ = message.BodyText;
        if (message.Headers["Transport"] is { } transport)
            Try(() => { foreach (var t in RtspTransport.ParseList(transport)) _ = t.ToString(); });
        if (message.Headers["Session"] is { } session)
            Try(() => _ = RtspSession.Parse(session).ToString());
        var challenges = message.Headers.GetValues("WWW-Authenticate").ToList();
        if (challenges.Count > 0)
        {
            Try(() =>
            {
                var parsed = HttpAuthChallenge.ParseAll(challenges);
                foreach (var c in parsed) _ = c.ToString();
                _ = HttpClientAuthenticator.Create(parsed, "alice", "secret")?.Authorize("DESCRIBE", BaseUrl.AbsoluteUri);
            });
        }
        if (message.Headers["Authorization"] is { } authorization)
        {
            _ = Shared.Digest.Verify(authorization, "DESCRIBE", (_, realm, algorithm) =>
                DigestMath.Ha1(DigestMath.TryParseAlgorithm(algorithm, out var a) ? a : DigestAlgorithm.Md5, "alice", realm, "secret"), out _);
            _ = DigestServer.TryParseBasic(authorization, out _, out _);
        }
        if (message is RtspRequest request)
            Try(() => _ = RtspUrl.ResolveControl(BaseUrl, request.Uri));
    }

    private static void Try(Action parse)
    {
        try { parse(); }
        catch (MediaFormatException) { }
    }

    // ------------------------------------------------------------------ RTP / RTCP

    private static void Rtp(ReadOnlySpan<byte> data)
    {
        var reorder = new RtpReorderBuffer(window: 8);
        var stats = new RtpReceptionStatistics();
        var ready = new List<RtpPacket>();
        var pushed = 0;
        foreach (var record in Records(data))
        {
            RtpPacket packet;
            try { packet = RtpPacket.Parse(record); }
            catch (MediaFormatException) { continue; }
            var again = RtpPacket.Parse(packet.ToArray());
            if (again.SequenceNumber != packet.SequenceNumber || again.Timestamp != packet.Timestamp || again.Ssrc != packet.Ssrc
                || again.Marker != packet.Marker || again.PayloadType != packet.PayloadType || again.Csrcs.Count != packet.Csrcs.Count
                || again.PaddingLength != packet.PaddingLength || !again.Payload.Span.SequenceEqual(packet.Payload.Span)
                || !again.ExtensionData.Span.SequenceEqual(packet.ExtensionData.Span))
                throw new PropertyViolationException("an RTP packet written and parsed back differs");
            stats.OnRtp(packet);
            reorder.Push(packet, ready);
            pushed++;
            if (ready.Count > pushed) throw new PropertyViolationException($"reorder buffer released {ready.Count} packets of {pushed}");
        }
        _ = stats.CreateReport(TimeProvider.System);
    }

    private static void Rtcp(ReadOnlySpan<byte> data)
    {
        foreach (var packet in RtcpPacket.ParseCompound(data))
        {
            if (packet.PacketType is not (RtcpPacket.SenderReportType or RtcpPacket.ReceiverReportType)) continue;
            var again = RtcpPacket.ParseCompound(packet.ToArray());
            if (again.Count != 1 || again[0].Ssrc != packet.Ssrc || !again[0].Reports.SequenceEqual(packet.Reports)
                || again[0].NtpTimestamp != packet.NtpTimestamp || again[0].RtpTimestamp != packet.RtpTimestamp)
                throw new PropertyViolationException("an RTCP report written and parsed back differs");
        }
    }

    // ------------------------------------------------------------------ SDP

    private static void Sdp(ReadOnlySpan<byte> data)
    {
        var sdp = SessionDescription.Parse(Encoding.UTF8.GetString(data));
        Try(() => _ = RtspUrl.ResolveControl(BaseUrl, sdp.Control));
        for (var i = 0; i < sdp.Media.Count; i++)
        {
            var media = sdp.Media[i];
            var track = i;
            Try(() =>
            {
                if (RtpDepacketizerFactory.TryCreate(media, track, out var depacketizer))
                    _ = depacketizer!.TrackInfo;
            });
            Try(() => _ = RtspUrl.ResolveControl(BaseUrl, media.Control));
        }
        // What we parsed we can write, and read back (the relay re-serves SDP it derived from a device's).
        var again = SessionDescription.Parse(sdp.ToString());
        if (again.Media.Count != sdp.Media.Count)
            throw new PropertyViolationException($"SDP written and parsed back has {again.Media.Count} media sections, not {sdp.Media.Count}");
    }

    // ------------------------------------------------------------------ depacketizers

    private sealed class CountingOutput : IAccessUnitOutput
    {
        public void OnAccessUnit(TrackInfo track, in AccessUnit unit)
        {
            ArgumentNullException.ThrowIfNull(track);
            if (unit.Data.IsEmpty) throw new PropertyViolationException($"empty {track.Codec} access unit");
        }
    }

    // The input is what an RTSP camera sends after PLAY over TCP: interleaved frames. RTP on even
    // channels goes to that track's depacketizer, RTCP on odd channels to the RTCP parser.
    private static void Depacketize(ReadOnlySpan<byte> data, Func<int, RtpDepacketizer?> create)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(data.ToArray()));
        var depacketizers = new Dictionary<int, RtpDepacketizer?>();
        var output = new CountingOutput();
        while (InterleavedFrame.TryParse(ref reader, out var frame))
        {
            if (frame.Channel % 2 == 1)
            {
                Try(() => RtcpPacket.ParseCompound(frame.Payload.Span));
                continue;
            }
            var track = frame.Channel / 2;
            if (!depacketizers.TryGetValue(track, out var depacketizer))
                depacketizers[track] = depacketizer = create(track);
            if (depacketizer is null) continue;
            try
            {
                depacketizer.Push(RtpPacket.Parse(frame.Payload), output);
            }
            catch (MediaFormatException)
            {
                // Dropped like a camera's bad packet; the depacketizer must keep working after it.
            }
            _ = depacketizer.TrackInfo;
        }
    }

    private static readonly Dictionary<string, string> AacHbr = new(StringComparer.OrdinalIgnoreCase)
    {
        ["streamtype"] = "5", ["mode"] = "AAC-hbr", ["config"] = "1188", ["sizelength"] = "13", ["indexlength"] = "3", ["indexdeltalength"] = "3",
    };

    private static readonly Dictionary<string, string> AacSmall = new(StringComparer.OrdinalIgnoreCase)
    {
        ["streamtype"] = "5", ["mode"] = "AAC-lbr", ["config"] = "1210", ["sizelength"] = "6", ["indexlength"] = "2", ["indexdeltalength"] = "2",
    };

    private static RtpDepacketizer? AacFor(int track) => track switch
    {
        0 => new AacDepacketizer(0, 48000, AacHbr),
        1 => new AacDepacketizer(1, 44100, AacSmall),
        _ => null,
    };

    private static RtpDepacketizer? G711For(int track) => track switch
    {
        0 => new G711Depacketizer(0, MediaCodec.PcmAlaw),
        1 => new G711Depacketizer(1, MediaCodec.PcmMulaw, 16000, 2),
        _ => null,
    };

    // ------------------------------------------------------------------ uplink


    private static void Uplink(ReadOnlySpan<byte> data)
    {
        var bytes = data.ToArray();
        var whole = ParseUplinkStream(new ReadOnlySequence<byte>(bytes), out var messages);
        var split = ParseUplinkStream(Segments.Split(bytes, Segments.SplitPoint(bytes)), out _);
        if (whole != split)
            throw new PropertyViolationException($"uplink parse depends on the segment split: '{whole}' vs '{split}'");
        foreach (var message in messages)
        {
            if (message is UnknownMessage) continue;
            var encoded = UplinkCodec.Encode(message);
            var again = UplinkCodec.ParseOne(encoded, Shared.SmallLimits);
            if (!UplinkCodec.Encode(again).AsSpan().SequenceEqual(encoded))
                throw new PropertyViolationException($"a {message.GetType().Name} encoded and parsed back encodes differently");
        }
    }

    private static string ParseUplinkStream(ReadOnlySequence<byte> sequence, out List<UplinkMessage> messages)
    {
        messages = [];
        var reader = new SequenceReader<byte>(sequence);
        try
        {
            while (UplinkCodec.TryParse(ref reader, Shared.SmallLimits, out var message)) messages.Add(message!);
        }
        catch (UplinkProtocolException)
        {
            return $"rejected after {messages.Count} messages";
        }
        return $"{messages.Count} messages, {reader.Consumed} consumed";
    }

    // ------------------------------------------------------------------ tunnel channel

    private sealed class RecordingTunnelTransport : ITunnelTransport
    {
        public readonly List<UplinkMessage> Sent = [];

        public bool SendControl(UplinkMessage message)
        {
            Sent.Add(message);
            return true;
        }

        public ValueTask SendDataAsync(UplinkMessage message, CancellationToken cancellationToken)
        {
            Sent.Add(message);
            return ValueTask.CompletedTask;
        }
    }

    private const int FuzzMaxStreams = 4;

    // First byte: even = the device's mux (the relay's messages arrive), odd = the relay's (the device's arrive).
    private static void Tunnel(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        var asRelay = (data[0] & 1) != 0;
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(data[1..].ToArray()));
        var transport = new RecordingTunnelTransport();
        using var mux = new TunnelMux(transport, new TunnelOptions { InitialWindow = 1024, MaxWindow = 4096, MaxStreams = FuzzMaxStreams });
        using var cancel = new CancellationTokenSource();
        var opens = new List<Task<TunnelStream>>();
        if (asRelay)
        {
            foreach (var name in new[] { "a", "b", "c" }) opens.Add(mux.OpenAsync(name, cancel.Token));
        }
        // Either end accepts names of even length and refuses the rest: the device as TunnelAgent refuses what is not
        // exposed, the relay as it refuses a device stream to a service it does not offer (capability 0x40).
        mux.Accepting = s =>
        {
            if (s.Name.Length % 2 == 0) s.Accept();
            else s.Refuse(TunnelResetCode.NotExposed, "not exposed");
        };
        try
        {
            while (UplinkCodec.TryParse(ref reader, Shared.SmallLimits, out var message))
            {
                if (message!.Channel != UplinkChannel.Tunnel) continue;
                var before = transport.Sent.Count;
                var fresh = message is TunnelOpen o && mux.Count < FuzzMaxStreams;
                mux.OnMessage(message);
                if (mux.Count > FuzzMaxStreams)
                    throw new PropertyViolationException($"{mux.Count} open streams, limit {FuzzMaxStreams}");
                if (message is TunnelOpen open)
                {
                    // Every open is answered at once: accepted, refused, or over the limit (a reused id of an open stream
                    // is a protocol error instead, which the parse above throws).
                    var answered = transport.Sent.Skip(before).Any(m => m is TunnelAccept a && a.StreamId == open.StreamId || m is TunnelReset r && r.StreamId == open.StreamId);
                    if (!answered) throw new PropertyViolationException($"tunnel open {open.StreamId} ('{open.Name}') got no answer (fresh: {fresh})");
                }
            }
        }
        finally
        {
            cancel.Cancel();
            foreach (var t in opens)
            {
                // An open ends by the device's answer, a reset, or the cancellation above; never by anything else.
                try { t.GetAwaiter().GetResult().Dispose(); }
                catch (TunnelResetException) { }
                catch (OperationCanceledException) { }
            }
        }
        // Whatever the mux sent must be encodable (a reset's text, a window increment in range).
        foreach (var sent in transport.Sent) UplinkCodec.Encode(sent);
    }

    // ------------------------------------------------------------------ HTTP fallback chunks

    // The relay's GET body, dechunked the way UplinkClientConnection reads it (a chunk-size line, the data,
    // CRLF; after the last chunk, trailer lines up to an empty one), the data then split into uplink messages.
    private static void HttpChunks(ReadOnlySpan<byte> data)
    {
        var body = new List<byte>();
        var at = 0;
        var ended = false;
        while (!ended)
        {
            var rest = data[at..];
            bool complete;
            int size, consumed;
            try
            {
                complete = UplinkHttpFraming.TryReadChunkHeader(rest, out size, out consumed);
            }
            catch (UplinkProtocolException)
            {
                CheckPrefixes(rest, UplinkHttpFraming.MaxChunkLineBytes + 2, failedWhole: true);
                throw;
            }
            CheckPrefixes(rest[..(complete ? consumed : rest.Length)], UplinkHttpFraming.MaxChunkLineBytes + 2, failedWhole: false);
            if (!complete) break;
            if (size < 0 || consumed <= 2 || consumed > rest.Length)
                throw new PropertyViolationException($"chunk header: size {size}, consumed {consumed} of {rest.Length}");
            at += consumed;
            if (size == 0)
            {
                while (true)
                {
                    if (!UplinkHttpFraming.TryReadTrailerLine(data[at..], out var last, out consumed)) return;
                    if (consumed < 2 || consumed > data.Length - at) throw new PropertyViolationException($"trailer line consumed {consumed}");
                    at += consumed;
                    if (last) { ended = true; break; }
                }
                break;
            }
            if (data.Length - at < (long)size + 2) break; // the rest of the chunk has not arrived (long: a size of int.MaxValue + 2 would wrap)
            body.AddRange(data.Slice(at, size));
            at += size;
            if (!data.Slice(at, 2).SequenceEqual(UplinkHttpFraming.ChunkEnd)) throw new UplinkProtocolException("a chunk's data is not followed by CRLF");
            at += 2;
        }
        var bytes = body.ToArray();
        var whole = ParseUplinkStream(new ReadOnlySequence<byte>(bytes), out var messages);
        // Chunk boundaries carry no meaning: re-chunked as one chunk per message, the same messages come out.
        if (messages.Count > 0 && !whole.StartsWith("rejected", StringComparison.Ordinal))
        {
            var rechunked = new List<byte>();
            foreach (var m in messages)
            {
                if (m is UnknownMessage) return;
                var encoded = UplinkCodec.Encode(m);
                var header = new byte[UplinkHttpFraming.ChunkHeaderLength(encoded.Length)];
                UplinkHttpFraming.WriteChunkHeader(header, encoded.Length);
                rechunked.AddRange(header);
                rechunked.AddRange(encoded);
                rechunked.AddRange(UplinkHttpFraming.ChunkEnd.ToArray());
            }
            var again = rechunked.ToArray();
            var a = 0;
            var count = 0;
            while (a < again.Length)
            {
                if (!UplinkHttpFraming.TryReadChunkHeader(again.AsSpan(a), out var n, out var c) || n <= 0)
                    throw new PropertyViolationException("a chunk header written by WriteChunkHeader does not read back");
                a += c;
                UplinkCodec.ParseOne(again.AsMemory(a, n), Shared.SmallLimits);
                a += n + 2;
                count++;
            }
            if (count != messages.Count) throw new PropertyViolationException($"{messages.Count} messages re-chunked read back as {count}");
        }
    }

    // "False means need more bytes": every shorter prefix of a line must say so, or fail as the whole did.
    private static void CheckPrefixes(ReadOnlySpan<byte> line, int limit, bool failedWhole)
    {
        var n = Math.Min(line.Length, limit);
        for (var i = 0; i < n; i++)
        {
            try
            {
                if (UplinkHttpFraming.TryReadChunkHeader(line[..i], out _, out _) && !failedWhole)
                    throw new PropertyViolationException($"a {i}-byte prefix of a {line.Length}-byte chunk line already parsed");
            }
            catch (UplinkProtocolException) when (!failedWhole)
            {
                throw new PropertyViolationException($"a {i}-byte prefix of a chunk line that parses was refused");
            }
            catch (UplinkProtocolException)
            {
            }
        }
    }

    // ------------------------------------------------------------------ WebSocket

    private static void WebSocket(ReadOnlySpan<byte> data)
    {
        var at = 0;
        while (WebSocketFraming.TryReadHeader(data[at..], out var header))
        {
            at += header.HeaderLength;
            if (header.PayloadLength > data.Length - at) return; // the rest of the payload has not arrived
            var payload = data.Slice(at, (int)header.PayloadLength).ToArray();
            if (header.Masked) WebSocketFraming.Mask(payload, header.MaskKey);
            at += payload.Length;
        }
    }

    // ------------------------------------------------------------------ parameter sets, Annex B

    private static void ParameterSets(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        var body = data[1..].ToArray();
        switch (data[0] % 3)
        {
            case 0:
                _ = H264Sps.Parse(body);
                CodecString(() => CodecStrings.Avc(body));
                break;
            case 1:
                _ = H265Sps.Parse(body);
                CodecString(() => CodecStrings.Hevc(body));
                break;
            default:
                _ = AudioSpecificConfig.Parse(body);
                CodecString(() => CodecStrings.Aac(body));
                break;
        }
    }

    // CodecStrings documents FormatException for parameter sets too short to name a codec.
    private static void CodecString(Func<string> make)
    {
        try { _ = make(); }
        catch (FormatException) { }
    }

    private static void AnnexB(ReadOnlySpan<byte> data)
    {
        var bytes = data.ToArray();
        var whole = ReadAnnexB(new ReadOnlySequence<byte>(bytes));
        var split = ReadAnnexB(Segments.Split(bytes, Segments.SplitPoint(bytes)));
        if (whole != split)
            throw new PropertyViolationException($"Annex-B read depends on the segment split: '{whole}' vs '{split}'");
    }

    private static string ReadAnnexB(ReadOnlySequence<byte> sequence)
    {
        var reader = new SequenceReader<byte>(sequence);
        var units = new StringBuilder();
        try
        {
            // First as a pipe that is still open, then at end of stream (the last unit has no next start code).
            while (AnnexBReader.TryReadNalUnit(ref reader, isFinal: false, out var nal)) units.Append(nal.Length).Append(',');
            units.Append('|');
            while (AnnexBReader.TryReadNalUnit(ref reader, isFinal: true, out var nal)) units.Append(nal.Length).Append(',');
        }
        catch (MediaFormatException)
        {
            units.Append("rejected");
        }
        return units.ToString();
    }

    // ------------------------------------------------------------------ STUN / ICE-TCP

    private static readonly byte[] IcePassword = "fuzz-ice-password-0123456789"u8.ToArray();

    private static void Stun(ReadOnlySpan<byte> data)
    {
        // The checks the relay's UDP socket makes before parsing: never throw, whatever the bytes.
        _ = StunMessage.IsStun(data);
        _ = StunMessage.VerifyFingerprint(data);
        _ = StunMessage.VerifyMessageIntegrity(data, IcePassword);

        var bytes = data.ToArray();
        var whole = ReadIceTcp(new ReadOnlySequence<byte>(bytes));
        var split = ReadIceTcp(Segments.Split(bytes, Segments.SplitPoint(bytes)));
        if (whole != split)
            throw new PropertyViolationException($"ICE-TCP framing depends on the segment split: '{whole}' vs '{split}'");

        var message = StunMessage.Parse(data);
        // Written back with both trailers it still fits a STUN length field, unless the input was near the limit.
        if (data.Length + 4 + 20 + 8 > StunMessage.HeaderLength + ushort.MaxValue) return;
        var encoded = message.Encode(IcePassword, fingerprint: true);
        // The verifiers answer only for what the one-port demultiplexer calls STUN (first byte 0..3,
        // RFC 7983): a method above 0xFF sets higher type bits, which Parse accepts (RFC 8489 allows
        // 12-bit methods) but the relay never routes to it.
        if (StunMessage.IsStun(encoded))
        {
            if (!StunMessage.VerifyFingerprint(encoded)) throw new PropertyViolationException("a written STUN message fails its own FINGERPRINT");
            if (!StunMessage.VerifyMessageIntegrity(encoded, IcePassword)) throw new PropertyViolationException("a written STUN message fails its own MESSAGE-INTEGRITY");
        }
        var again = StunMessage.Parse(encoded);
        if (again.Class != message.Class || again.Method != message.Method || !again.TransactionId.AsSpan().SequenceEqual(message.TransactionId)
            || again.Username != message.Username || !Equals(again.XorMappedAddress, message.XorMappedAddress)
            || again.Priority != message.Priority || again.IceControlling != message.IceControlling || again.IceControlled != message.IceControlled
            || again.UseCandidate != message.UseCandidate || again.Error != message.Error || again.Software != message.Software
            || !again.HasMessageIntegrity || !again.HasFingerprint
            || again.UnknownAttributes.Count != message.UnknownAttributes.Count
            || again.UnknownAttributes.Zip(message.UnknownAttributes).Any(p => p.First.Type != p.Second.Type || !p.First.Value.AsSpan().SequenceEqual(p.Second.Value)))
            throw new PropertyViolationException("a STUN message written and parsed back differs");
    }

    // RFC 4571 frames as an ICE-TCP connection delivers them; each frame that looks like STUN is parsed.
    private static string ReadIceTcp(ReadOnlySequence<byte> sequence)
    {
        var reader = new SequenceReader<byte>(sequence);
        var outcome = new StringBuilder();
        while (IceTcpFraming.TryReadFrame(ref reader, out var packet))
        {
            var frame = packet.ToArray();
            outcome.Append(frame.Length);
            if (StunMessage.IsStun(frame))
            {
                try { outcome.Append(':').Append(StunMessage.Parse(frame).Class); }
                catch (StunProtocolException) { outcome.Append(":rejected"); }
            }
            outcome.Append(',');
        }
        return outcome.Append(reader.Consumed).ToString();
    }

    // ------------------------------------------------------------------ SRTP

    private static readonly byte[] SrtpKey = [0xE1, 0xF9, 0x7A, 0x0D, 0x3E, 0x01, 0x8B, 0xE0, 0xD6, 0x4F, 0xA3, 0x2C, 0x06, 0xDE, 0x41, 0x39];
    private static readonly byte[] SrtpSalt = [0x0E, 0xC6, 0x75, 0xAD, 0x49, 0x8A, 0xFE, 0xEB, 0xB6, 0x96, 0x0B, 0x3A, 0xAB, 0xE6];

    // A browser's SRTP/SRTCP arrives on the relay's one UDP port: whatever it is, unprotecting it
    // answers true or false and never throws. What one session protects, another with the same keys
    // gives back byte for byte (and a persistent receiver accepts nothing but what was sent).
    private static void Srtp(ReadOnlySpan<byte> data)
    {
        using var receiver = new SrtpSession(SrtpKey, SrtpSalt);
        using var sender = new SrtpSession(SrtpKey, SrtpSalt);
        using var peer = new SrtpSession(SrtpKey, SrtpSalt);
        var buffer = new byte[ushort.MaxValue + 64];
        var checkedRoundTrips = 0;
        foreach (var record in Records(data))
        {
            var packet = record.Span;
            var rtcp = RtcpFeedback.IsRtcp(packet);
            _ = rtcp ? receiver.TryUnprotectRtcp(packet, buffer, out _) : receiver.TryUnprotectRtp(packet, buffer, out _);

            // Round trips: at most 64 per input, so the sessions' source limit (256) is never reached.
            if (checkedRoundTrips++ >= 64) continue;
            if (rtcp ? packet.Length < 8 || packet[0] >> 6 != 2 : !LooksLikeRtp(packet)) continue;
            var protectedLength = rtcp ? sender.ProtectRtcp(packet, buffer) : sender.ProtectRtp(packet, buffer);
            var protectedPacket = buffer.AsSpan(0, protectedLength).ToArray();
            var plain = new byte[protectedLength];
            var accepted = rtcp ? peer.TryUnprotectRtcp(protectedPacket, plain, out var length) : peer.TryUnprotectRtp(protectedPacket, plain, out length);
            if (accepted && !plain.AsSpan(0, length).SequenceEqual(packet))
                throw new PropertyViolationException("an SRTP packet unprotected to something other than what was protected");

            // A fresh pair has no replay history: it must accept and give the packet back.
            using var freshSender = new SrtpSession(SrtpKey, SrtpSalt);
            using var freshReceiver = new SrtpSession(SrtpKey, SrtpSalt);
            var once = new byte[packet.Length + SrtpSession.SrtcpTrailerLength];
            var n = rtcp ? freshSender.ProtectRtcp(packet, once) : freshSender.ProtectRtp(packet, once);
            if (!(rtcp ? freshReceiver.TryUnprotectRtcp(once.AsSpan(0, n), plain, out length) : freshReceiver.TryUnprotectRtp(once.AsSpan(0, n), plain, out length))
                || !plain.AsSpan(0, length).SequenceEqual(packet))
                throw new PropertyViolationException($"a fresh SRTP session refused or changed a packet another protected ({(rtcp ? "RTCP" : "RTP")}, {packet.Length} bytes)");
        }
    }

    // RFC 3550 §5.1, as the SRTP session reads it: version 2, CSRCs and extension within the packet.
    private static bool LooksLikeRtp(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < 12 || packet[0] >> 6 != 2) return false;
        var length = 12 + 4 * (packet[0] & 0x0F);
        if ((packet[0] & 0x10) != 0)
        {
            if (packet.Length < length + 4) return false;
            length += 4 + 4 * ((packet[length + 2] << 8) | packet[length + 3]);
        }
        return length <= packet.Length;
    }

    // ------------------------------------------------------------------ RTCP feedback

    private static void RtcpFeedbackTarget(ReadOnlySpan<byte> data)
    {
        var tried = RtcpFeedback.TryParse(data, out _);
        var feedback = RtcpFeedback.Parse(data);
        if (!tried) throw new PropertyViolationException("RtcpFeedback.TryParse refused what Parse accepts");
        foreach (var nack in feedback.Nacks)
        {
            var again = RtcpFeedback.Parse(nack.ToArray());
            if (again.Nacks.Count != 1 || again.Nacks[0].SenderSsrc != nack.SenderSsrc || again.Nacks[0].MediaSsrc != nack.MediaSsrc
                || !again.Nacks[0].LostSequenceNumbers.ToHashSet().SetEquals(nack.LostSequenceNumbers))
                throw new PropertyViolationException("a NACK written and parsed back lists other sequence numbers");
        }
        foreach (var pli in feedback.PictureLossIndications)
        {
            var again = RtcpFeedback.Parse(pli.ToArray());
            if (again.PictureLossIndications.Count != 1 || again.PictureLossIndications[0] != pli)
                throw new PropertyViolationException("a PLI written and parsed back differs");
        }
        foreach (var fir in feedback.FullIntraRequests)
        {
            var again = RtcpFeedback.Parse(fir.ToArray());
            if (again.FullIntraRequests.Count != 1 || again.FullIntraRequests[0] != fir)
                throw new PropertyViolationException("a FIR written and parsed back differs");
        }
    }

    // ------------------------------------------------------------------ release bundles

    // A device reads the head of a bundle the relay streams to it before anything is installed.
    private static void Release(ReadOnlySpan<byte> data)
    {
        try
        {
            if (ReleaseBundle.TryReadHead(data, out var head))
            {
                if (head!.Length > data.Length) throw new PropertyViolationException($"a bundle head of {head.Length} bytes read from {data.Length}");
                if (ReleaseBundle.Verify(head, Keys.Release)) throw new PropertyViolationException("a fuzzed bundle verified against a key nobody signed with");
                ManifestRoundTrip(head.Manifest);
            }
            else if (data.Length >= 12 + ReleaseBundle.MaxManifestBytes + 2 + ReleaseBundle.MaxSignatureBytes)
            {
                throw new PropertyViolationException("TryReadHead wants more bytes than the largest head");
            }
        }
        catch (ReleaseBundleException)
        {
            // Refused as a bundle; the same bytes as a bare manifest below.
        }
        ManifestRoundTrip(ReleaseManifest.Parse(data));
    }

    private static void ManifestRoundTrip(ReleaseManifest manifest)
    {
        var json = manifest.ToJsonBytes();
        var again = ReleaseManifest.Parse(json);
        if (!again.ToJsonBytes().AsSpan().SequenceEqual(json) || again.Version != manifest.Version || again.Files.Count != manifest.Files.Count)
            throw new PropertyViolationException("a release manifest written and parsed back writes differently");
    }

    // ------------------------------------------------------------------ helpers

    // Records of a 2-byte big-endian length and that many bytes; a short last record is dropped.
    private static List<ReadOnlyMemory<byte>> Records(ReadOnlySpan<byte> data)
    {
        var records = new List<ReadOnlyMemory<byte>>();
        var at = 0;
        while (data.Length - at >= 2)
        {
            var length = (data[at] << 8) | data[at + 1];
            at += 2;
            if (length > data.Length - at) break;
            records.Add(data.Slice(at, length).ToArray());
            at += length;
        }
        return records;
    }
}
