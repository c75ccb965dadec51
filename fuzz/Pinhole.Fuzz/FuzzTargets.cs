using System.Buffers;
using System.Text;
using Pinhole.Transport.Aac;
using Pinhole.Transport.Fmp4;
using Pinhole.Transport.G711;
using Pinhole.Transport.H264;
using Pinhole.Transport.H265;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;
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
            typeof(RtspProtocolException), Rtsp),
        new FuzzTarget("rtp", "length-prefixed RTP packets (RtpPacket.Parse), write-and-parse-back, then RtpReorderBuffer and RtpReceptionStatistics",
            typeof(RtspProtocolException), Rtp),
        new FuzzTarget("rtcp", "one compound RTCP packet (RtcpPacket.ParseCompound); SR/RR written and parsed back",
            typeof(RtspProtocolException), Rtcp),
        new FuzzTarget("sdp", "an SDP body (SessionDescription.Parse), each media section through RtpDepacketizerFactory (rtpmap, fmtp, sprop-*, config) and control URL resolution, written and parsed back",
            typeof(RtspProtocolException), Sdp),
        new FuzzTarget("h264", "RTSP interleaved RTP into H264Depacketizer (single NAL, STAP-A, FU-A, in-band SPS through H264Sps)",
            typeof(RtspProtocolException), data => Depacketize(data, _ => new H264Depacketizer(0))),
        new FuzzTarget("h265", "RTSP interleaved RTP into H265Depacketizer (single NAL, AP, FU, in-band SPS through H265Sps)",
            typeof(RtspProtocolException), data => Depacketize(data, _ => new H265Depacketizer(0))),
        new FuzzTarget("aac", "RTSP interleaved RTP into AacDepacketizer (RFC 3640 AAC-hbr AU headers, fragmented AUs); channel 2 uses AAC-lbr-like lengths",
            typeof(RtspProtocolException), data => Depacketize(data, AacFor)),
        new FuzzTarget("g711", "RTSP interleaved RTP into G711Depacketizer (PCMA mono on channel 0, PCMU stereo on channel 2)",
            typeof(RtspProtocolException), data => Depacketize(data, G711For)),
        new FuzzTarget("uplink", "the uplink codec as a byte stream (UplinkCodec.TryParse), split in two segments too; every message encoded and parsed back",
            typeof(UplinkProtocolException), Uplink),
        new FuzzTarget("websocket", "WebSocket frame headers from the relay (WebSocketFraming.TryReadHeader) and unmasking",
            typeof(WebSocketFramingException), WebSocket),
        new FuzzTarget("parameter-sets", "first byte picks: H.264 SPS (H264Sps), H.265 SPS (H265Sps), AudioSpecificConfig, each also as an fMP4 codec string (CodecStrings)",
            typeof(RtspProtocolException), ParameterSets),
        new FuzzTarget("annexb", "an Annex-B byte stream as exec: capture pipes produce it (AnnexBReader), split in two segments too",
            typeof(RtspProtocolException), AnnexB),
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
        catch (RtspProtocolException)
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
        catch (RtspProtocolException) { }
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
            catch (RtspProtocolException) { continue; }
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
            catch (RtspProtocolException)
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
        catch (RtspProtocolException)
        {
            units.Append("rejected");
        }
        return units.ToString();
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
