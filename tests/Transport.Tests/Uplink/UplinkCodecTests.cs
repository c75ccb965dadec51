using System.Buffers;
using System.Buffers.Binary;
using Pinhole.Transport.Media;
using Pinhole.Transport.Uplink;

namespace Pinhole.Transport.Tests.Uplink;

public class UplinkCodecTests
{
    private static readonly TrackInfo H264 = new()
    {
        Codec = MediaCodec.H264, ClockRate = 90_000, Width = 1920, Height = 1080,
        ParameterSets = [new byte[] { 0x67, 0x42, 0xc0, 0x1f, 0xda }, new byte[] { 0x68, 0xce, 0x3c, 0x80 }],
    };

    private static readonly TrackInfo Aac = new()
    {
        Codec = MediaCodec.Aac, ClockRate = 48_000, SampleRate = 48_000, Channels = 2,
        AudioSpecificConfig = new byte[] { 0x11, 0x90 },
    };

    private static readonly TrackInfo H265 = new()
    {
        Codec = MediaCodec.H265, ClockRate = 90_000, Width = 3840, Height = 2160,
        ParameterSets = [new byte[] { 0x40, 1 }, new byte[] { 0x42, 1 }, new byte[] { 0x44, 1 }],
    };

    public static TheoryData<string> MessageNames => [.. AllMessages().Keys];

    private static Dictionary<string, UplinkMessage> AllMessages() => new()
    {
        ["hello"] = new Hello(1, 3, UplinkCapabilities.Media | UplinkCapabilities.DropReports, "pinhole-edge/1.0 ünïcode"),
        ["welcome"] = new Welcome(1, UplinkCapabilities.Media, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(100), 8 << 20),
        ["reject"] = new Reject(UplinkReason.UnsupportedVersion, "this relay speaks version 1 only"),
        ["goodbye"] = new Goodbye(UplinkReason.Replaced, "a newer uplink of gw1 replaced this one"),
        ["ping"] = new Ping(0x0102030405060708),
        ["pong"] = new Pong(ulong.MaxValue),
        ["ack"] = new Ack(123_456_789_012, 987_654_321, 99_000, 1L << 40),
        ["drops"] = new DropReport(7, 250, 3_000_000),
        ["announce"] = new StreamAnnounce(3, "front-door_1.cam", [H264, Aac, H265, new TrackInfo { Codec = MediaCodec.PcmMulaw, ClockRate = 8000, SampleRate = 8000, Channels = 1 }]),
        ["frame"] = new MediaFrame(42, 3, 1_700_000_000_000_000, new AccessUnit(1, -5, long.MaxValue, true, new byte[] { 0, 0, 0, 2, 0x65, 0x88 })),
        ["frame-empty"] = new MediaFrame(1, 0, 0, new AccessUnit(0, 0, 0, false, ReadOnlyMemory<byte>.Empty)),
        ["end"] = new StreamEnd(65535),
        ["inbound-announce"] = new InboundAnnounce(2, "lobby.display", [H264, Aac]),
        ["inbound-frame"] = new InboundFrame(2, new AccessUnit(1, 960, 900, false, new byte[] { 0x21, 0x10, 0x05 })),
        ["inbound-frame-key"] = new InboundFrame(65535, new AccessUnit(0, -3, long.MinValue, true, new byte[] { 0, 0, 0, 2, 0x65, 0x88 })),
        ["inbound-end"] = new InboundEnd(2),
        ["config-push"] = new ConfigPush(7, """{"cameras":[{"name":"door","source":"rtsp://cam/1"}],"note":"ünïcode"}"""),
        ["config-push-empty"] = new ConfigPush(ulong.MaxValue, ""),
        ["config-report"] = new ConfigReport(7, ConfigOutcome.Rejected, "cameras[0].source: unsupported scheme \"http\"\nsecond line"),
        ["config-report-applied"] = new ConfigReport(1, ConfigOutcome.Applied, ""),
        ["device-status"] = new DeviceStatus("""{"uptime":12.5,"pipelines":[]}"""),
        ["update-offer"] = new UpdateOffer("2.1.0-rc.1+build", "linux-arm64", 123_456_789, Enumerable.Range(0, 32).Select(i => (byte)i).ToArray(), true),
        ["update-request"] = new UpdateRequest("2.1.0", 1L << 33, 65536),
        ["update-chunk"] = new UpdateChunk("2.1.0", 65536, new byte[] { 1, 2, 3, 0xff }),
        ["update-chunk-empty"] = new UpdateChunk("2.1.0", 7, ReadOnlyMemory<byte>.Empty),
        ["update-report"] = new UpdateReport("2.1.0", UpdateState.RolledBack, 0, "2.1.0 exited with code 3 during its trial"),
    };

