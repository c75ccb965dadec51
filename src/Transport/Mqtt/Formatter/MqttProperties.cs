using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Mqtt.Formatter;

/// <summary>Property identifiers (MQTT 5.0 section 2.2.2.2, table 2-4).</summary>
internal enum MqttPropertyId : byte
{
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQoS = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

/// <summary>Where a property list appears; table 2-4 says which properties each place allows.</summary>
[Flags]
internal enum MqttPropertyContext
{
    None = 0,
    Connect = 1 << 0,
    ConnAck = 1 << 1,
    Publish = 1 << 2,
    Will = 1 << 3,
    PubResponse = 1 << 4,
    Subscribe = 1 << 5,
    SubAck = 1 << 6,
    Unsubscribe = 1 << 7,
    UnsubAck = 1 << 8,
    Disconnect = 1 << 9,
    Auth = 1 << 10,
}

/// <summary>Every property a packet may carry, decoded. Only allocated when a property list is not empty.</summary>
internal sealed class MqttPropertyBag
{
    public byte? PayloadFormatIndicator;
    public uint? MessageExpiryInterval;
    public string? ContentType;
    public string? ResponseTopic;
    public byte[]? CorrelationData;
    public List<uint>? SubscriptionIdentifiers;
    public uint? SessionExpiryInterval;
    public string? AssignedClientIdentifier;
    public ushort? ServerKeepAlive;
    public string? AuthenticationMethod;
    public byte[]? AuthenticationData;
    public byte? RequestProblemInformation;
    public uint? WillDelayInterval;
    public byte? RequestResponseInformation;
    public string? ResponseInformation;
    public string? ServerReference;
    public string? ReasonString;
    public ushort? ReceiveMaximum;
    public ushort? TopicAliasMaximum;
    public ushort? TopicAlias;
    public byte? MaximumQoS;
    public byte? RetainAvailable;
    public List<MqttUserProperty>? UserProperties;
    public uint? MaximumPacketSize;
    public byte? WildcardSubscriptionAvailable;
    public byte? SubscriptionIdentifierAvailable;
    public byte? SharedSubscriptionAvailable;

    private const MqttPropertyContext PubResp = MqttPropertyContext.PubResponse;

    private static MqttPropertyContext AllowedIn(MqttPropertyId id) => id switch
    {
        MqttPropertyId.PayloadFormatIndicator or MqttPropertyId.MessageExpiryInterval or MqttPropertyId.ContentType
            or MqttPropertyId.ResponseTopic or MqttPropertyId.CorrelationData => MqttPropertyContext.Publish | MqttPropertyContext.Will,
        MqttPropertyId.SubscriptionIdentifier => MqttPropertyContext.Publish | MqttPropertyContext.Subscribe,
        MqttPropertyId.SessionExpiryInterval => MqttPropertyContext.Connect | MqttPropertyContext.ConnAck | MqttPropertyContext.Disconnect,
        MqttPropertyId.AssignedClientIdentifier or MqttPropertyId.ServerKeepAlive or MqttPropertyId.ResponseInformation
            or MqttPropertyId.MaximumQoS or MqttPropertyId.RetainAvailable or MqttPropertyId.WildcardSubscriptionAvailable
            or MqttPropertyId.SubscriptionIdentifierAvailable or MqttPropertyId.SharedSubscriptionAvailable => MqttPropertyContext.ConnAck,
        MqttPropertyId.AuthenticationMethod or MqttPropertyId.AuthenticationData =>
            MqttPropertyContext.Connect | MqttPropertyContext.ConnAck | MqttPropertyContext.Auth,
        MqttPropertyId.RequestProblemInformation or MqttPropertyId.RequestResponseInformation => MqttPropertyContext.Connect,
        MqttPropertyId.WillDelayInterval => MqttPropertyContext.Will,
        MqttPropertyId.ServerReference => MqttPropertyContext.ConnAck | MqttPropertyContext.Disconnect,
        MqttPropertyId.ReasonString => MqttPropertyContext.ConnAck | PubResp | MqttPropertyContext.SubAck
            | MqttPropertyContext.UnsubAck | MqttPropertyContext.Disconnect | MqttPropertyContext.Auth,
        MqttPropertyId.ReceiveMaximum or MqttPropertyId.TopicAliasMaximum or MqttPropertyId.MaximumPacketSize =>
            MqttPropertyContext.Connect | MqttPropertyContext.ConnAck,
        MqttPropertyId.TopicAlias => MqttPropertyContext.Publish,
        MqttPropertyId.UserProperty => (MqttPropertyContext)0x7FF,
        _ => MqttPropertyContext.None,
    };

