using System.Buffers;
using Pinhole.Transport.Mqtt;
using Pinhole.Transport.Mqtt.Formatter;
using Pinhole.Transport.Mqtt.Packets;
using static Pinhole.Transport.Tests.Mqtt.MqttTestPackets;

namespace Pinhole.Transport.Tests.Mqtt;

public class MqttPacketFormatterTests
{
    public static TheoryData<MqttProtocolVersion, string> Packets => Cases();

    [Theory]
    [MemberData(nameof(Packets))]
    public void Every_packet_round_trips_field_by_field(MqttProtocolVersion version, string name)
    {
        var packet = Get(version, name);
        var bytes = Encode(version, packet);
        var decoded = Decode(version, bytes);

        Assert.Equal(Describe(packet), Describe(decoded));
        Assert.Equal(bytes, Encode(version, decoded));
    }

    [Theory]
    [MemberData(nameof(Packets))]
    public void Every_strict_prefix_needs_more_bytes_and_consumes_nothing(MqttProtocolVersion version, string name)
    {
        var bytes = Encode(version, Get(version, name));
        var formatter = new MqttPacketFormatter(version);
        for (var length = 0; length < bytes.Length; length++)
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes, 0, length));
            Assert.False(formatter.TryParse(ref reader, out var partial), $"prefix of {length}/{bytes.Length} bytes parsed");
            Assert.Null(partial);
            Assert.Equal(0, reader.Consumed);
        }

        var whole = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        Assert.True(formatter.TryParse(ref whole, out _));
        Assert.Equal(bytes.Length, whole.Consumed);
    }

    [Theory]
    [MemberData(nameof(Packets))]
    public void Every_split_across_two_segments_and_one_byte_per_segment_parses_the_same(MqttProtocolVersion version, string name)
    {
        var packet = Get(version, name);
        var bytes = Encode(version, packet);
        var expected = Describe(packet);
        var formatter = new MqttPacketFormatter(version);
        for (var split = 1; split < bytes.Length; split++)
        {
            var sequence = TestSegment.Create(bytes[..split], bytes[split..]);
            Assert.Equal(expected, Describe(formatter.Parse(sequence)));
        }

        var bytewise = TestSegment.Create(bytes.Select(b => new[] { b }).ToArray());
        Assert.Equal(expected, Describe(formatter.Parse(bytewise)));
    }

    [Fact]
    public void Back_to_back_packets_in_one_buffer_parse_one_at_a_time()
    {
        var version = MqttProtocolVersion.V500;
        var packets = All(version).Select(p => p.Packet).ToList();
        var bytes = packets.SelectMany(p => Encode(version, p)).ToArray();
        var reader = new SequenceReader<byte>(TestSegment.Create(bytes[..7], bytes[7..100], bytes[100..]));
        var formatter = new MqttPacketFormatter(version);
        var parsed = new List<MqttPacket>();
        while (formatter.TryParse(ref reader, out var p))
            parsed.Add(p);

        Assert.True(reader.End);
        Assert.Equal(packets.Select(Describe), parsed.Select(Describe));
    }

    // Byte layouts written out by hand from the specification, so the encoder is checked against the
    // standard and not only against our own decoder.
    [Theory]
    [InlineData(MqttProtocolVersion.V311, "connect-minimal", "10 0E 0004 4D515454 04 02 003C 0002 6331")]
    [InlineData(MqttProtocolVersion.V500, "connect-minimal", "10 0F 0004 4D515454 05 02 003C 00 0002 6331")]
    [InlineData(MqttProtocolVersion.V311, "connack-accepted", "20 02 01 00")]
    [InlineData(MqttProtocolVersion.V311, "connack-refused", "20 02 00 05")]
    [InlineData(MqttProtocolVersion.V500, "connack-refused", "20 03 00 87 00")]
    [InlineData(MqttProtocolVersion.V311, "puback", "40 02 002A")]
    [InlineData(MqttProtocolVersion.V500, "puback", "40 02 002A")]
    [InlineData(MqttProtocolVersion.V500, "puback-reason", "40 03 002B 10")]
    [InlineData(MqttProtocolVersion.V311, "pubrel", "62 02 002A")]
    [InlineData(MqttProtocolVersion.V311, "pingreq", "C0 00")]
    [InlineData(MqttProtocolVersion.V311, "pingresp", "D0 00")]
    [InlineData(MqttProtocolVersion.V311, "disconnect", "E0 00")]
    [InlineData(MqttProtocolVersion.V500, "disconnect-will", "E0 01 04")]
    [InlineData(MqttProtocolVersion.V500, "auth", "F0 00")]
    [InlineData(MqttProtocolVersion.V311, "unsubscribe", "A2 0C 0009 0003 612F62 0003 632F23")]
    [InlineData(MqttProtocolVersion.V311, "publish-qos0-empty", "31 03 0001 74")]
    public void Encoding_matches_the_specification_layout(MqttProtocolVersion version, string name, string hex)
    {
        Assert.Equal(Convert.ToHexString(Hex(hex)), Convert.ToHexString(Encode(version, Get(version, name))));
    }

    [Fact]
    public void Publish_qos1_layout_and_flags()
    {
        var p = new MqttPublishPacket { Topic = "a/b", Payload = "hi"u8.ToArray(), QualityOfServiceLevel = MqttQualityOfServiceLevel.AtLeastOnce, PacketIdentifier = 10, Retain = true };
        Assert.Equal("3309000361 2F62000A6869".Replace(" ", "", StringComparison.Ordinal), Convert.ToHexString(Encode(MqttProtocolVersion.V311, p)));
        Assert.Equal("330A000361 2F62000A006869".Replace(" ", "", StringComparison.Ordinal), Convert.ToHexString(Encode(MqttProtocolVersion.V500, p)));
    }

    [Fact]
    public void Subscribe_options_byte_carries_no_local_retain_as_published_and_retain_handling_in_v5()
    {
        var p = new MqttSubscribePacket
        {
            PacketIdentifier = 1,
            TopicFilters = [new MqttTopicFilter { Topic = "a", QualityOfServiceLevel = MqttQualityOfServiceLevel.AtLeastOnce, NoLocal = true, RetainAsPublished = true, RetainHandling = MqttRetainHandling.DoNotSendOnSubscribe }],
        };
        // 0x2D = retain handling 2 (bits 4-5), RAP (bit 3), NL (bit 2), QoS 1.
        Assert.Equal("820700010000016 12D".Replace(" ", "", StringComparison.Ordinal), Convert.ToHexString(Encode(MqttProtocolVersion.V500, p)));
        // 3.1.1 has only the QoS bits.
        Assert.Equal("8206000100016101", Convert.ToHexString(Encode(MqttProtocolVersion.V311, p)));
    }

    [Theory]
    [InlineData(0u, "00")]
    [InlineData(127u, "7F")]
    [InlineData(128u, "8001")]
    [InlineData(16_383u, "FF7F")]
    [InlineData(16_384u, "808001")]
    [InlineData(2_097_151u, "FFFF7F")]
    [InlineData(2_097_152u, "80808001")]
    [InlineData(268_435_455u, "FFFFFF7F")]
    public void Variable_byte_integer_boundaries_from_the_specification(uint value, string hex)
    {
        var buffer = new byte[4];
        var written = MqttVariableByteInteger.Write(value, buffer);
        Assert.Equal(hex, Convert.ToHexString(buffer, 0, written));
        Assert.Equal(written, MqttVariableByteInteger.GetSize(value));
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Convert.FromHexString(hex)));
        Assert.True(MqttVariableByteInteger.TryRead(ref reader, out var read));
        Assert.Equal(value, read);
    }

    [Fact]
    public void Variable_byte_integer_above_the_maximum_is_refused_when_writing()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => MqttVariableByteInteger.Write(268_435_456, new byte[5]));
    }

    [Fact]
    public void Connack_v311_return_codes_map_to_v5_reason_codes()
    {
        var expected = new[]
        {
            MqttReasonCode.Success, MqttReasonCode.UnsupportedProtocolVersion, MqttReasonCode.ClientIdentifierNotValid,
            MqttReasonCode.ServerUnavailable, MqttReasonCode.BadUserNameOrPassword, MqttReasonCode.NotAuthorized,
        };
        for (byte code = 0; code < expected.Length; code++)
        {
            var p = Assert.IsType<MqttConnAckPacket>(Decode(MqttProtocolVersion.V311, [0x20, 0x02, 0x00, code]));
            Assert.Equal(expected[code], p.ReasonCode);
        }
    }

    [Theory]
    [InlineData("a/b", true)]
    [InlineData("/", true)]
    [InlineData("a b/ü", true)]
    [InlineData("", false)]
    [InlineData("a/+", false)]
    [InlineData("a/#", false)]
    [InlineData("a\0b", false)]
    public void Topic_names(string topic, bool valid) => Assert.Equal(valid, MqttTopic.IsValidTopicName(topic));

    [Theory]
    [InlineData("#", true)]
    [InlineData("+", true)]
    [InlineData("a/+/b/#", true)]
    [InlineData("+/+", true)]
    [InlineData("/#", true)]
    [InlineData("$SYS/#", true)]
    [InlineData("", false)]
    [InlineData("a/#/b", false)]
    [InlineData("a#", false)]
    [InlineData("a/b#", false)]
    [InlineData("a+/b", false)]
    [InlineData("a/+b", false)]
    [InlineData("##", false)]
    public void Topic_filters(string filter, bool valid) => Assert.Equal(valid, MqttTopic.IsValidTopicFilter(filter));

    [Fact]
    public void Encoder_refuses_what_a_sender_must_never_send()
    {
        Assert.Throws<ArgumentException>(() => Encode(MqttProtocolVersion.V500, new MqttPublishPacket { Topic = "a/+" }));
        Assert.Throws<ArgumentException>(() => Encode(MqttProtocolVersion.V500, new MqttPublishPacket { Topic = "a", QualityOfServiceLevel = MqttQualityOfServiceLevel.AtLeastOnce }));
        Assert.Throws<ArgumentException>(() => Encode(MqttProtocolVersion.V500, new MqttPublishPacket { Topic = "a", Dup = true }));
        Assert.Throws<ArgumentException>(() => Encode(MqttProtocolVersion.V500, new MqttPublishPacket { Topic = "a", ContentType = "bad\ud800" }));
        Assert.Throws<ArgumentException>(() => Encode(MqttProtocolVersion.V500, new MqttPublishPacket { Topic = "a", ContentType = "nul\0" }));
        Assert.Throws<ArgumentException>(() => Encode(MqttProtocolVersion.V500, new MqttPublishPacket { Topic = new string('x', 65536) }));
        Assert.Throws<ArgumentException>(() => Encode(MqttProtocolVersion.V311, new MqttConnectPacket { ProtocolVersion = MqttProtocolVersion.V311, Password = [1] }));
        Assert.Throws<ArgumentException>(() => Encode(MqttProtocolVersion.V500, new MqttSubscribePacket { PacketIdentifier = 1, TopicFilters = [new MqttTopicFilter { Topic = "a/#/b" }] }));
        Assert.Throws<ArgumentException>(() => Encode(MqttProtocolVersion.V500, new MqttSubscribePacket { PacketIdentifier = 1 }));
        Assert.Throws<ArgumentException>(() => Encode(MqttProtocolVersion.V311, new MqttAuthPacket()));
    }
}
