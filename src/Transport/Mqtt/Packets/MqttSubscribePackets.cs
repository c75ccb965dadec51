namespace Pinhole.Transport.Mqtt.Packets;

/// <summary>One topic filter of a SUBSCRIBE with its subscription options (MQTT 5.0 section 3.8.3.1).</summary>
public sealed class MqttTopicFilter
{
    /// <summary>The topic filter, may contain '+' and '#' wildcards.</summary>
    public string Topic { get; set; } = "";

    /// <summary>Maximum QoS the broker may use to send matching messages.</summary>
    public MqttQualityOfServiceLevel QualityOfServiceLevel { get; set; }

    /// <summary>5.0 No Local: do not receive own publications.</summary>
    public bool NoLocal { get; set; }

    /// <summary>5.0 Retain As Published: keep the retain flag as the publisher set it.</summary>
    public bool RetainAsPublished { get; set; }

    /// <summary>5.0 Retain Handling.</summary>
    public MqttRetainHandling RetainHandling { get; set; }

    /// <inheritdoc />
    public override string ToString() => $"{Topic}@{(int)QualityOfServiceLevel}";
}

/// <summary>SUBSCRIBE (MQTT 3.1.1 section 3.8, MQTT 5.0 section 3.8).</summary>
public sealed class MqttSubscribePacket : MqttPacket, IMqttPacketWithIdentifier
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.Subscribe;

    /// <inheritdoc />
    public ushort PacketIdentifier { get; set; }

    /// <summary>Topic filters, at least one.</summary>
    public List<MqttTopicFilter> TopicFilters { get; set; } = [];

    /// <summary>5.0: Subscription Identifier (1..268435455).</summary>
    public uint? SubscriptionIdentifier { get; set; }

    /// <summary>5.0: User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];
}

/// <summary>SUBACK (MQTT 3.1.1 section 3.9, MQTT 5.0 section 3.9).</summary>
public sealed class MqttSubAckPacket : MqttPacket, IMqttPacketWithIdentifier
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.SubAck;

    /// <inheritdoc />
    public ushort PacketIdentifier { get; set; }

    /// <summary>One reason code per topic filter (3.1.1: granted QoS 0..2, or 0x80 failure = UnspecifiedError).</summary>
    public List<MqttReasonCode> ReasonCodes { get; set; } = [];

    /// <summary>5.0: Reason String.</summary>
    public string? ReasonString { get; set; }

    /// <summary>5.0: User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];
}

/// <summary>UNSUBSCRIBE (MQTT 3.1.1 section 3.10, MQTT 5.0 section 3.10).</summary>
public sealed class MqttUnsubscribePacket : MqttPacket, IMqttPacketWithIdentifier
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.Unsubscribe;

    /// <inheritdoc />
    public ushort PacketIdentifier { get; set; }

    /// <summary>Topic filters to remove, at least one.</summary>
    public List<string> TopicFilters { get; set; } = [];

    /// <summary>5.0: User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];
}

/// <summary>UNSUBACK (MQTT 3.1.1 section 3.11, MQTT 5.0 section 3.11).</summary>
public sealed class MqttUnsubAckPacket : MqttPacket, IMqttPacketWithIdentifier
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.UnsubAck;

    /// <inheritdoc />
    public ushort PacketIdentifier { get; set; }

    /// <summary>5.0: one reason code per topic filter (empty in 3.1.1).</summary>
    public List<MqttReasonCode> ReasonCodes { get; set; } = [];

    /// <summary>5.0: Reason String.</summary>
    public string? ReasonString { get; set; }

    /// <summary>5.0: User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];
}

/// <summary>PINGREQ: keep-alive probe from the client.</summary>
public sealed class MqttPingReqPacket : MqttPacket
{
    /// <summary>The one instance (the packet has no fields).</summary>
    public static MqttPingReqPacket Instance { get; } = new();

    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.PingReq;
}

/// <summary>PINGRESP: the broker's answer to PINGREQ.</summary>
public sealed class MqttPingRespPacket : MqttPacket
{
    /// <summary>The one instance (the packet has no fields).</summary>
    public static MqttPingRespPacket Instance { get; } = new();

    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.PingResp;
}

/// <summary>DISCONNECT (MQTT 3.1.1 section 3.14, MQTT 5.0 section 3.14).</summary>
public sealed class MqttDisconnectPacket : MqttPacket
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.Disconnect;

    /// <summary>5.0 reason code (Success = normal disconnection; DisconnectWithWillMessage asks the broker to send the will).</summary>
    public MqttReasonCode ReasonCode { get; set; }

    /// <summary>5.0: Session Expiry Interval (client to broker only).</summary>
    public uint? SessionExpiryInterval { get; set; }

    /// <summary>5.0: Reason String.</summary>
    public string? ReasonString { get; set; }

    /// <summary>5.0: Server Reference.</summary>
    public string? ServerReference { get; set; }

    /// <summary>5.0: User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];

    /// <inheritdoc />
    public override string ToString() => $"DISCONNECT(reason={ReasonCode})";
}

/// <summary>AUTH (MQTT 5.0 section 3.15): enhanced authentication exchange. The client parses it but does not start one.</summary>
public sealed class MqttAuthPacket : MqttPacket
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.Auth;

    /// <summary>Success, ContinueAuthentication or ReAuthenticate.</summary>
    public MqttReasonCode ReasonCode { get; set; }

    /// <summary>Authentication Method.</summary>
    public string? AuthenticationMethod { get; set; }

    /// <summary>Authentication Data.</summary>
    public byte[]? AuthenticationData { get; set; }

    /// <summary>Reason String.</summary>
    public string? ReasonString { get; set; }

    /// <summary>User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];
}
