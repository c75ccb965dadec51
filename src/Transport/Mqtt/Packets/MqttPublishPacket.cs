namespace Pinhole.Transport.Mqtt.Packets;

/// <summary>PUBLISH (MQTT 3.1.1 section 3.3, MQTT 5.0 section 3.3).</summary>
public sealed class MqttPublishPacket : MqttPacket, IMqttPacketWithIdentifier
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.Publish;

    /// <summary>Topic name; may be empty in 5.0 when <see cref="TopicAlias"/> names a known alias.</summary>
    public string Topic { get; set; } = "";

    /// <summary>Application payload.</summary>
    public ReadOnlyMemory<byte> Payload { get; set; }

    /// <summary>Delivery QoS.</summary>
    public MqttQualityOfServiceLevel QualityOfServiceLevel { get; set; }

    /// <summary>Retain flag.</summary>
    public bool Retain { get; set; }

    /// <summary>DUP flag: this is a re-delivery of an earlier attempt (QoS 1/2 only).</summary>
    public bool Dup { get; set; }

    /// <summary>Packet identifier (QoS 1/2 only; 0 for QoS 0).</summary>
    public ushort PacketIdentifier { get; set; }

    /// <summary>5.0: Payload Format Indicator (1 = UTF-8 text).</summary>
    public byte? PayloadFormatIndicator { get; set; }

    /// <summary>5.0: Message Expiry Interval in seconds.</summary>
    public uint? MessageExpiryInterval { get; set; }

    /// <summary>5.0: Topic Alias.</summary>
    public ushort? TopicAlias { get; set; }

    /// <summary>5.0: Response Topic.</summary>
    public string? ResponseTopic { get; set; }

    /// <summary>5.0: Correlation Data.</summary>
    public byte[]? CorrelationData { get; set; }

    /// <summary>5.0: Content Type.</summary>
    public string? ContentType { get; set; }

    /// <summary>5.0: Subscription Identifiers of the subscriptions that matched (broker to client).</summary>
    public List<uint> SubscriptionIdentifiers { get; set; } = [];

    /// <summary>5.0: User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];

    /// <inheritdoc />
    public override string ToString() => $"PUBLISH(topic={Topic}, qos={(int)QualityOfServiceLevel}, id={PacketIdentifier}, dup={Dup}, retain={Retain}, {Payload.Length} bytes)";
}

/// <summary>Common shape of PUBACK, PUBREC, PUBREL and PUBCOMP: packet id, reason code, reason string, user properties.</summary>
public abstract class MqttPublishResponsePacket : MqttPacket, IMqttPacketWithIdentifier
{
    /// <summary>Packet identifier of the PUBLISH this answers.</summary>
    public ushort PacketIdentifier { get; set; }

    /// <summary>5.0 reason code (always Success in 3.1.1).</summary>
    public MqttReasonCode ReasonCode { get; set; }

    /// <summary>5.0: Reason String.</summary>
    public string? ReasonString { get; set; }

    /// <summary>5.0: User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];

    /// <inheritdoc />
    public override string ToString() => $"{Type}(id={PacketIdentifier}, reason={ReasonCode})";
}

/// <summary>PUBACK: acknowledges a QoS 1 PUBLISH.</summary>
public sealed class MqttPubAckPacket : MqttPublishResponsePacket
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.PubAck;
}

/// <summary>PUBREC: first answer to a QoS 2 PUBLISH.</summary>
public sealed class MqttPubRecPacket : MqttPublishResponsePacket
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.PubRec;
}

/// <summary>PUBREL: the sender releases a QoS 2 message after PUBREC.</summary>
public sealed class MqttPubRelPacket : MqttPublishResponsePacket
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.PubRel;
}

/// <summary>PUBCOMP: completes a QoS 2 exchange.</summary>
public sealed class MqttPubCompPacket : MqttPublishResponsePacket
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.PubComp;
}

/// <summary>Helpers for re-sending.</summary>
internal static class MqttPublishPacketExtensions
{
    /// <summary>A copy with the DUP flag set as given (the original may still sit in a dead connection's queue).</summary>
    public static MqttPublishPacket WithDup(this MqttPublishPacket p, bool dup) => new()
    {
        Topic = p.Topic,
        Payload = p.Payload,
        QualityOfServiceLevel = p.QualityOfServiceLevel,
        Retain = p.Retain,
        Dup = dup,
        PacketIdentifier = p.PacketIdentifier,
        PayloadFormatIndicator = p.PayloadFormatIndicator,
        MessageExpiryInterval = p.MessageExpiryInterval,
        TopicAlias = p.TopicAlias,
        ResponseTopic = p.ResponseTopic,
        CorrelationData = p.CorrelationData,
        ContentType = p.ContentType,
        SubscriptionIdentifiers = p.SubscriptionIdentifiers,
        UserProperties = p.UserProperties,
    };
}
