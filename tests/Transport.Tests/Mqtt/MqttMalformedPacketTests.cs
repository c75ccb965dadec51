using System.Buffers;
using Pinhole.Transport.Mqtt;
using Pinhole.Transport.Mqtt.Formatter;
using static Pinhole.Transport.Tests.Mqtt.MqttTestPackets;

namespace Pinhole.Transport.Tests.Mqtt;

/// <summary>Bytes a broker (or an attacker in its place) might send that break the rules: each must be one clear protocol error.</summary>
public class MqttMalformedPacketTests
{
    [Theory]
    // remaining length
    [InlineData(MqttProtocolVersion.V500, "30 FF FF FF FF 01", "more than 4 bytes")]
    [InlineData(MqttProtocolVersion.V500, "30 80 00", "not minimally encoded")]
    [InlineData(MqttProtocolVersion.V311, "40 01 00", "ends in the middle")]
    [InlineData(MqttProtocolVersion.V311, "D0 01 00", "unexpected bytes")]
    [InlineData(MqttProtocolVersion.V311, "20 03 00 00 00", "unexpected bytes")]
    [InlineData(MqttProtocolVersion.V500, "30 04 00 05 61 62", "ends in the middle")]
    // reserved types and flags
    [InlineData(MqttProtocolVersion.V311, "00 00", "reserved")]
    [InlineData(MqttProtocolVersion.V311, "F0 00", "reserved")]
    [InlineData(MqttProtocolVersion.V311, "41 02 00 01", "reserved fixed header flags")]
    [InlineData(MqttProtocolVersion.V500, "60 02 00 01", "reserved fixed header flags")]
    [InlineData(MqttProtocolVersion.V500, "80 06 00 01 00 00 01 61", "reserved fixed header flags")]
    [InlineData(MqttProtocolVersion.V311, "C1 00", "reserved fixed header flags")]
    [InlineData(MqttProtocolVersion.V311, "20 02 02 00", "acknowledge flags")]
    // QoS
    [InlineData(MqttProtocolVersion.V311, "36 05 00 01 61 00 01", "QoS 3")]
    [InlineData(MqttProtocolVersion.V311, "38 03 00 01 61", "DUP set on a QoS 0")]
    [InlineData(MqttProtocolVersion.V311, "82 06 00 01 00 01 61 03", "QoS 3")]
    [InlineData(MqttProtocolVersion.V311, "82 06 00 01 00 01 61 04", "reserved subscription option")]
    [InlineData(MqttProtocolVersion.V500, "82 07 00 01 00 00 01 61 40", "reserved subscription option")]
    [InlineData(MqttProtocolVersion.V500, "82 07 00 01 00 00 01 61 30", "retain handling 3")]
    [InlineData(MqttProtocolVersion.V311, "10 0C 00 04 4D 51 54 54 04 18 00 3C 00 00", "will QoS")]
    [InlineData(MqttProtocolVersion.V311, "10 0C 00 04 4D 51 54 54 04 01 00 3C 00 00", "reserved connect flag")]
    // strings and topics
    [InlineData(MqttProtocolVersion.V311, "30 05 00 03 61 FF 62", "UTF-8")]
    [InlineData(MqttProtocolVersion.V311, "30 05 00 03 61 00 62", "U+0000")]
    [InlineData(MqttProtocolVersion.V311, "30 05 00 03 61 C0 AF", "UTF-8")]
    [InlineData(MqttProtocolVersion.V311, "30 06 00 04 61 ED A0 80", "UTF-8")]
    [InlineData(MqttProtocolVersion.V311, "30 05 00 03 61 2F 23", "not a valid topic name")]
    [InlineData(MqttProtocolVersion.V311, "30 02 00 00", "not a valid topic name")]
    [InlineData(MqttProtocolVersion.V311, "82 07 00 01 00 02 23 61 00", "not a valid topic filter")]
    [InlineData(MqttProtocolVersion.V311, "82 02 00 01", "no topic filter")]
    // identifiers and reason codes
    [InlineData(MqttProtocolVersion.V311, "40 02 00 00", "packet identifier 0")]
    [InlineData(MqttProtocolVersion.V311, "32 05 00 01 61 00 00", "packet identifier 0")]
    [InlineData(MqttProtocolVersion.V500, "40 03 00 01 05", "unknown reason code")]
    [InlineData(MqttProtocolVersion.V311, "20 02 00 06", "unknown return code")]
    [InlineData(MqttProtocolVersion.V311, "90 03 00 01 03", "reserved")]
    [InlineData(MqttProtocolVersion.V500, "20 03 01 87 00", "session present")]
    // properties
    [InlineData(MqttProtocolVersion.V500, "30 07 00 01 61 03 13 00 01", "not allowed here")]
    [InlineData(MqttProtocolVersion.V500, "30 06 00 01 61 02 7F 00", "not allowed here")]
    [InlineData(MqttProtocolVersion.V500, "30 09 00 01 61 05 23 00 01 23 00", "ends in the middle")]
    [InlineData(MqttProtocolVersion.V500, "30 0A 00 01 61 06 23 00 01 23 00 02", "appears twice")]
    [InlineData(MqttProtocolVersion.V500, "30 06 00 01 61 02 01 02", "must be 0 or 1")]
    [InlineData(MqttProtocolVersion.V500, "20 06 00 00 03 21 00 00", "must not be 0")]
    [InlineData(MqttProtocolVersion.V500, "30 06 00 01 61 05 23 00", "ends in the middle")]
    [InlineData(MqttProtocolVersion.V500, "30 04 00 01 61 05", "ends in the middle")]
    public void Malformed_input_is_one_protocol_exception_with_a_reason(MqttProtocolVersion version, string hex, string reason)
    {
        var e = Assert.Throws<MqttProtocolException>(() => Decode(version, Hex(hex)));
        Assert.Contains(reason, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Oversized_packet_is_refused_from_the_fixed_header_before_its_body_arrives()
    {
        // The header announces 200 MB; only the 5 header bytes exist. The refusal must come now, not after buffering.
        var formatter = new MqttPacketFormatter(MqttProtocolVersion.V500, maximumPacketSize: 1024);
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Hex("30 80 80 80 60")));
        MqttProtocolException? e = null;
        try
        {
            formatter.TryParse(ref reader, out _);
        }
        catch (MqttProtocolException ex)
        {
            e = ex;
        }

        Assert.NotNull(e);
        Assert.Equal(MqttReasonCode.PacketTooLarge, e.ReasonCode);
        Assert.Contains("maximum packet size", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Packet_exactly_at_the_maximum_size_is_accepted_and_one_byte_more_is_not()
    {
        var ok = Encode(MqttProtocolVersion.V311, new Pinhole.Transport.Mqtt.Packets.MqttPublishPacket { Topic = "t", Payload = new byte[100] });
        Assert.NotNull(Decode(MqttProtocolVersion.V311, ok, maximumPacketSize: (uint)ok.Length));
        Assert.Throws<MqttProtocolException>(() => Decode(MqttProtocolVersion.V311, ok, maximumPacketSize: (uint)ok.Length - 1));
    }

    [Fact]
    public void Random_corruption_of_valid_packets_never_escapes_as_anything_but_a_protocol_exception()
    {
        // A cheap fuzzer with a fixed seed: flip, drop and insert bytes in every sample packet.
        var random = new Random(20261121);
        var parsedOk = 0;
        var rejected = 0;
        foreach (var version in new[] { MqttProtocolVersion.V311, MqttProtocolVersion.V500 })
        {
            var formatter = new MqttPacketFormatter(version, maximumPacketSize: 4096);
            foreach (var (_, packet) in All(version))
            {
                var original = Encode(version, packet);
                for (var i = 0; i < 400; i++)
                {
                    var bytes = original.ToList();
                    var edits = random.Next(1, 4);
                    for (var e = 0; e < edits; e++)
                    {
                        var at = random.Next(bytes.Count);
                        switch (random.Next(3))
                        {
                            case 0: bytes[at] = (byte)random.Next(256); break;
                            case 1 when bytes.Count > 1: bytes.RemoveAt(at); break;
                            default: bytes.Insert(at, (byte)random.Next(256)); break;
                        }
                    }

                    try
                    {
                        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes.ToArray()));
                        while (formatter.TryParse(ref reader, out _))
                            parsedOk++;
                    }
                    catch (MqttProtocolException)
                    {
                        rejected++;
                    }
                }
            }
        }

        Assert.True(rejected > 1000, $"only {rejected} rejections");
        Assert.True(parsedOk > 100, $"only {parsedOk} successes");
    }
}
