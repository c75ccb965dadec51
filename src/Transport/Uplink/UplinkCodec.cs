using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Uplink;

/// <summary>
/// Encodes and decodes uplink protocol v1 messages (docs/uplink-protocol.md). Pure: bytes in,
/// messages out, no I/O. Every message is <c>channel u8 | type u8 | body length u32 | body</c>,
/// integers big-endian.
/// </summary>
internal static class UplinkCodec
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Reads the body length from a message header without consuming anything, so a transport can
    /// refuse an oversized message before buffering it.
    /// </summary>
    /// <returns>False when fewer than <see cref="UplinkProtocol.HeaderSize"/> bytes are available.</returns>
    /// <exception cref="UplinkProtocolException">The announced body is larger than <paramref name="limits"/> allow.</exception>
    public static bool TryPeekBodyLength(ReadOnlySpan<byte> header, UplinkLimits limits, out int bodyLength)
    {
        ArgumentNullException.ThrowIfNull(limits);
        bodyLength = 0;
        if (header.Length < UplinkProtocol.HeaderSize) return false;
        var length = BinaryPrimitives.ReadUInt32BigEndian(header[2..]);
        if (length > (uint)limits.MaxMessageBytes)
            throw new UplinkProtocolException(UplinkReason.MessageTooLarge, $"message of {length} bytes exceeds the limit of {limits.MaxMessageBytes}");
        bodyLength = (int)length;
        return true;
    }

    /// <summary>
    /// Decodes one message. Returns false and consumes nothing when the message is not complete yet;
    /// on success the reader is advanced past it. Unknown channels and types decode as
    /// <see cref="UnknownMessage"/> (the caller skips them).
    /// </summary>
    /// <exception cref="UplinkProtocolException">The input is malformed or exceeds <paramref name="limits"/>.</exception>
    public static bool TryParse(ref SequenceReader<byte> reader, UplinkLimits limits, out UplinkMessage? message)
    {
        ArgumentNullException.ThrowIfNull(limits);
        message = null;
        Span<byte> header = stackalloc byte[UplinkProtocol.HeaderSize];
        if (!reader.TryCopyTo(header)) return false;
        TryPeekBodyLength(header, limits, out var bodyLength);
        if (reader.Remaining < UplinkProtocol.HeaderSize + (long)bodyLength) return false;

        var body = reader.Sequence.Slice(reader.Position).Slice(UplinkProtocol.HeaderSize, bodyLength);
        message = ParseBody(header[0], header[1], body, limits);
        reader.Advance(UplinkProtocol.HeaderSize + bodyLength);
        return true;
    }

    /// <summary>Decodes exactly one whole message (one WebSocket message) from a contiguous buffer.</summary>
    /// <exception cref="UplinkProtocolException">The buffer is not exactly one valid message.</exception>
    public static UplinkMessage ParseOne(ReadOnlyMemory<byte> buffer, UplinkLimits limits)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(buffer));
        if (!TryParse(ref reader, limits, out var message))
            throw new UplinkProtocolException($"truncated message: {buffer.Length} bytes");
        if (!reader.End)
            throw new UplinkProtocolException($"{reader.Remaining} bytes after the message; a WebSocket message carries exactly one");
        return message!;
    }

    private static UplinkMessage ParseBody(byte channel, byte type, ReadOnlySequence<byte> body, UplinkLimits limits)
    {
        var r = new SequenceReader<byte>(body);
        UplinkMessage message = (channel, type) switch
        {
            (0, Hello.WireType) => new Hello(U16(ref r), U16(ref r), (UplinkCapabilities)U32(ref r), Str8(ref r)),
            (0, Welcome.WireType) => ParseWelcome(ref r),
            (0, Reject.WireType) => new Reject(Reason(ref r), Str16(ref r)),
            (0, Goodbye.WireType) => new Goodbye(Reason(ref r), Str16(ref r)),
            (0, Ping.WireType) => new Ping(U64(ref r)),
            (0, Pong.WireType) => new Pong(U64(ref r)),
            (0, Ack.WireType) => new Ack(U64(ref r), U64(ref r), U32(ref r), U64(ref r)),
            (0, DropReport.WireType) => new DropReport(U16(ref r), U64(ref r), U64(ref r)),
            (1, StreamAnnounce.WireType) => ParseAnnounce(ref r, limits),
            (1, MediaFrame.WireType) => ParseFrame(ref r, body),
            (1, StreamEnd.WireType) => new StreamEnd(U16(ref r)),
            (1, InboundAnnounce.WireType) => ToInbound(ParseAnnounce(ref r, limits)),
            (1, InboundFrame.WireType) => ParseInboundFrame(ref r, body),
            (1, InboundEnd.WireType) => new InboundEnd(U16(ref r)),
            (2, ConfigPush.WireType) => new ConfigPush(U64(ref r), Rest(ref r, UplinkProtocol.MaxConfigBytes, "configuration document")),
            (2, ConfigReport.WireType) => new ConfigReport(U64(ref r), Outcome(ref r), Rest(ref r, UplinkProtocol.MaxReportBytes, "report detail")),
            (2, DeviceStatus.WireType) => new DeviceStatus(Rest(ref r, UplinkProtocol.MaxReportBytes, "status document")),
            (2, UpdateOffer.WireType) => ParseOffer(ref r),
            (2, UpdateRequest.WireType) => new UpdateRequest(Str8(ref r), U64(ref r), U32(ref r)),
            (2, UpdateChunk.WireType) => ParseChunk(ref r, body),
            (2, UpdateReport.WireType) => new UpdateReport(Str8(ref r), UpdateStateOf(ref r), U8(ref r), Rest(ref r, UplinkProtocol.MaxReportBytes, "update detail")),
            (3, TunnelOpen.WireType) => ParseTunnelOpen(ref r),
            (3, TunnelAccept.WireType) => new TunnelAccept(U32(ref r), U32(ref r)),
            (3, TunnelData.WireType) => ParseTunnelData(ref r, body),
            (3, TunnelWindow.WireType) => ParseTunnelWindow(ref r),
            (3, TunnelClose.WireType) => new TunnelClose(U32(ref r)),
            (3, TunnelReset.WireType) => new TunnelReset(U32(ref r), (TunnelResetCode)U8(ref r), Str16(ref r)),
            _ => new UnknownMessage(channel, type, (int)body.Length),
        };
        if (message is not UnknownMessage && !r.End)
            throw new UplinkProtocolException($"{r.Remaining} unexpected bytes after a {message.GetType().Name} body");
        return message;
    }

    private static Welcome ParseWelcome(ref SequenceReader<byte> r)
    {
        var version = U16(ref r);
        var caps = (UplinkCapabilities)U32(ref r);
        var heartbeat = U32(ref r);
        var ack = U32(ref r);
        var max = U32(ref r);
        if (heartbeat == 0 || ack == 0) throw new UplinkProtocolException("welcome with a zero heartbeat or ack interval");
        if (max > int.MaxValue) throw new UplinkProtocolException("welcome with a message limit above 2 GiB");
        return new Welcome(version, caps, TimeSpan.FromMilliseconds(heartbeat), TimeSpan.FromMilliseconds(ack), (int)max);
    }

    private static StreamAnnounce ParseAnnounce(ref SequenceReader<byte> r, UplinkLimits limits)
    {
        var streamId = U16(ref r);
        var camera = Str8(ref r);
        if (!UplinkProtocol.IsValidCameraName(camera))
            throw new UplinkProtocolException($"invalid camera name '{Printable(camera)}'");
        var count = U8(ref r);
        if (count == 0) throw new UplinkProtocolException("stream announce without tracks");
        if (count > limits.MaxTracks) throw new UplinkProtocolException($"stream announce with {count} tracks, limit {limits.MaxTracks}");
        var tracks = new TrackInfo[count];
        for (var i = 0; i < count; i++)
        {
            var codec = U8(ref r) switch
            {
                1 => MediaCodec.H264,
                2 => MediaCodec.H265,
                3 => MediaCodec.Aac,
                4 => MediaCodec.PcmAlaw,
                5 => MediaCodec.PcmMulaw,
                var c => throw new UplinkProtocolException($"track {i}: unknown codec {c}"),
            };
            var clockRate = NonNegative(U32(ref r), "clock rate", i);
            if (clockRate == 0) throw new UplinkProtocolException($"track {i}: clock rate 0");
            var width = NonNegative(U32(ref r), "width", i);
            var height = NonNegative(U32(ref r), "height", i);
            var sampleRate = NonNegative(U32(ref r), "sample rate", i);
            var channels = U8(ref r);
            var psCount = U8(ref r);
            if (psCount > limits.MaxParameterSets)
                throw new UplinkProtocolException($"track {i}: {psCount} parameter sets, limit {limits.MaxParameterSets}");
            var sets = new ReadOnlyMemory<byte>[psCount];
            for (var p = 0; p < psCount; p++) sets[p] = Bytes16(ref r);
            var asc = Bytes16(ref r);
            tracks[i] = new TrackInfo
            {
                Codec = codec, ClockRate = clockRate, Width = width, Height = height,
                SampleRate = sampleRate, Channels = channels, ParameterSets = sets, AudioSpecificConfig = asc,
            };
        }
        return new StreamAnnounce(streamId, camera, tracks);
    }

    private static MediaFrame ParseFrame(ref SequenceReader<byte> r, ReadOnlySequence<byte> body)
    {
        var sequence = U64(ref r);
        var streamId = U16(ref r);
        var track = U8(ref r);
        var flags = U8(ref r);
        if ((flags & ~1) != 0) throw new UplinkProtocolException($"frame with reserved flags 0x{flags:x2}");
        var pts = (long)U64(ref r);
        var dts = (long)U64(ref r);
        var sent = U64(ref r);
        // Copy once: the receive buffer is reused, and sinks may keep the payload (GOP cache).
        var payload = body.Slice(r.Position).ToArray();
        r.AdvanceToEnd();
        return new MediaFrame(sequence, streamId, sent, new AccessUnit(track, pts, dts, (flags & 1) != 0, payload));
    }

    private static InboundAnnounce ToInbound(StreamAnnounce a) => new(a.StreamId, a.Camera, a.Tracks);

    private static InboundFrame ParseInboundFrame(ref SequenceReader<byte> r, ReadOnlySequence<byte> body)
    {
        var streamId = U16(ref r);
        var track = U8(ref r);
        var flags = U8(ref r);
        if ((flags & ~1) != 0) throw new UplinkProtocolException($"inbound frame with reserved flags 0x{flags:x2}");
        var pts = (long)U64(ref r);
        var dts = (long)U64(ref r);
        var payload = body.Slice(r.Position).ToArray();
        r.AdvanceToEnd();
        return new InboundFrame(streamId, new AccessUnit(track, pts, dts, (flags & 1) != 0, payload));
    }

    private static int NonNegative(uint value, string what, int track) =>
        value <= int.MaxValue ? (int)value : throw new UplinkProtocolException($"track {track}: {what} {value} out of range");

    private static UpdateOffer ParseOffer(ref SequenceReader<byte> r)
    {
        var version = Str8(ref r);
        var architecture = Str8(ref r);
        var size = U64(ref r);
        var hash = new byte[32];
        if (!r.TryCopyTo(hash)) throw Truncated();
        r.Advance(32);
        var flags = U8(ref r);
        if ((flags & ~1) != 0) throw new UplinkProtocolException($"update offer with reserved flags 0x{flags:x2}");
        return new UpdateOffer(version, architecture, size, hash, (flags & 1) != 0);
    }

    private static UpdateChunk ParseChunk(ref SequenceReader<byte> r, ReadOnlySequence<byte> body)
    {
        var version = Str8(ref r);
        var offset = U64(ref r);
        if (r.Remaining > UplinkProtocol.MaxUpdateChunkBytes)
            throw new UplinkProtocolException($"update chunk of {r.Remaining} bytes, limit {UplinkProtocol.MaxUpdateChunkBytes}");
        var data = body.Slice(r.Position).ToArray();
        r.AdvanceToEnd();
        return new UpdateChunk(version, offset, data);
    }

    private static TunnelOpen ParseTunnelOpen(ref SequenceReader<byte> r)
    {
        var id = U32(ref r);
        var window = U32(ref r);
        var name = Str8(ref r);
        if (!UplinkProtocol.IsValidCameraName(name)) throw new UplinkProtocolException($"invalid tunnel name '{Printable(name)}'");
        return new TunnelOpen(id, window, name);
    }

    private static TunnelWindow ParseTunnelWindow(ref SequenceReader<byte> r)
    {
        var id = U32(ref r);
        var increment = U32(ref r);
        if (increment is 0 or > int.MaxValue) throw new UplinkProtocolException($"tunnel window increment {increment} out of range");
        return new TunnelWindow(id, increment);
    }

    private static TunnelData ParseTunnelData(ref SequenceReader<byte> r, ReadOnlySequence<byte> body)
    {
        var id = U32(ref r);
        if (r.Remaining > UplinkProtocol.MaxTunnelDataBytes)
            throw new UplinkProtocolException($"tunnel data of {r.Remaining} bytes, limit {UplinkProtocol.MaxTunnelDataBytes}");
        if (r.Remaining == 0) throw new UplinkProtocolException("empty tunnel data");
        var data = body.Slice(r.Position).ToArray();
        r.AdvanceToEnd();
        return new TunnelData(id, data);
    }

    private static UpdateState UpdateStateOf(ref SequenceReader<byte> r)
    {
        var b = U8(ref r);
        return Enum.IsDefined((UpdateState)b) ? (UpdateState)b : throw new UplinkProtocolException($"unknown update state {b}");
    }

    private static ConfigOutcome Outcome(ref SequenceReader<byte> r) => U8(ref r) switch
    {
        1 => ConfigOutcome.Applied,
        2 => ConfigOutcome.Rejected,
        3 => ConfigOutcome.Reverted,
        var o => throw new UplinkProtocolException($"unknown configuration outcome {o}"),
    };

    // A variable-length UTF-8 text that runs to the end of the body (a configuration document, a report).
    private static string Rest(ref SequenceReader<byte> r, int limit, string what)
    {
        if (r.Remaining > limit) throw new UplinkProtocolException($"{what} of {r.Remaining} bytes, limit {limit}");
        var bytes = r.UnreadSequence.ToArray();
        r.AdvanceToEnd();
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new UplinkProtocolException($"{what} is not valid UTF-8", e);
        }
    }

    private static UplinkReason Reason(ref SequenceReader<byte> r)
    {
        var b = U8(ref r);
        // Unknown reasons from newer peers are kept as their number; callers print them.
        return (UplinkReason)b;
    }

    private static byte U8(ref SequenceReader<byte> r) =>
        r.TryRead(out var v) ? v : throw Truncated();

    private static ushort U16(ref SequenceReader<byte> r) =>
        r.TryReadBigEndian(out short v) ? (ushort)v : throw Truncated();

    private static uint U32(ref SequenceReader<byte> r) =>
        r.TryReadBigEndian(out int v) ? (uint)v : throw Truncated();

    private static ulong U64(ref SequenceReader<byte> r) =>
        r.TryReadBigEndian(out long v) ? (ulong)v : throw Truncated();

    private static ReadOnlyMemory<byte> Bytes16(ref SequenceReader<byte> r)
    {
        var length = U16(ref r);
        if (r.Remaining < length) throw Truncated();
        var bytes = r.UnreadSequence.Slice(0, length).ToArray();
        r.Advance(length);
        return bytes;
    }

    private static string Str8(ref SequenceReader<byte> r) => Text(ref r, U8(ref r));

    private static string Str16(ref SequenceReader<byte> r)
    {
        var length = U16(ref r);
        if (length > UplinkProtocol.MaxTextBytes) throw new UplinkProtocolException($"text of {length} bytes, limit {UplinkProtocol.MaxTextBytes}");
        return Text(ref r, length);
    }

    private static string Text(ref SequenceReader<byte> r, int length)
    {
        if (r.Remaining < length) throw Truncated();
        Span<byte> bytes = stackalloc byte[length];
        r.TryCopyTo(bytes);
        r.Advance(length);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new UplinkProtocolException("text is not valid UTF-8", e);
        }
    }

    private static UplinkProtocolException Truncated() => new("message body shorter than its fields");

    private static string Printable(string s) => string.Concat(s.Select(c => char.IsControl(c) ? '?' : c));

    // ---------------------------------------------------------------- encoding

    /// <summary>Encodes one message (header and body) into <paramref name="writer"/>.</summary>
    /// <returns>The number of bytes written.</returns>
    /// <exception cref="ArgumentException">A field does not fit the wire format (too long a name, a negative size…).</exception>
    public static int Write(IBufferWriter<byte> writer, UplinkMessage message)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(message);
        if (message is UnknownMessage) throw new ArgumentException("unknown messages cannot be encoded", nameof(message));
        var bodyLength = BodyLength(message);
        var total = UplinkProtocol.HeaderSize + bodyLength;
        var span = writer.GetSpan(total)[..total];
        span[0] = (byte)message.Channel;
        span[1] = message.Type;
        BinaryPrimitives.WriteUInt32BigEndian(span[2..], (uint)bodyLength);
        var w = new SpanWriter(span[UplinkProtocol.HeaderSize..]);
        switch (message)
        {
            case Hello m: w.U16(m.MinVersion); w.U16(m.MaxVersion); w.U32((uint)m.Capabilities); w.Str8(m.Agent); break;
            case Welcome m:
                w.U16(m.Version); w.U32((uint)m.Capabilities);
                w.U32(Millis(m.HeartbeatInterval)); w.U32(Millis(m.AckInterval)); w.U32((uint)m.MaxMessageBytes);
                break;
            case Reject m: w.U8((byte)m.Reason); w.Str16(m.Text); break;
            case Goodbye m: w.U8((byte)m.Reason); w.Str16(m.Text); break;
            case Ping m: w.U64(m.Timestamp); break;
            case Pong m: w.U64(m.Timestamp); break;
            case Ack m: w.U64(m.Sequence); w.U64(m.EchoTimestamp); w.U32(m.AckDelayMicros); w.U64(m.BytesReceived); break;
            case DropReport m: w.U16(m.StreamId); w.U64(m.DroppedFrames); w.U64(m.DroppedBytes); break;
            case StreamAnnounce m: WriteAnnounce(ref w, m); break;
            case MediaFrame m:
                WriteFrameFields(ref w, m.Sequence, m.StreamId, m.SendTimestamp, m.Unit);
                w.Bytes(m.Unit.Data.Span);
                break;
            case StreamEnd m: w.U16(m.StreamId); break;
            case InboundAnnounce m: WriteAnnounce(ref w, new StreamAnnounce(m.StreamId, m.Name, m.Tracks)); break;
            case InboundFrame m:
                if ((uint)m.Unit.Track > byte.MaxValue) throw new ArgumentException($"track index {m.Unit.Track} does not fit a byte", nameof(message));
                w.U16(m.StreamId); w.U8((byte)m.Unit.Track); w.U8(m.Unit.IsKeyframe ? (byte)1 : (byte)0);
                w.U64((ulong)m.Unit.Pts); w.U64((ulong)m.Unit.Dts); w.Bytes(m.Unit.Data.Span);
                break;
            case InboundEnd m: w.U16(m.StreamId); break;
            case ConfigPush m: w.U64(m.Revision); w.Utf8(m.Document); break;
            case ConfigReport m: w.U64(m.Revision); w.U8((byte)m.Outcome); w.Utf8(m.Detail); break;
            case DeviceStatus m: w.Utf8(m.Document); break;
            case UpdateOffer m: w.Str8(m.Version); w.Str8(m.Architecture); w.U64(m.Size); w.Bytes(m.Sha256.Span); w.U8((byte)(m.Force ? 1 : 0)); break;
            case UpdateRequest m: w.Str8(m.Version); w.U64(m.Offset); w.U32(m.Length); break;
            case UpdateChunk m: w.Str8(m.Version); w.U64(m.Offset); w.Bytes(m.Data.Span); break;
            case UpdateReport m: w.Str8(m.Version); w.U8((byte)m.State); w.U8(m.Percent); w.Utf8(m.Detail); break;
            case TunnelOpen m: w.U32(m.StreamId); w.U32(m.Window); w.Str8(m.Name); break;
            case TunnelAccept m: w.U32(m.StreamId); w.U32(m.Window); break;
            case TunnelData m: w.U32(m.StreamId); w.Bytes(m.Data.Span); break;
            case TunnelWindow m: w.U32(m.StreamId); w.U32(m.Increment); break;
            case TunnelClose m: w.U32(m.StreamId); break;
            case TunnelReset m: w.U32(m.StreamId); w.U8((byte)m.Code); w.Str16(m.Text); break;
            default: throw new ArgumentException($"unsupported message {message.GetType().Name}", nameof(message));
        }
        writer.Advance(total);
        return total;
    }

    /// <summary>Encodes one message into a new array.</summary>
    public static byte[] Encode(UplinkMessage message)
    {
        var buffer = new ArrayBufferWriter<byte>();
        Write(buffer, message);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Writes the first <see cref="UplinkProtocol.FrameHeaderSize"/> bytes of a <see cref="MediaFrame"/>
    /// message; the payload (<paramref name="unit"/>'s data) follows it unchanged. Lets a sender
    /// transmit the payload from the producer's buffer without copying it.
    /// </summary>
    public static void WriteFrameHeader(Span<byte> destination, ulong sequence, ushort streamId, ulong sendTimestamp, in AccessUnit unit)
    {
        var bodyLength = UplinkProtocol.FrameHeaderSize - UplinkProtocol.HeaderSize + unit.Data.Length;
        destination[0] = (byte)UplinkChannel.Media;
        destination[1] = MediaFrame.WireType;
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..], (uint)bodyLength);
        var w = new SpanWriter(destination[UplinkProtocol.HeaderSize..UplinkProtocol.FrameHeaderSize]);
        WriteFrameFields(ref w, sequence, streamId, sendTimestamp, unit);
    }

    private static void WriteFrameFields(ref SpanWriter w, ulong sequence, ushort streamId, ulong sendTimestamp, in AccessUnit unit)
    {
        if ((uint)unit.Track > byte.MaxValue) throw new ArgumentException($"track index {unit.Track} does not fit a byte", nameof(unit));
        w.U64(sequence);
        w.U16(streamId);
        w.U8((byte)unit.Track);
        w.U8(unit.IsKeyframe ? (byte)1 : (byte)0);
        w.U64((ulong)unit.Pts);
        w.U64((ulong)unit.Dts);
        w.U64(sendTimestamp);
    }

    private static void WriteAnnounce(ref SpanWriter w, StreamAnnounce m)
    {
        w.U16(m.StreamId);
        w.Str8(m.Camera);
        w.U8((byte)m.Tracks.Count);
        foreach (var t in m.Tracks)
        {
            w.U8(t.Codec switch
            {
                MediaCodec.H264 => 1,
                MediaCodec.H265 => 2,
                MediaCodec.Aac => 3,
                MediaCodec.PcmAlaw => 4,
                MediaCodec.PcmMulaw => 5,
                _ => throw new ArgumentException($"codec {t.Codec} has no wire code", nameof(m)),
            });
            w.U32((uint)t.ClockRate);
            w.U32((uint)t.Width);
            w.U32((uint)t.Height);
            w.U32((uint)t.SampleRate);
            w.U8((byte)t.Channels);
            w.U8((byte)t.ParameterSets.Count);
            foreach (var ps in t.ParameterSets) { w.U16((ushort)ps.Length); w.Bytes(ps.Span); }
            w.U16((ushort)t.AudioSpecificConfig.Length);
            w.Bytes(t.AudioSpecificConfig.Span);
        }
    }

    private static uint Millis(TimeSpan t) =>
        t > TimeSpan.Zero && t.TotalMilliseconds <= uint.MaxValue ? (uint)Math.Ceiling(t.TotalMilliseconds)
        : throw new ArgumentOutOfRangeException(nameof(t), t, "interval must be positive");

    // Validates every field that has a narrower wire type than its .NET type, then sums the sizes.
    private static int BodyLength(UplinkMessage message) => message switch
    {
        Hello m => 2 + 2 + 4 + Str8Length(m.Agent, "agent"),
        Welcome m => m.MaxMessageBytes >= 0 ? 2 + 4 + 4 + 4 + 4 : throw new ArgumentException("negative message limit", nameof(message)),
        Reject m => 1 + Str16Length(m.Text),
        Goodbye m => 1 + Str16Length(m.Text),
        Ping or Pong => 8,
        Ack => 8 + 8 + 4 + 8,
        DropReport => 2 + 8 + 8,
        StreamAnnounce m => AnnounceLength(m),
        MediaFrame m => UplinkProtocol.FrameHeaderSize - UplinkProtocol.HeaderSize + m.Unit.Data.Length,
        StreamEnd => 2,
        InboundAnnounce m => AnnounceLength(new StreamAnnounce(m.StreamId, m.Name, m.Tracks)),
        InboundFrame m => InboundFrame.FieldsSize + m.Unit.Data.Length,
        InboundEnd => 2,
        ConfigPush m => 8 + RestLength(m.Document, UplinkProtocol.MaxConfigBytes, "configuration document"),
        ConfigReport m => Enum.IsDefined(m.Outcome) ? 8 + 1 + RestLength(m.Detail, UplinkProtocol.MaxReportBytes, "report detail")
            : throw new ArgumentException($"unknown outcome {m.Outcome}", nameof(message)),
        DeviceStatus m => RestLength(m.Document, UplinkProtocol.MaxReportBytes, "status document"),
        UpdateOffer m => m.Sha256.Length == 32 ? Str8Length(m.Version, "version") + Str8Length(m.Architecture, "architecture") + 8 + 32 + 1
            : throw new ArgumentException("an update offer's SHA-256 is 32 bytes", nameof(message)),
        UpdateRequest m => Str8Length(m.Version, "version") + 8 + 4,
        UpdateChunk m => m.Data.Length <= UplinkProtocol.MaxUpdateChunkBytes ? Str8Length(m.Version, "version") + 8 + m.Data.Length
            : throw new ArgumentException($"update chunk longer than {UplinkProtocol.MaxUpdateChunkBytes} bytes", nameof(message)),
        UpdateReport m => Enum.IsDefined(m.State) ? Str8Length(m.Version, "version") + 1 + 1 + RestLength(m.Detail, UplinkProtocol.MaxReportBytes, "update detail")
            : throw new ArgumentException($"unknown update state {m.State}", nameof(message)),
        TunnelOpen m => UplinkProtocol.IsValidCameraName(m.Name) ? 4 + 4 + Str8Length(m.Name, "tunnel name")
            : throw new ArgumentException($"invalid tunnel name '{m.Name}'", nameof(message)),
        TunnelAccept => 4 + 4,
        TunnelData m => m.Data.Length is > 0 and <= UplinkProtocol.MaxTunnelDataBytes ? 4 + m.Data.Length
            : throw new ArgumentException($"tunnel data must be 1 to {UplinkProtocol.MaxTunnelDataBytes} bytes", nameof(message)),
        TunnelWindow m => m.Increment is > 0 and <= int.MaxValue ? 4 + 4 : throw new ArgumentException("tunnel window increment out of range", nameof(message)),
        TunnelClose => 4,
        TunnelReset m => 4 + 1 + Str16Length(m.Text),
        _ => throw new ArgumentException($"unsupported message {message.GetType().Name}", nameof(message)),
    };

    private static int AnnounceLength(StreamAnnounce m)
    {
        if (!UplinkProtocol.IsValidCameraName(m.Camera)) throw new ArgumentException($"invalid camera name '{m.Camera}'", nameof(m));
        if (m.Tracks.Count is 0 or > byte.MaxValue) throw new ArgumentException($"a stream needs 1 to 255 tracks, not {m.Tracks.Count}", nameof(m));
        var length = 2 + Str8Length(m.Camera, "camera") + 1;
        foreach (var t in m.Tracks)
        {
            if (t.ClockRate <= 0 || t.Width < 0 || t.Height < 0 || t.SampleRate < 0)
                throw new ArgumentException("track sizes and rates must not be negative, clock rate positive", nameof(m));
            if ((uint)t.Channels > byte.MaxValue) throw new ArgumentException($"{t.Channels} audio channels do not fit a byte", nameof(m));
            if (t.ParameterSets.Count > byte.MaxValue) throw new ArgumentException("more than 255 parameter sets", nameof(m));
            if (t.AudioSpecificConfig.Length > ushort.MaxValue) throw new ArgumentException("AudioSpecificConfig longer than 65535 bytes", nameof(m));
            length += 1 + 4 + 4 + 4 + 4 + 1 + 1 + 2 + t.AudioSpecificConfig.Length;
            foreach (var ps in t.ParameterSets)
            {
                if (ps.Length > ushort.MaxValue) throw new ArgumentException("parameter set longer than 65535 bytes", nameof(m));
                length += 2 + ps.Length;
            }
        }
        return length;
    }

    private static int RestLength(string s, int limit, string what)
    {
        var n = Encoding.UTF8.GetByteCount(s);
        return n <= limit ? n : throw new ArgumentException($"{what} longer than {limit} UTF-8 bytes", nameof(s));
    }

    private static int Str8Length(string s, string what)
    {
        var n = Encoding.UTF8.GetByteCount(s);
        return n <= byte.MaxValue ? 1 + n : throw new ArgumentException($"{what} longer than 255 UTF-8 bytes", nameof(s));
    }

    private static int Str16Length(string s)
    {
        var n = Encoding.UTF8.GetByteCount(s);
        return n <= UplinkProtocol.MaxTextBytes ? 2 + n : throw new ArgumentException($"text longer than {UplinkProtocol.MaxTextBytes} UTF-8 bytes", nameof(s));
    }

    private ref struct SpanWriter(Span<byte> span)
    {
        private readonly Span<byte> _span = span;
        private int _pos;

        public void U8(byte v) => _span[_pos++] = v;
        public void U16(ushort v) { BinaryPrimitives.WriteUInt16BigEndian(_span[_pos..], v); _pos += 2; }
        public void U32(uint v) { BinaryPrimitives.WriteUInt32BigEndian(_span[_pos..], v); _pos += 4; }
        public void U64(ulong v) { BinaryPrimitives.WriteUInt64BigEndian(_span[_pos..], v); _pos += 8; }
        public void Bytes(ReadOnlySpan<byte> v) { v.CopyTo(_span[_pos..]); _pos += v.Length; }

        public void Str8(string s)
        {
            var n = Encoding.UTF8.GetBytes(s, _span[(_pos + 1)..]);
            _span[_pos] = (byte)n;
            _pos += 1 + n;
        }

        public void Utf8(string s) => _pos += Encoding.UTF8.GetBytes(s, _span[_pos..]);

        public void Str16(string s)
        {
            var n = Encoding.UTF8.GetBytes(s, _span[(_pos + 2)..]);
            BinaryPrimitives.WriteUInt16BigEndian(_span[_pos..], (ushort)n);
            _pos += 2 + n;
        }
    }
}
