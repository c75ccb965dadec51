namespace Pinhole.Transport.Mqtt.Packets;

/// <summary>CONNECT (MQTT 3.1.1 section 3.1, MQTT 5.0 section 3.1).</summary>
public sealed class MqttConnectPacket : MqttPacket
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.Connect;

    /// <summary>Protocol level: 4 for 3.1.1, 5 for 5.0.</summary>
    public MqttProtocolVersion ProtocolVersion { get; set; } = MqttProtocolVersion.V500;

    /// <summary>Client identifier; may be empty, then the broker assigns one (5.0) or requires clean session (3.1.1).</summary>
    public string ClientId { get; set; } = "";

    /// <summary>Clean Session (3.1.1) / Clean Start (5.0).</summary>
    public bool CleanSession { get; set; } = true;

    /// <summary>Keep alive in seconds; 0 turns keep alive off.</summary>
    public ushort KeepAlivePeriod { get; set; }

    /// <summary>User name, or null to send none.</summary>
    public string? Username { get; set; }

    /// <summary>Password bytes, or null to send none.</summary>
    public byte[]? Password { get; set; }

    /// <summary>Will topic; the will flag is set exactly when this is not null.</summary>
    public string? WillTopic { get; set; }

    /// <summary>Will payload.</summary>
    public byte[] WillPayload { get; set; } = [];

    /// <summary>QoS of the will message.</summary>
    public MqttQualityOfServiceLevel WillQoS { get; set; }

    /// <summary>Whether the will message is retained.</summary>
    public bool WillRetain { get; set; }

    /// <summary>5.0 will property: Will Delay Interval in seconds.</summary>
    public uint? WillDelayInterval { get; set; }

    /// <summary>5.0 will property: Payload Format Indicator (1 = UTF-8).</summary>
    public byte? WillPayloadFormatIndicator { get; set; }

    /// <summary>5.0 will property: Message Expiry Interval in seconds.</summary>
    public uint? WillMessageExpiryInterval { get; set; }

    /// <summary>5.0 will property: Content Type.</summary>
    public string? WillContentType { get; set; }

    /// <summary>5.0 will property: Response Topic.</summary>
    public string? WillResponseTopic { get; set; }

    /// <summary>5.0 will property: Correlation Data.</summary>
    public byte[]? WillCorrelationData { get; set; }

    /// <summary>5.0 will properties: User Properties.</summary>
    public List<MqttUserProperty> WillUserProperties { get; set; } = [];

    /// <summary>5.0: Session Expiry Interval in seconds (0 or absent: session ends with the connection).</summary>
    public uint? SessionExpiryInterval { get; set; }

    /// <summary>5.0: how many QoS 1/2 publishes the client accepts at once.</summary>
    public ushort? ReceiveMaximum { get; set; }

    /// <summary>5.0: largest packet the client accepts.</summary>
    public uint? MaximumPacketSize { get; set; }

    /// <summary>5.0: highest topic alias the client accepts.</summary>
    public ushort? TopicAliasMaximum { get; set; }

    /// <summary>5.0: Request Response Information.</summary>
    public byte? RequestResponseInformation { get; set; }

    /// <summary>5.0: Request Problem Information.</summary>
    public byte? RequestProblemInformation { get; set; }

    /// <summary>5.0: Authentication Method for enhanced authentication.</summary>
    public string? AuthenticationMethod { get; set; }

    /// <summary>5.0: Authentication Data.</summary>
    public byte[]? AuthenticationData { get; set; }

    /// <summary>5.0: User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];
}

/// <summary>CONNACK (MQTT 3.1.1 section 3.2, MQTT 5.0 section 3.2).</summary>
public sealed class MqttConnAckPacket : MqttPacket
{
    /// <inheritdoc />
    public override MqttControlPacketType Type => MqttControlPacketType.ConnAck;

    /// <summary>Whether the broker resumed a stored session.</summary>
    public bool SessionPresent { get; set; }

    /// <summary>Reason code (3.1.1 return codes are mapped: 1 Unsupported protocol version, 2 Client id not valid, 3 Server unavailable, 4 Bad user name or password, 5 Not authorized).</summary>
    public MqttReasonCode ReasonCode { get; set; }

    /// <summary>5.0: Session Expiry Interval the broker uses.</summary>
    public uint? SessionExpiryInterval { get; set; }

    /// <summary>5.0: how many QoS 1/2 publishes the broker accepts at once (absent: 65535).</summary>
    public ushort? ReceiveMaximum { get; set; }

    /// <summary>5.0: Maximum QoS the broker supports (absent: 2).</summary>
    public byte? MaximumQoS { get; set; }

    /// <summary>5.0: Retain Available (absent: 1).</summary>
    public byte? RetainAvailable { get; set; }

    /// <summary>5.0: largest packet the broker accepts.</summary>
    public uint? MaximumPacketSize { get; set; }

    /// <summary>5.0: client identifier assigned by the broker when the client sent an empty one.</summary>
    public string? AssignedClientIdentifier { get; set; }

    /// <summary>5.0: highest topic alias the broker accepts.</summary>
    public ushort? TopicAliasMaximum { get; set; }

    /// <summary>5.0: Reason String.</summary>
    public string? ReasonString { get; set; }

    /// <summary>5.0: Wildcard Subscription Available.</summary>
    public byte? WildcardSubscriptionAvailable { get; set; }

    /// <summary>5.0: Subscription Identifiers Available.</summary>
    public byte? SubscriptionIdentifiersAvailable { get; set; }

    /// <summary>5.0: Shared Subscription Available.</summary>
    public byte? SharedSubscriptionAvailable { get; set; }

    /// <summary>5.0: keep alive the broker wants the client to use instead of its own.</summary>
    public ushort? ServerKeepAlive { get; set; }

    /// <summary>5.0: Response Information.</summary>
    public string? ResponseInformation { get; set; }

    /// <summary>5.0: Server Reference.</summary>
    public string? ServerReference { get; set; }

    /// <summary>5.0: Authentication Method.</summary>
    public string? AuthenticationMethod { get; set; }

    /// <summary>5.0: Authentication Data.</summary>
    public byte[]? AuthenticationData { get; set; }

    /// <summary>5.0: User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];
}
