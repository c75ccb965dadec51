using Pinhole.Transport.Mqtt;
using Pinhole.Transport.Mqtt.Packets;
using static Pinhole.Transport.Tests.Mqtt.MqttTestPackets;

namespace Pinhole.Transport.Tests.Mqtt;

/// <summary>Packets exactly as a real Mosquitto sent them (see Captures/mosquitto-2.0.11-v5.txt for how they were taken).</summary>
public class MqttCapturedBytesTests
{
    private static readonly Dictionary<string, byte[]> Captured = File.ReadAllLines(Path.Combine(Pinhole.Testing.RepoPaths.Root, "tests", "Transport.Tests", "Mqtt", "Captures", "mosquitto-2.0.11-v5.txt"))
        .Where(l => l.Length > 0 && !l.StartsWith('#'))
        .Select(l => l.Split(' '))
        .ToDictionary(p => p[0], p => Convert.FromHexString(p[1]));

    [Fact]
    public void Connack_carries_receive_maximum_topic_alias_maximum_and_the_assigned_client_id()
    {
        var connack = Assert.IsType<MqttConnAckPacket>(Decode(MqttProtocolVersion.V500, Captured["connack"]));
        Assert.Equal(MqttReasonCode.Success, connack.ReasonCode);
        Assert.False(connack.SessionPresent);
        Assert.Equal((ushort)20, connack.ReceiveMaximum);
        Assert.Equal((ushort)10, connack.TopicAliasMaximum);
        Assert.StartsWith("auto-", connack.AssignedClientIdentifier, StringComparison.Ordinal);
        // Property order is free (Mosquitto writes 0x22, 0x12, 0x21); our encoding of it must mean the same.
        Assert.Equal(Describe(connack), Describe(Decode(MqttProtocolVersion.V500, Encode(MqttProtocolVersion.V500, connack))));
    }

    [Fact]
    public void Delivered_publish_carries_the_subscription_identifier_and_the_publishers_properties()
    {
        var publish = Assert.IsType<MqttPublishPacket>(Decode(MqttProtocolVersion.V500, Captured["publish"]));
        Assert.Equal("cap/t", publish.Topic);
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, publish.QualityOfServiceLevel);
        Assert.Equal([7u], publish.SubscriptionIdentifiers);
        Assert.Equal("text/plain", publish.ContentType);
        Assert.Equal([new MqttUserProperty("unit", "C")], publish.UserProperties);
        Assert.Equal("23.4"u8.ToArray(), publish.Payload.ToArray());
        Assert.Equal(Captured["publish"], Encode(MqttProtocolVersion.V500, publish));
    }

    [Fact]
    public void Acknowledgements_use_the_short_forms()
    {
        Assert.Equal(MqttReasonCode.GrantedQoS1, Assert.Single(Assert.IsType<MqttSubAckPacket>(Decode(MqttProtocolVersion.V500, Captured["suback"])).ReasonCodes));
        var puback = Assert.IsType<MqttPubAckPacket>(Decode(MqttProtocolVersion.V500, Captured["puback"]));
        Assert.Equal((2, MqttReasonCode.Success), (puback.PacketIdentifier, puback.ReasonCode));
        var noSubscribers = Assert.IsType<MqttPubAckPacket>(Decode(MqttProtocolVersion.V500, Captured["puback-nosub"]));
        Assert.Equal((3, MqttReasonCode.NoMatchingSubscribers), (noSubscribers.PacketIdentifier, noSubscribers.ReasonCode));
        Assert.Equal(Captured["puback-nosub"], Encode(MqttProtocolVersion.V500, noSubscribers));
    }
}
