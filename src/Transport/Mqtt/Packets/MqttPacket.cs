namespace Pinhole.Transport.Mqtt.Packets;

/// <summary>MQTT control packet types, the high nibble of the fixed header (MQTT 5.0 section 2.1.2).</summary>
public enum MqttControlPacketType : byte
{
    /// <summary>Client request to connect.</summary>
    Connect = 1,
    /// <summary>Connect acknowledgement.</summary>
    ConnAck = 2,
    /// <summary>Publish message.</summary>
    Publish = 3,
    /// <summary>Publish acknowledgement (QoS 1).</summary>
    PubAck = 4,
    /// <summary>Publish received (QoS 2 part 1).</summary>
    PubRec = 5,
    /// <summary>Publish release (QoS 2 part 2).</summary>
    PubRel = 6,
    /// <summary>Publish complete (QoS 2 part 3).</summary>
    PubComp = 7,
    /// <summary>Subscribe request.</summary>
    Subscribe = 8,
    /// <summary>Subscribe acknowledgement.</summary>
    SubAck = 9,
    /// <summary>Unsubscribe request.</summary>
    Unsubscribe = 10,
    /// <summary>Unsubscribe acknowledgement.</summary>
    UnsubAck = 11,
    /// <summary>Ping request.</summary>
    PingReq = 12,
    /// <summary>Ping response.</summary>
    PingResp = 13,
    /// <summary>Disconnect notification.</summary>
    Disconnect = 14,
    /// <summary>Authentication exchange (MQTT 5.0 only).</summary>
    Auth = 15,
}

/// <summary>A name/value pair carried as a User Property (MQTT 5.0 section 3.1.2.11.8).</summary>
/// <param name="Name">Property name.</param>
/// <param name="Value">Property value.</param>
public readonly record struct MqttUserProperty(string Name, string Value);

/// <summary>Base of every MQTT control packet. Packets are plain data; the formatter encodes and decodes them.</summary>
public abstract class MqttPacket
{
    /// <summary>The control packet type.</summary>
    public abstract MqttControlPacketType Type { get; }

    /// <inheritdoc />
    public override string ToString() => Type.ToString();
}

/// <summary>A packet that carries a Packet Identifier (MQTT 5.0 section 2.2.1).</summary>
public interface IMqttPacketWithIdentifier
{
    /// <summary>The packet identifier, 1..65535.</summary>
    ushort PacketIdentifier { get; }
}
