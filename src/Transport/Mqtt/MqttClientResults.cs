using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Mqtt;

/// <summary>CONNACK reason codes as the client reports them (MQTT 5.0 section 3.2.2.2; 3.1.1 return codes mapped).</summary>
public enum MqttClientConnectResultCode : byte
{
    /// <summary>Connection accepted.</summary>
    Success = 0x00,
    /// <summary>Unspecified error.</summary>
    UnspecifiedError = 0x80,
    /// <summary>Malformed Packet.</summary>
    MalformedPacket = 0x81,
    /// <summary>Protocol Error.</summary>
    ProtocolError = 0x82,
    /// <summary>Implementation specific error.</summary>
    ImplementationSpecificError = 0x83,
    /// <summary>Unsupported Protocol Version.</summary>
    UnsupportedProtocolVersion = 0x84,
    /// <summary>Client Identifier not valid.</summary>
    ClientIdentifierNotValid = 0x85,
    /// <summary>Bad User Name or Password.</summary>
    BadUserNameOrPassword = 0x86,
    /// <summary>Not authorized.</summary>
    NotAuthorized = 0x87,
    /// <summary>Server unavailable.</summary>
    ServerUnavailable = 0x88,
    /// <summary>Server busy.</summary>
    ServerBusy = 0x89,
    /// <summary>Banned.</summary>
    Banned = 0x8A,
    /// <summary>Bad authentication method.</summary>
    BadAuthenticationMethod = 0x8C,
    /// <summary>Topic Name invalid (of the will).</summary>
    TopicNameInvalid = 0x90,
    /// <summary>Packet too large.</summary>
    PacketTooLarge = 0x95,
    /// <summary>Quota exceeded.</summary>
    QuotaExceeded = 0x97,
    /// <summary>Payload format invalid.</summary>
    PayloadFormatInvalid = 0x99,
    /// <summary>Retain not supported.</summary>
    RetainNotSupported = 0x9A,
    /// <summary>QoS not supported.</summary>
    QoSNotSupported = 0x9B,
    /// <summary>Use another server.</summary>
    UseAnotherServer = 0x9C,
    /// <summary>Server moved.</summary>
    ServerMoved = 0x9D,
    /// <summary>Connection rate exceeded.</summary>
    ConnectionRateExceeded = 0x9F,
}

/// <summary>PUBACK/PUBREC reason codes as the client reports them (MQTT 5.0 section 3.4.2.1). 3.1.1 brokers always report Success.</summary>
public enum MqttClientPublishReasonCode : byte
{
    /// <summary>Accepted (also: QoS 0 handed to the socket).</summary>
    Success = 0x00,
    /// <summary>Accepted, but nobody subscribes to the topic.</summary>
    NoMatchingSubscribers = 0x10,
    /// <summary>Unspecified error.</summary>
    UnspecifiedError = 0x80,
    /// <summary>Implementation specific error.</summary>
    ImplementationSpecificError = 0x83,
    /// <summary>Not authorized.</summary>
    NotAuthorized = 0x87,
    /// <summary>Topic Name invalid.</summary>
    TopicNameInvalid = 0x90,
    /// <summary>Packet identifier in use.</summary>
    PacketIdentifierInUse = 0x91,
    /// <summary>Packet identifier not found (on PUBCOMP).</summary>
    PacketIdentifierNotFound = 0x92,
    /// <summary>Quota exceeded.</summary>
    QuotaExceeded = 0x97,
    /// <summary>Payload format invalid.</summary>
    PayloadFormatInvalid = 0x99,
}

/// <summary>SUBACK reason codes as the client reports them (MQTT 5.0 section 3.9.3; 3.1.1 failure 0x80 = UnspecifiedError).</summary>
public enum MqttClientSubscribeResultCode : byte
{
    /// <summary>Granted at QoS 0.</summary>
    GrantedQoS0 = 0x00,
    /// <summary>Granted at QoS 1.</summary>
    GrantedQoS1 = 0x01,
    /// <summary>Granted at QoS 2.</summary>
    GrantedQoS2 = 0x02,
    /// <summary>Unspecified error (3.1.1: Failure).</summary>
    UnspecifiedError = 0x80,
    /// <summary>Implementation specific error.</summary>
    ImplementationSpecificError = 0x83,
    /// <summary>Not authorized.</summary>
    NotAuthorized = 0x87,
    /// <summary>Topic Filter invalid.</summary>
    TopicFilterInvalid = 0x8F,
    /// <summary>Packet Identifier in use.</summary>
    PacketIdentifierInUse = 0x91,
    /// <summary>Quota exceeded.</summary>
    QuotaExceeded = 0x97,
    /// <summary>Shared Subscriptions not supported.</summary>
    SharedSubscriptionsNotSupported = 0x9E,
    /// <summary>Subscription Identifiers not supported.</summary>
    SubscriptionIdentifiersNotSupported = 0xA1,
    /// <summary>Wildcard Subscriptions not supported.</summary>
    WildcardSubscriptionsNotSupported = 0xA2,
}