    /// <summary>
    /// Reads a property length and the properties it covers. Returns null for an empty list.
    /// Unknown, misplaced or repeated properties are Protocol Errors (section 2.2.2.2).
    /// </summary>
    public static MqttPropertyBag? Read(ref MqttBodyReader body, MqttPropertyContext context, string packetName)
    {
        var length = body.ReadVariableByteInteger();
        if (length == 0)
            return null;
        var r = body.Slice(length);
        var bag = new MqttPropertyBag();
        while (!r.End)
        {
            var raw = r.ReadVariableByteInteger();
            var id = raw <= byte.MaxValue ? (MqttPropertyId)raw : 0;
            if ((AllowedIn(id) & context) == 0)
                throw new MqttProtocolException($"{packetName}: property 0x{raw:X2} is not allowed here", MqttReasonCode.ProtocolError);
            switch (id)
            {
                case MqttPropertyId.PayloadFormatIndicator: Set(ref bag.PayloadFormatIndicator, Boolean(ref r, id, packetName), id, packetName); break;
                case MqttPropertyId.MessageExpiryInterval: Set(ref bag.MessageExpiryInterval, r.ReadUInt32(), id, packetName); break;
                case MqttPropertyId.ContentType: SetRef(ref bag.ContentType, r.ReadString(), id, packetName); break;
                case MqttPropertyId.ResponseTopic:
                    var responseTopic = r.ReadString();
                    if (!MqttTopic.IsValidTopicName(responseTopic))
                        throw new MqttProtocolException($"{packetName}: response topic '{responseTopic}' is not a valid topic name", MqttReasonCode.ProtocolError);
                    SetRef(ref bag.ResponseTopic, responseTopic, id, packetName);
                    break;
                case MqttPropertyId.CorrelationData: SetRef(ref bag.CorrelationData, r.ReadBinary(), id, packetName); break;
                case MqttPropertyId.SubscriptionIdentifier:
                    var subscriptionId = r.ReadVariableByteInteger();
                    if (subscriptionId == 0)
                        throw new MqttProtocolException($"{packetName}: subscription identifier 0", MqttReasonCode.ProtocolError);
                    bag.SubscriptionIdentifiers ??= [];
                    if (context == MqttPropertyContext.Subscribe && bag.SubscriptionIdentifiers.Count > 0)
                        throw new MqttProtocolException($"{packetName}: more than one subscription identifier", MqttReasonCode.ProtocolError);
                    bag.SubscriptionIdentifiers.Add(subscriptionId);
                    break;
                case MqttPropertyId.SessionExpiryInterval: Set(ref bag.SessionExpiryInterval, r.ReadUInt32(), id, packetName); break;
                case MqttPropertyId.AssignedClientIdentifier: SetRef(ref bag.AssignedClientIdentifier, r.ReadString(), id, packetName); break;
                case MqttPropertyId.ServerKeepAlive: Set(ref bag.ServerKeepAlive, r.ReadUInt16(), id, packetName); break;
                case MqttPropertyId.AuthenticationMethod: SetRef(ref bag.AuthenticationMethod, r.ReadString(), id, packetName); break;
                case MqttPropertyId.AuthenticationData: SetRef(ref bag.AuthenticationData, r.ReadBinary(), id, packetName); break;
                case MqttPropertyId.RequestProblemInformation: Set(ref bag.RequestProblemInformation, Boolean(ref r, id, packetName), id, packetName); break;
                case MqttPropertyId.WillDelayInterval: Set(ref bag.WillDelayInterval, r.ReadUInt32(), id, packetName); break;
                case MqttPropertyId.RequestResponseInformation: Set(ref bag.RequestResponseInformation, Boolean(ref r, id, packetName), id, packetName); break;
                case MqttPropertyId.ResponseInformation: SetRef(ref bag.ResponseInformation, r.ReadString(), id, packetName); break;
                case MqttPropertyId.ServerReference: SetRef(ref bag.ServerReference, r.ReadString(), id, packetName); break;
                case MqttPropertyId.ReasonString: SetRef(ref bag.ReasonString, r.ReadString(), id, packetName); break;
                case MqttPropertyId.ReceiveMaximum: Set(ref bag.ReceiveMaximum, NonZero(r.ReadUInt16(), id, packetName), id, packetName); break;
                case MqttPropertyId.TopicAliasMaximum: Set(ref bag.TopicAliasMaximum, r.ReadUInt16(), id, packetName); break;
                case MqttPropertyId.TopicAlias: Set(ref bag.TopicAlias, NonZero(r.ReadUInt16(), id, packetName), id, packetName); break;
                case MqttPropertyId.MaximumQoS: Set(ref bag.MaximumQoS, Boolean(ref r, id, packetName), id, packetName); break;
                case MqttPropertyId.RetainAvailable: Set(ref bag.RetainAvailable, Boolean(ref r, id, packetName), id, packetName); break;
                case MqttPropertyId.UserProperty: (bag.UserProperties ??= []).Add(r.ReadUserProperty()); break;
                case MqttPropertyId.MaximumPacketSize:
                    var max = r.ReadUInt32();
                    if (max == 0)
                        throw new MqttProtocolException($"{packetName}: maximum packet size 0", MqttReasonCode.ProtocolError);
                    Set(ref bag.MaximumPacketSize, max, id, packetName);
                    break;
                case MqttPropertyId.WildcardSubscriptionAvailable: Set(ref bag.WildcardSubscriptionAvailable, Boolean(ref r, id, packetName), id, packetName); break;
                case MqttPropertyId.SubscriptionIdentifierAvailable: Set(ref bag.SubscriptionIdentifierAvailable, Boolean(ref r, id, packetName), id, packetName); break;
                case MqttPropertyId.SharedSubscriptionAvailable: Set(ref bag.SharedSubscriptionAvailable, Boolean(ref r, id, packetName), id, packetName); break;
                default:
                    throw new MqttProtocolException($"{packetName}: unknown property 0x{raw:X2}", MqttReasonCode.ProtocolError);
            }
        }

        return bag;
    }

    private static byte Boolean(ref MqttBodyReader r, MqttPropertyId id, string packetName)
    {
        var b = r.ReadByte();
        if (b > 1)
            throw new MqttProtocolException($"{packetName}: property {id} must be 0 or 1, was {b}", MqttReasonCode.ProtocolError);
        return b;
    }

    private static ushort NonZero(ushort value, MqttPropertyId id, string packetName) =>
        value != 0 ? value : throw new MqttProtocolException($"{packetName}: property {id} must not be 0", MqttReasonCode.ProtocolError);

    private static void Set<T>(ref T? field, T value, MqttPropertyId id, string packetName)
        where T : struct
    {
        if (field.HasValue)
            throw new MqttProtocolException($"{packetName}: property {id} appears twice", MqttReasonCode.ProtocolError);
        field = value;
    }

    private static void SetRef<T>(ref T? field, T value, MqttPropertyId id, string packetName)
        where T : class
    {
        if (field is not null)
            throw new MqttProtocolException($"{packetName}: property {id} appears twice", MqttReasonCode.ProtocolError);
        field = value;
    }
}