    [Theory]
    [MemberData(nameof(MessageNames))]
    public void Every_message_round_trips(string name)
    {
        var original = AllMessages()[name];
        var bytes = UplinkCodec.Encode(original);

        var decoded = UplinkCodec.ParseOne(bytes, UplinkLimits.Default);

        AssertSame(original, decoded);
        Assert.Equal(bytes, UplinkCodec.Encode(decoded));
    }

    [Theory]
    [MemberData(nameof(MessageNames))]
    public void Every_prefix_asks_for_more_and_consumes_nothing(string name)
    {
        var bytes = UplinkCodec.Encode(AllMessages()[name]);
        for (var n = 0; n < bytes.Length; n++)
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes, 0, n));
            Assert.False(UplinkCodec.TryParse(ref reader, UplinkLimits.Default, out var m), $"prefix {n}");
            Assert.Null(m);
            Assert.Equal(0, reader.Consumed);
        }
    }

    [Theory]
    [MemberData(nameof(MessageNames))]
    public void Every_split_across_two_segments_decodes(string name)
    {
        var original = AllMessages()[name];
        var bytes = UplinkCodec.Encode(original);
        for (var split = 1; split < bytes.Length; split++)
        {
            var sequence = Segments(bytes[..split], bytes[split..]);
            var reader = new SequenceReader<byte>(sequence);
            Assert.True(UplinkCodec.TryParse(ref reader, UplinkLimits.Default, out var m), $"split {split}");
            AssertSame(original, m!);
            Assert.True(reader.End);
        }
    }

    [Fact]
    public void Back_to_back_messages_decode_one_at_a_time()
    {
        var all = AllMessages().Values.ToList();
        var stream = all.SelectMany(UplinkCodec.Encode).ToArray();
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(stream));
        var decoded = new List<UplinkMessage>();
        while (UplinkCodec.TryParse(ref reader, UplinkLimits.Default, out var m)) decoded.Add(m!);
        Assert.Equal(all.Count, decoded.Count);
        for (var i = 0; i < all.Count; i++) AssertSame(all[i], decoded[i]);
    }

    [Fact]
    public void Frame_header_plus_payload_equals_the_whole_message_encoding()
    {
        var unit = new AccessUnit(2, 3000, 1500, false, new byte[] { 0, 0, 0, 1, 0x41, 9, 9 });
        var header = new byte[UplinkProtocol.FrameHeaderSize];
        UplinkCodec.WriteFrameHeader(header, 77, 4, 123, unit);
        byte[] joined = [.. header, .. unit.Data.ToArray()];
        Assert.Equal(UplinkCodec.Encode(new MediaFrame(77, 4, 123, unit)), joined);
    }

    [Fact]
    public void Inbound_frame_layout_matches_the_documented_bytes()
    {
        // docs/uplink-protocol.md, "InboundFrame": stream id, track, flags, pts, dts, payload.
        var bytes = UplinkCodec.Encode(new InboundFrame(0x0a0b, new AccessUnit(5, 0x21, 0x31, true, new byte[] { 0xEE })));
        byte[] expected =
        [
            1, 0x12, 0, 0, 0, 21,
            0x0a, 0x0b,
            5,
            1,
            0, 0, 0, 0, 0, 0, 0, 0x21,
            0, 0, 0, 0, 0, 0, 0, 0x31,
            0xEE,
        ];
        Assert.Equal(expected, bytes);
        // Reserved flag bits are a protocol error, as in device frames.
        bytes[9] = 2;
        Assert.Throws<UplinkProtocolException>(() => UplinkCodec.ParseOne(bytes, UplinkLimits.Default));
        // A name that could not be a URL path segment is refused both ways.
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new InboundAnnounce(1, "../etc", [H264])));
    }

    [Fact]
    public void Frame_layout_matches_the_documented_bytes()
    {
        // docs/uplink-protocol.md, "frame": every field at its documented offset.
        var bytes = UplinkCodec.Encode(new MediaFrame(0x0102030405060708, 0x0a0b, 0x1112131415161718, new AccessUnit(5, 0x21, 0x31, true, new byte[] { 0xEE })));
        byte[] expected =
        [
            1, 2, 0, 0, 0, 37,
            1, 2, 3, 4, 5, 6, 7, 8,
            0x0a, 0x0b,
            5,
            1,
            0, 0, 0, 0, 0, 0, 0, 0x21,
            0, 0, 0, 0, 0, 0, 0, 0x31,
            0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
            0xEE,
        ];
        Assert.Equal(expected, bytes);
    }

    [Fact]
    public void Oversized_length_is_refused_from_the_header_alone()
    {
        byte[] header = [1, 2, 0x7f, 0xff, 0xff, 0xff]; // claims a 2 GiB body, none of it present
        var e = Assert.Throws<UplinkProtocolException>(() =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(header));
            UplinkCodec.TryParse(ref reader, UplinkLimits.Default, out _);
        });
        Assert.Equal(UplinkReason.MessageTooLarge, e.Reason);
    }

    [Fact]
    public void Limit_applies_to_frames_just_over_it()
    {
        var limits = new UplinkLimits { MaxMessageBytes = 100 };
        var ok = UplinkCodec.Encode(new MediaFrame(1, 0, 0, new AccessUnit(0, 0, 0, true, new byte[100 - 36])));
        var big = UplinkCodec.Encode(new MediaFrame(1, 0, 0, new AccessUnit(0, 0, 0, true, new byte[100 - 35])));
        Assert.IsType<MediaFrame>(UplinkCodec.ParseOne(ok, limits));
        Assert.Equal(UplinkReason.MessageTooLarge, Assert.Throws<UplinkProtocolException>(() => UplinkCodec.ParseOne(big, limits)).Reason);
    }

    public static TheoryData<string, byte[]> Malformed => new()
    {
        { "ping body too short", [0, 5, 0, 0, 0, 4, 1, 2, 3, 4] },
        { "ping body too long", [0, 5, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9] },
        { "frame shorter than its fields", [1, 2, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0] },
        { "reserved frame flag", Patch(UplinkCodec.Encode(new MediaFrame(1, 0, 0, new AccessUnit(0, 0, 0, true, new byte[] { 1 }))), 6 + 11, 0x03) },
        { "hello agent not UTF-8", [0, 1, 0, 0, 0, 11, 0, 1, 0, 1, 0, 0, 0, 1, 2, 0xC3, 0x28] },
        { "announce with bad camera name", Announce("../etc", 1) },
        { "announce without tracks", Announce("cam", 0) },
        { "announce with too many tracks", Announce("cam", 9) },
        { "announce unknown codec", Patch(UplinkCodec.Encode(new StreamAnnounce(1, "cam", [H264])), 6 + 2 + 4 + 1, 99) },
        { "announce zero clock rate", Patch(UplinkCodec.Encode(new StreamAnnounce(1, "cam", [H264])), 6 + 2 + 4 + 1 + 1, 0) },
        { "announce parameter set overruns body", Patch(UplinkCodec.Encode(new StreamAnnounce(1, "cam", [H264])), 6 + 2 + 4 + 1 + 19, 0xff) },
        { "reject text over 1024 bytes", [0, 3, 0, 0, 0, 3, 1, 0x04, 0x01] },
        { "config push shorter than its revision", [2, 1, 0, 0, 0, 4, 0, 0, 0, 1] },
        { "config push not UTF-8", [2, 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 1, 0xC3, 0x28] },
        { "config report unknown outcome", [2, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 9] },
        { "config push over its limit", ConfigPushOf(UplinkProtocol.MaxConfigBytes + 1) },
        { "device status over its limit", [2, 3, .. BigEndian(UplinkProtocol.MaxReportBytes + 1), .. new byte[UplinkProtocol.MaxReportBytes + 1]] },
        { "welcome zero heartbeat", [0, 2, 0, 0, 0, 18, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 1, 0] },
    };

    private static byte[] BigEndian(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, value);
        return bytes;
    }

    private static byte[] ConfigPushOf(int documentBytes)
    {
        var body = new byte[8 + documentBytes];
        body.AsSpan(8).Fill((byte)' ');
        return [2, 1, .. BigEndian(body.Length), .. body];
    }

    [Fact]
    public void Data_channel_layout_matches_the_documented_bytes()
    {
        Assert.Equal([2, 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 5, (byte)'{', (byte)'}'], UplinkCodec.Encode(new ConfigPush(5, "{}")));
        Assert.Equal([2, 2, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 5, 3, (byte)'n', (byte)'o'], UplinkCodec.Encode(new ConfigReport(5, ConfigOutcome.Reverted, "no")));
        Assert.Equal([2, 3, 0, 0, 0, 2, (byte)'{', (byte)'}'], UplinkCodec.Encode(new DeviceStatus("{}")));
    }

    [Fact]
    public void Encoder_refuses_a_configuration_over_the_limit()
    {
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new ConfigPush(1, new string('x', UplinkProtocol.MaxConfigBytes + 1))));
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new ConfigReport(1, (ConfigOutcome)9, "")));
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Malformed_input_throws_a_protocol_error_with_a_reason(string why, byte[] bytes)
    {
        var e = Assert.Throws<UplinkProtocolException>(() => UplinkCodec.ParseOne(bytes, UplinkLimits.Default));
        Assert.Equal(UplinkReason.ProtocolError, e.Reason);
        Assert.False(string.IsNullOrWhiteSpace(e.Message), why);
    }

    [Fact]
    public void Unknown_channel_and_type_are_skipped_by_length()
    {
        byte[] bytes = [(byte)UplinkChannel.Tunnel, 9, 0, 0, 0, 3, 1, 2, 3, 0, 5, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7];
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        Assert.True(UplinkCodec.TryParse(ref reader, UplinkLimits.Default, out var first));
        Assert.Equal(new UnknownMessage(3, 9, 3), first);
        Assert.True(UplinkCodec.TryParse(ref reader, UplinkLimits.Default, out var second));
        Assert.Equal(new Ping(7), second);
    }

    [Fact]
    public void Random_bytes_never_throw_anything_but_protocol_errors()
    {
        var random = new Random(1234);
        var valid = AllMessages().Values.Select(UplinkCodec.Encode).ToArray();
        for (var i = 0; i < 20_000; i++)
        {
            // Mutate a valid message so the fuzzing reaches past the header checks.
            var bytes = (byte[])valid[i % valid.Length].Clone();
            for (var k = random.Next(1, 4); k > 0; k--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            try
            {
                var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
                UplinkCodec.TryParse(ref reader, UplinkLimits.Default, out _);
            }
            catch (UplinkProtocolException)
            {
            }
        }
    }

    [Fact]
    public void Encoder_refuses_fields_that_do_not_fit()
    {
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new StreamAnnounce(1, "bad name", [H264])));
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new StreamAnnounce(1, "cam", [])));
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new StreamAnnounce(1, "cam", [Aac with { Channels = 300 }])));
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new MediaFrame(1, 1, 1, new AccessUnit(256, 0, 0, true, Array.Empty<byte>()))));
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new Reject(UplinkReason.Unauthorized, new string('x', 2000))));
    }

    private static byte[] Announce(string camera, int tracks)
    {
        // Built by hand so the encoder's own checks do not stop us.
        var body = new List<byte> { 0, 1, (byte)camera.Length };
        body.AddRange(camera.Select(c => (byte)c));
        body.Add((byte)tracks);
        for (var i = 0; i < tracks; i++)
            body.AddRange(new byte[] { 1, 0, 1, 0x5f, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 });
        var header = new byte[6];
        header[0] = 1; header[1] = 1;
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(2), body.Count);
        return [.. header, .. body];
    }

    private static byte[] Patch(byte[] bytes, int offset, byte value)
    {
        bytes[offset] = value;
        if (offset + 3 < bytes.Length && value == 0) { bytes[offset + 1] = 0; bytes[offset + 2] = 0; bytes[offset + 3] = 0; }
        return bytes;
    }

    private static void AssertSame(UplinkMessage expected, UplinkMessage actual)
    {
        Assert.Equal(expected.GetType(), actual.GetType());
        switch (expected)
        {
            case StreamAnnounce a:
                var b = (StreamAnnounce)actual;
                Assert.Equal(a.StreamId, b.StreamId);
                Assert.Equal(a.Camera, b.Camera);
                Assert.Equal(a.Tracks, b.Tracks); // TrackInfo equality compares every field and the config bytes
                break;
            case InboundAnnounce ia:
                var ib = (InboundAnnounce)actual;
                Assert.Equal((ia.StreamId, ia.Name), (ib.StreamId, ib.Name));
                Assert.Equal(ia.Tracks, ib.Tracks);
                break;
            case InboundFrame fa:
                var fb = (InboundFrame)actual;
                Assert.Equal(fa.StreamId, fb.StreamId);
                Assert.Equal((fa.Unit.Track, fa.Unit.Pts, fa.Unit.Dts, fa.Unit.IsKeyframe), (fb.Unit.Track, fb.Unit.Pts, fb.Unit.Dts, fb.Unit.IsKeyframe));
                Assert.Equal(fa.Unit.Data.ToArray(), fb.Unit.Data.ToArray());
                break;
            case MediaFrame f:
                var g = (MediaFrame)actual;
                Assert.Equal((f.Sequence, f.StreamId, f.SendTimestamp), (g.Sequence, g.StreamId, g.SendTimestamp));
                Assert.Equal((f.Unit.Track, f.Unit.Pts, f.Unit.Dts, f.Unit.IsKeyframe), (g.Unit.Track, g.Unit.Pts, g.Unit.Dts, g.Unit.IsKeyframe));
                Assert.Equal(f.Unit.Data.ToArray(), g.Unit.Data.ToArray());
                break;
            case UpdateOffer o:
                var p = (UpdateOffer)actual;
                Assert.Equal((o.Version, o.Architecture, o.Size, o.Force), (p.Version, p.Architecture, p.Size, p.Force));
                Assert.Equal(o.Sha256.ToArray(), p.Sha256.ToArray());
                break;
            case UpdateChunk c:
                var d = (UpdateChunk)actual;
                Assert.Equal((c.Version, c.Offset), (d.Version, d.Offset));
                Assert.Equal(c.Data.ToArray(), d.Data.ToArray());
                break;
            default:
                Assert.Equal(expected, actual);
                break;
        }
    }

    [Fact]
    public void Update_messages_out_of_range_are_protocol_errors()
    {
        // A report with an unknown state, an offer with reserved flags, a chunk over the limit.
        var report = UplinkCodec.Encode(new UpdateReport("1", UpdateState.Running, 0, ""));
        report[6 + 2] = 99;
        Assert.Throws<UplinkProtocolException>(() => UplinkCodec.ParseOne(report, UplinkLimits.Default));
        var offer = UplinkCodec.Encode(new UpdateOffer("1", "any", 1, new byte[32], false));
        offer[^1] = 2;
        Assert.Throws<UplinkProtocolException>(() => UplinkCodec.ParseOne(offer, UplinkLimits.Default));
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new UpdateChunk("1", 0, new byte[UplinkProtocol.MaxUpdateChunkBytes + 1])));
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new UpdateOffer("1", "any", 1, new byte[31], false)));
    }

    private static ReadOnlySequence<byte> Segments(byte[] first, byte[] second)
    {
        var a = new Segment(first, 0);
        var b = a.Append(second);
        return new ReadOnlySequence<byte>(a, 0, b, second.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