/// <summary>UNSUBACK reason codes as the client reports them (MQTT 5.0 section 3.11.3; 3.1.1 has none: Success).</summary>
public enum MqttClientUnsubscribeResultCode : byte
{
    /// <summary>Unsubscribed.</summary>
    Success = 0x00,
    /// <summary>There was no such subscription.</summary>
    NoSubscriptionExisted = 0x11,
    /// <summary>Unspecified error.</summary>
    UnspecifiedError = 0x80,
    /// <summary>Implementation specific error.</summary>
    ImplementationSpecificError = 0x83,
    /// <summary>Not authorized.</summary>
    NotAuthorized = 0x87,
    /// <summary>Topic Filter invalid.</summary>
    TopicFilterInvalid = 0x8F,
    /// <summary>Packet Identifier in use.</summary>
    PacketIdentifierInUse = 0x91,
}

/// <summary>What the broker said in CONNACK.</summary>
public sealed class MqttClientConnectResult
{
    internal MqttClientConnectResult(MqttConnAckPacket p)
    {
        ResultCode = (MqttClientConnectResultCode)p.ReasonCode;
        IsSessionPresent = p.SessionPresent;
        ReasonString = p.ReasonString;
        AssignedClientIdentifier = p.AssignedClientIdentifier;
        ReceiveMaximum = p.ReceiveMaximum ?? ushort.MaxValue;
        MaximumPacketSize = p.MaximumPacketSize;
        MaximumQoS = (MqttQualityOfServiceLevel)(p.MaximumQoS ?? 2);
        RetainAvailable = p.RetainAvailable != 0;
        ServerKeepAlive = p.ServerKeepAlive;
        SessionExpiryInterval = p.SessionExpiryInterval;
        TopicAliasMaximum = p.TopicAliasMaximum ?? 0;
        WildcardSubscriptionAvailable = p.WildcardSubscriptionAvailable != 0;
        SharedSubscriptionAvailable = p.SharedSubscriptionAvailable != 0;
        SubscriptionIdentifiersAvailable = p.SubscriptionIdentifiersAvailable != 0;
        ResponseInformation = p.ResponseInformation;
        ServerReference = p.ServerReference;
        UserProperties = p.UserProperties;
    }

    /// <summary>Reason code; anything but Success means the connection was refused.</summary>
    public MqttClientConnectResultCode ResultCode { get; }

    /// <summary>The broker resumed a stored session.</summary>
    public bool IsSessionPresent { get; }

    /// <summary>5.0 Reason String.</summary>
    public string? ReasonString { get; }

    /// <summary>5.0: the client identifier the broker assigned.</summary>
    public string? AssignedClientIdentifier { get; }

    /// <summary>QoS 1/2 publishes the broker accepts at once (65535 when it did not say).</summary>
    public ushort ReceiveMaximum { get; }

    /// <summary>Largest packet the broker accepts, when it said.</summary>
    public uint? MaximumPacketSize { get; }

    /// <summary>Highest QoS the broker supports.</summary>
    public MqttQualityOfServiceLevel MaximumQoS { get; }

    /// <summary>Whether the broker supports retained messages.</summary>
    public bool RetainAvailable { get; }

    /// <summary>5.0: keep alive in seconds the broker imposes, when it did.</summary>
    public ushort? ServerKeepAlive { get; }

    /// <summary>5.0: session expiry the broker uses, when it changed ours.</summary>
    public uint? SessionExpiryInterval { get; }

    /// <summary>5.0: highest topic alias the broker accepts.</summary>
    public ushort TopicAliasMaximum { get; }

    /// <summary>Whether wildcard subscriptions are available.</summary>
    public bool WildcardSubscriptionAvailable { get; }

    /// <summary>Whether shared subscriptions are available.</summary>
    public bool SharedSubscriptionAvailable { get; }

    /// <summary>Whether subscription identifiers are available.</summary>
    public bool SubscriptionIdentifiersAvailable { get; }

    /// <summary>5.0 Response Information.</summary>
    public string? ResponseInformation { get; }

    /// <summary>5.0 Server Reference.</summary>
    public string? ServerReference { get; }

    /// <summary>5.0 User Properties.</summary>
    public IReadOnlyList<MqttUserProperty> UserProperties { get; }
}

/// <summary>The outcome of a publish: for QoS 1 the PUBACK, for QoS 2 the PUBREC (or PUBCOMP), for QoS 0 Success once handed to the socket writer.</summary>
public sealed class MqttClientPublishResult
{
    internal MqttClientPublishResult(ushort? packetIdentifier, MqttReasonCode reasonCode, string? reasonString, IReadOnlyList<MqttUserProperty> userProperties)
    {
        PacketIdentifier = packetIdentifier;
        ReasonCode = (MqttClientPublishReasonCode)reasonCode;
        ReasonString = reasonString;
        UserProperties = userProperties;
    }

    /// <summary>The packet identifier used (null for QoS 0).</summary>
    public ushort? PacketIdentifier { get; }

    /// <summary>The broker's reason code.</summary>
    public MqttClientPublishReasonCode ReasonCode { get; }

    /// <summary>True when the broker accepted the message (reason code below 0x80).</summary>
    public bool IsSuccess => (byte)ReasonCode < 0x80;

    /// <summary>5.0 Reason String.</summary>
    public string? ReasonString { get; }

    /// <summary>5.0 User Properties.</summary>
    public IReadOnlyList<MqttUserProperty> UserProperties { get; }
}

/// <summary>One topic filter's outcome in a SUBACK.</summary>
/// <param name="TopicFilter">The filter as requested.</param>
/// <param name="ResultCode">What the broker granted or why it refused.</param>
public sealed record MqttClientSubscribeResultItem(MqttTopicFilter TopicFilter, MqttClientSubscribeResultCode ResultCode);

/// <summary>The broker's SUBACK.</summary>
public sealed class MqttClientSubscribeResult
{
    internal MqttClientSubscribeResult(ushort packetIdentifier, IReadOnlyList<MqttClientSubscribeResultItem> items, string? reasonString, IReadOnlyList<MqttUserProperty> userProperties)
    {
        PacketIdentifier = packetIdentifier;
        Items = items;
        ReasonString = reasonString;
        UserProperties = userProperties;
    }

    /// <summary>The packet identifier used.</summary>
    public ushort PacketIdentifier { get; }

    /// <summary>One item per requested topic filter, in order.</summary>
    public IReadOnlyList<MqttClientSubscribeResultItem> Items { get; }

    /// <summary>5.0 Reason String.</summary>
    public string? ReasonString { get; }

    /// <summary>5.0 User Properties.</summary>
    public IReadOnlyList<MqttUserProperty> UserProperties { get; }
}

/// <summary>One topic filter's outcome in an UNSUBACK.</summary>
/// <param name="TopicFilter">The filter as requested.</param>
/// <param name="ResultCode">The broker's reason code (always Success with 3.1.1).</param>
public sealed record MqttClientUnsubscribeResultItem(string TopicFilter, MqttClientUnsubscribeResultCode ResultCode);

/// <summary>The broker's UNSUBACK.</summary>
public sealed class MqttClientUnsubscribeResult
{
    internal MqttClientUnsubscribeResult(ushort packetIdentifier, IReadOnlyList<MqttClientUnsubscribeResultItem> items, string? reasonString)
    {
        PacketIdentifier = packetIdentifier;
        Items = items;
        ReasonString = reasonString;
    }

    /// <summary>The packet identifier used.</summary>
    public ushort PacketIdentifier { get; }

    /// <summary>One item per topic filter, in order.</summary>
    public IReadOnlyList<MqttClientUnsubscribeResultItem> Items { get; }

    /// <summary>5.0 Reason String.</summary>
    public string? ReasonString { get; }
}

/// <summary>What to subscribe to. Build with <see cref="MqttClientSubscribeOptionsBuilder"/>.</summary>
public sealed class MqttClientSubscribeOptions
{
    /// <summary>Topic filters with their options.</summary>
    public List<MqttTopicFilter> TopicFilters { get; set; } = [];

    /// <summary>5.0 Subscription Identifier, echoed in matching PUBLISH packets.</summary>
    public uint? SubscriptionIdentifier { get; set; }

    /// <summary>5.0 User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];
}

/// <summary>Builds <see cref="MqttClientSubscribeOptions"/>.</summary>
public sealed class MqttClientSubscribeOptionsBuilder
{
    private readonly MqttClientSubscribeOptions _options = new();

    /// <summary>Adds a topic filter.</summary>
    public MqttClientSubscribeOptionsBuilder WithTopicFilter(
        string topic,
        MqttQualityOfServiceLevel qualityOfServiceLevel = MqttQualityOfServiceLevel.AtMostOnce,
        bool noLocal = false,
        bool retainAsPublished = false,
        MqttRetainHandling retainHandling = MqttRetainHandling.SendAtSubscribe)
    {
        _options.TopicFilters.Add(new MqttTopicFilter
        {
            Topic = topic,
            QualityOfServiceLevel = qualityOfServiceLevel,
            NoLocal = noLocal,
            RetainAsPublished = retainAsPublished,
            RetainHandling = retainHandling,
        });
        return this;
    }

    /// <summary>Adds a topic filter.</summary>
    public MqttClientSubscribeOptionsBuilder WithTopicFilter(MqttTopicFilter filter)
    {
        _options.TopicFilters.Add(filter);
        return this;
    }

    /// <summary>5.0: sets the Subscription Identifier.</summary>
    public MqttClientSubscribeOptionsBuilder WithSubscriptionIdentifier(uint identifier)
    {
        _options.SubscriptionIdentifier = identifier;
        return this;
    }

    /// <summary>5.0: adds a User Property.</summary>
    public MqttClientSubscribeOptionsBuilder WithUserProperty(string name, string value)
    {
        _options.UserProperties.Add(new MqttUserProperty(name, value));
        return this;
    }

    /// <summary>Returns the options.</summary>
    public MqttClientSubscribeOptions Build() =>
        _options.TopicFilters.Count > 0 ? _options : throw new InvalidOperationException("add at least one topic filter");
}

/// <summary>What to unsubscribe from.</summary>
public sealed class MqttClientUnsubscribeOptions
{
    /// <summary>Topic filters to remove.</summary>
    public List<string> TopicFilters { get; set; } = [];

    /// <summary>5.0 User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];
}

/// <summary>How to disconnect.</summary>
public sealed class MqttClientDisconnectOptions
{
    /// <summary>5.0 reason code; <see cref="MqttReasonCode.DisconnectWithWillMessage"/> asks the broker to publish the will anyway.</summary>
    public MqttReasonCode Reason { get; set; } = MqttReasonCode.Success;

    /// <summary>5.0: new Session Expiry Interval (cannot be raised from 0).</summary>
    public uint? SessionExpiryInterval { get; set; }

    /// <summary>5.0 Reason String.</summary>
    public string? ReasonString { get; set; }
}

/// <summary>Arguments of <see cref="MqttClient.ApplicationMessageReceivedAsync"/>.</summary>
public sealed class MqttApplicationMessageReceivedEventArgs : EventArgs
{
    internal MqttApplicationMessageReceivedEventArgs(string clientId, MqttApplicationMessage message, ushort packetIdentifier)
    {
        ClientId = clientId;
        ApplicationMessage = message;
        PacketIdentifier = packetIdentifier;
    }

    /// <summary>This client's identifier.</summary>
    public string ClientId { get; }

    /// <summary>The message.</summary>
    public MqttApplicationMessage ApplicationMessage { get; }

    /// <summary>The packet identifier (0 for QoS 0).</summary>
    public ushort PacketIdentifier { get; }

    /// <summary>5.0: the reason code sent in PUBACK/PUBREC after the handlers return (Success by default).</summary>
    public MqttReasonCode ReasonCode { get; set; } = MqttReasonCode.Success;
}

/// <summary>Arguments of <see cref="MqttClient.ConnectedAsync"/>.</summary>
public sealed class MqttClientConnectedEventArgs : EventArgs
{
    internal MqttClientConnectedEventArgs(MqttClientConnectResult result) => ConnectResult = result;

    /// <summary>The broker's CONNACK.</summary>
    public MqttClientConnectResult ConnectResult { get; }
}

/// <summary>Arguments of <see cref="MqttClient.DisconnectedAsync"/>: a connection ended, or a (re)connect attempt failed.</summary>
public sealed class MqttClientDisconnectedEventArgs : EventArgs
{
    internal MqttClientDisconnectedEventArgs(bool clientWasConnected, bool byClient, MqttReasonCode? reasonCode, string? reasonString, Exception? exception, MqttClientConnectResult? connectResult)
    {
        ClientWasConnected = clientWasConnected;
        DisconnectedByClient = byClient;
        ReasonCode = reasonCode;
        ReasonString = reasonString;
        Exception = exception;
        ConnectResult = connectResult;
    }

    /// <summary>False when this reports a failed connect attempt rather than a lost connection.</summary>
    public bool ClientWasConnected { get; }

    /// <summary>True when <see cref="MqttClient.DisconnectAsync"/> ended the connection.</summary>
    public bool DisconnectedByClient { get; }

    /// <summary>5.0: the reason code of the broker's DISCONNECT, when it sent one.</summary>
    public MqttReasonCode? ReasonCode { get; }

    /// <summary>5.0: the broker's Reason String.</summary>
    public string? ReasonString { get; }

    /// <summary>What broke the connection, when something did.</summary>
    public Exception? Exception { get; }

    /// <summary>For a refused connect attempt: the broker's CONNACK.</summary>
    public MqttClientConnectResult? ConnectResult { get; }
}
