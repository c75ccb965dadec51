using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Mqtt.Formatter;

/// <summary>
/// Bytes to packets and back, for MQTT 3.1.1 and 5.0. Pure: no sockets, no clocks, no logging.
/// <see cref="TryParse"/> is safe to call from one reader while one writer calls <see cref="Encode"/>
/// (encoding reuses scratch buffers, so only one thread may encode at a time).
/// </summary>
public sealed class MqttPacketFormatter
{
    /// <summary>The largest size the protocol can express: 1 type byte, 4 length bytes, 268,435,455 body bytes.</summary>
    public const uint ProtocolMaximumPacketSize = MqttVariableByteInteger.MaxValue + 5;

    private readonly MqttBodyWriter _body = new();
    private readonly MqttBodyWriter _properties = new();

    /// <summary>Creates a formatter for one protocol version.</summary>
    /// <param name="protocolVersion">How packets other than CONNECT are encoded and decoded.</param>
    /// <param name="maximumPacketSize">Largest whole packet (fixed header included) <see cref="TryParse"/> accepts.</param>
    public MqttPacketFormatter(MqttProtocolVersion protocolVersion, uint maximumPacketSize = 1024 * 1024)
    {
        if (protocolVersion is not (MqttProtocolVersion.V311 or MqttProtocolVersion.V500))
            throw new ArgumentOutOfRangeException(nameof(protocolVersion), protocolVersion, "only MQTT 3.1.1 and 5.0 are supported");
        ArgumentOutOfRangeException.ThrowIfZero(maximumPacketSize);
        ProtocolVersion = protocolVersion;
        MaximumPacketSize = Math.Min(maximumPacketSize, ProtocolMaximumPacketSize);
    }

    /// <summary>The protocol version used for every packet except CONNECT (which names its own).</summary>
    public MqttProtocolVersion ProtocolVersion { get; }

    /// <summary>Largest whole packet accepted by <see cref="TryParse"/>; checked from the fixed header, before any body byte is buffered.</summary>
    public uint MaximumPacketSize { get; }

    private bool V5 => ProtocolVersion == MqttProtocolVersion.V500;

    /// <summary>
    /// Parses one packet. Returns false, consuming nothing, when <paramref name="reader"/> does not hold a
    /// whole packet yet. Throws <see cref="MqttProtocolException"/> for malformed input, or as soon as
    /// the fixed header announces a packet above <see cref="MaximumPacketSize"/>.
    /// </summary>
    public bool TryParse(ref SequenceReader<byte> reader, [NotNullWhen(true)] out MqttPacket? packet)
    {
        packet = null;
        var probe = reader;
        if (!probe.TryRead(out var header))
            return false;
        var type = (MqttControlPacketType)(header >> 4);
        var flags = header & 0x0F;
        ValidateFixedHeaderFlags(type, flags);
        if (!MqttVariableByteInteger.TryRead(ref probe, out var remainingLength))
            return false;
        var total = probe.Consumed - reader.Consumed + remainingLength;
        if (total > MaximumPacketSize)
            throw new MqttProtocolException($"{type}: packet of {total} bytes is above the maximum packet size of {MaximumPacketSize}", MqttReasonCode.PacketTooLarge);
        if (probe.Remaining < remainingLength)
            return false;

        var body = probe.UnreadSequence.Slice(0, remainingLength);
        packet = Decode(type, flags, body);
        probe.Advance(remainingLength);
        reader = probe;
        return true;
    }

    /// <summary>Parses exactly one whole packet from <paramref name="bytes"/> (a convenience for tests and tools).</summary>
    /// <exception cref="MqttProtocolException">The bytes are malformed, incomplete or hold more than one packet.</exception>
    public MqttPacket Parse(ReadOnlySequence<byte> bytes)
    {
        var reader = new SequenceReader<byte>(bytes);
        if (!TryParse(ref reader, out var packet))
            throw new MqttProtocolException("the bytes end before the packet does");
        if (!reader.End)
            throw new MqttProtocolException($"{reader.Remaining} bytes follow the packet");
        return packet;
    }

    /// <summary>Encodes <paramref name="packet"/> into <paramref name="output"/> and returns how many bytes it took.</summary>
    /// <exception cref="ArgumentException">The packet breaks a rule the sender must keep (invalid string, QoS 0 with an id...).</exception>
    public int Encode(MqttPacket packet, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(packet);
        ArgumentNullException.ThrowIfNull(output);
        _body.Reset();
        byte flags = 0;
        switch (packet)
        {
            case MqttConnectPacket p: EncodeConnect(p); break;
            case MqttConnAckPacket p: EncodeConnAck(p); break;
            case MqttPublishPacket p: flags = EncodePublish(p); break;
            case MqttPublishResponsePacket p:
                EncodePublishResponse(p);
                flags = p.Type == MqttControlPacketType.PubRel ? (byte)0x02 : (byte)0;
                break;
            case MqttSubscribePacket p: EncodeSubscribe(p); flags = 0x02; break;
            case MqttSubAckPacket p: EncodeSubAck(p); break;
            case MqttUnsubscribePacket p: EncodeUnsubscribe(p); flags = 0x02; break;
            case MqttUnsubAckPacket p: EncodeUnsubAck(p); break;
            case MqttPingReqPacket or MqttPingRespPacket: break;
            case MqttDisconnectPacket p: EncodeDisconnect(p); break;
            case MqttAuthPacket p: EncodeAuth(p); break;
            default: throw new ArgumentException($"cannot encode {packet.GetType().Name}", nameof(packet));
        }

        var bodyLength = (uint)_body.Length;
        if (bodyLength > MqttVariableByteInteger.MaxValue)
            throw new ArgumentException($"{packet.Type} body of {bodyLength} bytes exceeds the MQTT limit", nameof(packet));
        var headerLength = 1 + MqttVariableByteInteger.GetSize(bodyLength);
        var span = output.GetSpan(headerLength + (int)bodyLength);
        span[0] = (byte)(((byte)packet.Type << 4) | flags);
        MqttVariableByteInteger.Write(bodyLength, span[1..]);
        _body.WrittenSpan.CopyTo(span[headerLength..]);
        output.Advance(headerLength + (int)bodyLength);
        return headerLength + (int)bodyLength;
    }

    // ---- fixed header (section 2.1.3: reserved flags; section 3.3.1: PUBLISH flags) ----

    private void ValidateFixedHeaderFlags(MqttControlPacketType type, int flags)
    {
        switch (type)
        {
            case MqttControlPacketType.Publish:
                if ((flags & 0x06) == 0x06)
                    throw new MqttProtocolException("PUBLISH: QoS 3 is reserved [MQTT-3.3.1-4]");
                if ((flags & 0x08) != 0 && (flags & 0x06) == 0)
                    throw new MqttProtocolException("PUBLISH: DUP set on a QoS 0 message [MQTT-3.3.1-2]");
                break;
            case MqttControlPacketType.PubRel or MqttControlPacketType.Subscribe or MqttControlPacketType.Unsubscribe:
                if (flags != 0x02)
                    throw new MqttProtocolException($"{type}: reserved fixed header flags must be 0010, were {Convert.ToString(flags, 2).PadLeft(4, '0')}");
                break;
            case MqttControlPacketType.Connect or MqttControlPacketType.ConnAck or MqttControlPacketType.PubAck
                or MqttControlPacketType.PubRec or MqttControlPacketType.PubComp or MqttControlPacketType.SubAck
                or MqttControlPacketType.UnsubAck or MqttControlPacketType.PingReq or MqttControlPacketType.PingResp
                or MqttControlPacketType.Disconnect:
                if (flags != 0)
                    throw new MqttProtocolException($"{type}: reserved fixed header flags must be 0000, were {Convert.ToString(flags, 2).PadLeft(4, '0')}");
                break;
            case MqttControlPacketType.Auth when V5:
                if (flags != 0)
                    throw new MqttProtocolException($"{type}: reserved fixed header flags must be 0000");
                break;
            default:
                throw new MqttProtocolException($"packet type {(int)type} is reserved in MQTT {(V5 ? "5.0" : "3.1.1")}");
        }
    }

    private MqttPacket Decode(MqttControlPacketType type, int flags, ReadOnlySequence<byte> body)
    {
        var name = type.ToString().ToUpperInvariant();
        var r = new MqttBodyReader(body, name);
        MqttPacket packet = type switch
        {
            MqttControlPacketType.Connect => DecodeConnect(ref r),
            MqttControlPacketType.ConnAck => DecodeConnAck(ref r),
            MqttControlPacketType.Publish => DecodePublish(ref r, flags),
            MqttControlPacketType.PubAck => DecodePublishResponse(ref r, new MqttPubAckPacket()),
            MqttControlPacketType.PubRec => DecodePublishResponse(ref r, new MqttPubRecPacket()),
            MqttControlPacketType.PubRel => DecodePublishResponse(ref r, new MqttPubRelPacket()),
            MqttControlPacketType.PubComp => DecodePublishResponse(ref r, new MqttPubCompPacket()),
            MqttControlPacketType.Subscribe => DecodeSubscribe(ref r),
            MqttControlPacketType.SubAck => DecodeSubAck(ref r),
            MqttControlPacketType.Unsubscribe => DecodeUnsubscribe(ref r),
            MqttControlPacketType.UnsubAck => DecodeUnsubAck(ref r),
            MqttControlPacketType.PingReq => MqttPingReqPacket.Instance,
            MqttControlPacketType.PingResp => MqttPingRespPacket.Instance,
            MqttControlPacketType.Disconnect => DecodeDisconnect(ref r),
            _ => DecodeAuth(ref r),
        };
        r.EnsureEnd();
        return packet;
    }

    private static MqttReasonCode ReadReasonCode(ref MqttBodyReader r, string packetName)
    {
        var b = r.ReadByte();
        if (!Enum.IsDefined((MqttReasonCode)b))
            throw new MqttProtocolException($"{packetName}: unknown reason code 0x{b:X2}", MqttReasonCode.ProtocolError);
        return (MqttReasonCode)b;
    }

    private static ushort ReadPacketIdentifier(ref MqttBodyReader r, string packetName)
    {
        var id = r.ReadUInt16();
        if (id == 0)
            throw new MqttProtocolException($"{packetName}: packet identifier 0 [MQTT-2.2.1-3]", MqttReasonCode.ProtocolError);
        return id;
    }

    private static string ReadTopicFilter(ref MqttBodyReader r, string packetName)
    {
        var filter = r.ReadString();
        if (!MqttTopic.IsValidTopicFilter(filter))
            throw new MqttProtocolException($"{packetName}: '{filter}' is not a valid topic filter", MqttReasonCode.TopicFilterInvalid);
        return filter;
    }

    // ---- CONNECT (section 3.1) ----

    private static MqttConnectPacket DecodeConnect(ref MqttBodyReader r)
    {
        const string Name = "CONNECT";
        var protocolName = r.ReadString();
        var level = r.ReadByte();
        if (protocolName != "MQTT" || level is not (4 or 5))
            throw new MqttProtocolException($"CONNECT: unsupported protocol '{protocolName}' level {level}", MqttReasonCode.UnsupportedProtocolVersion);
        var v5 = level == 5;
        var connectFlags = r.ReadByte();
        if ((connectFlags & 0x01) != 0)
            throw new MqttProtocolException("CONNECT: reserved connect flag set [MQTT-3.1.2-3]");
        var will = (connectFlags & 0x04) != 0;
        var willQoS = (connectFlags >> 3) & 0x03;
        var willRetain = (connectFlags & 0x20) != 0;
        var hasPassword = (connectFlags & 0x40) != 0;
        var hasUsername = (connectFlags & 0x80) != 0;
        if (willQoS == 3)
            throw new MqttProtocolException("CONNECT: will QoS 3 is reserved [MQTT-3.1.2-14]");
        if (!will && (willQoS != 0 || willRetain))
            throw new MqttProtocolException("CONNECT: will QoS/retain set without the will flag [MQTT-3.1.2-13]");
        if (!v5 && hasPassword && !hasUsername)
            throw new MqttProtocolException("CONNECT: password without user name [MQTT-3.1.2-22]");

        var p = new MqttConnectPacket
        {
            ProtocolVersion = (MqttProtocolVersion)level,
            CleanSession = (connectFlags & 0x02) != 0,
            KeepAlivePeriod = r.ReadUInt16(),
        };
        if (v5 && MqttPropertyBag.Read(ref r, MqttPropertyContext.Connect, Name) is { } props)
        {
            p.SessionExpiryInterval = props.SessionExpiryInterval;
            p.ReceiveMaximum = props.ReceiveMaximum;
            p.MaximumPacketSize = props.MaximumPacketSize;
            p.TopicAliasMaximum = props.TopicAliasMaximum;
            p.RequestResponseInformation = props.RequestResponseInformation;
            p.RequestProblemInformation = props.RequestProblemInformation;
            p.AuthenticationMethod = props.AuthenticationMethod;
            p.AuthenticationData = props.AuthenticationData;
            p.UserProperties = props.UserProperties ?? [];
        }

        p.ClientId = r.ReadString();
        if (will)
        {
            if (v5 && MqttPropertyBag.Read(ref r, MqttPropertyContext.Will, Name) is { } willProps)
            {
                p.WillDelayInterval = willProps.WillDelayInterval;
                p.WillPayloadFormatIndicator = willProps.PayloadFormatIndicator;
                p.WillMessageExpiryInterval = willProps.MessageExpiryInterval;
                p.WillContentType = willProps.ContentType;
                p.WillResponseTopic = willProps.ResponseTopic;
                p.WillCorrelationData = willProps.CorrelationData;
                p.WillUserProperties = willProps.UserProperties ?? [];
            }

            p.WillTopic = r.ReadString();
            if (!MqttTopic.IsValidTopicName(p.WillTopic))
                throw new MqttProtocolException($"CONNECT: will topic '{p.WillTopic}' is not a valid topic name", MqttReasonCode.TopicNameInvalid);
            p.WillPayload = r.ReadBinary();
            p.WillQoS = (MqttQualityOfServiceLevel)willQoS;
            p.WillRetain = willRetain;
        }

        if (hasUsername)
            p.Username = r.ReadString();
        if (hasPassword)
            p.Password = r.ReadBinary();
        return p;
    }

    private void EncodeConnect(MqttConnectPacket p)
    {
        var v5 = p.ProtocolVersion == MqttProtocolVersion.V500;
        if (p.ProtocolVersion is not (MqttProtocolVersion.V311 or MqttProtocolVersion.V500))
            throw new ArgumentException($"unsupported protocol version {p.ProtocolVersion}", nameof(p));
        if (p.WillTopic is not null)
            MqttTopic.ValidateTopicName(p.WillTopic);
        if (!v5 && p.Password is not null && p.Username is null)
            throw new ArgumentException("MQTT 3.1.1 does not allow a password without a user name [MQTT-3.1.2-22]", nameof(p));
        _body.WriteString("MQTT");
        _body.WriteByte((byte)p.ProtocolVersion);
        byte connectFlags = 0;
        if (p.CleanSession) connectFlags |= 0x02;
        if (p.WillTopic is not null)
        {
            connectFlags |= 0x04;
            connectFlags |= (byte)(((byte)p.WillQoS & 0x03) << 3);
            if (p.WillRetain) connectFlags |= 0x20;
        }

        if (p.Password is not null) connectFlags |= 0x40;
        if (p.Username is not null) connectFlags |= 0x80;
        _body.WriteByte(connectFlags);
        _body.WriteUInt16(p.KeepAlivePeriod);
        if (v5)
        {
            _properties.Reset();
            _properties.Property(MqttPropertyId.SessionExpiryInterval, p.SessionExpiryInterval);
            _properties.Property(MqttPropertyId.ReceiveMaximum, p.ReceiveMaximum);
            _properties.Property(MqttPropertyId.MaximumPacketSize, p.MaximumPacketSize);
            _properties.Property(MqttPropertyId.TopicAliasMaximum, p.TopicAliasMaximum);
            _properties.Property(MqttPropertyId.RequestResponseInformation, p.RequestResponseInformation);
            _properties.Property(MqttPropertyId.RequestProblemInformation, p.RequestProblemInformation);
            _properties.Property(MqttPropertyId.AuthenticationMethod, p.AuthenticationMethod);
            _properties.Property(MqttPropertyId.AuthenticationData, p.AuthenticationData);
            _properties.UserProperties(p.UserProperties);
            FlushProperties();
        }

        _body.WriteString(p.ClientId);
        if (p.WillTopic is not null)
        {
            if (v5)
            {
                _properties.Reset();
                _properties.Property(MqttPropertyId.WillDelayInterval, p.WillDelayInterval);
                _properties.Property(MqttPropertyId.PayloadFormatIndicator, p.WillPayloadFormatIndicator);
                _properties.Property(MqttPropertyId.MessageExpiryInterval, p.WillMessageExpiryInterval);
                _properties.Property(MqttPropertyId.ContentType, p.WillContentType);
                _properties.Property(MqttPropertyId.ResponseTopic, p.WillResponseTopic);
                _properties.Property(MqttPropertyId.CorrelationData, p.WillCorrelationData);
                _properties.UserProperties(p.WillUserProperties);
                FlushProperties();
            }

            _body.WriteString(p.WillTopic);
            _body.WriteBinary(p.WillPayload);
        }

        if (p.Username is not null) _body.WriteString(p.Username);
        if (p.Password is not null) _body.WriteBinary(p.Password);
    }

    private void FlushProperties()
    {
        _body.WriteVariableByteInteger((uint)_properties.Length);
        _body.WriteRaw(_properties.WrittenSpan);
    }

    // ---- CONNACK (section 3.2) ----

    private static readonly MqttReasonCode[] V311ConnectReturnCodes =
    [
        MqttReasonCode.Success, MqttReasonCode.UnsupportedProtocolVersion, MqttReasonCode.ClientIdentifierNotValid,
        MqttReasonCode.ServerUnavailable, MqttReasonCode.BadUserNameOrPassword, MqttReasonCode.NotAuthorized,
    ];

    private MqttConnAckPacket DecodeConnAck(ref MqttBodyReader r)
    {
        const string Name = "CONNACK";
        var ackFlags = r.ReadByte();
        if ((ackFlags & 0xFE) != 0)
            throw new MqttProtocolException("CONNACK: reserved acknowledge flags set [MQTT-3.2.2-1]");
        var p = new MqttConnAckPacket { SessionPresent = (ackFlags & 0x01) != 0 };
        if (V5)
        {
            p.ReasonCode = ReadReasonCode(ref r, Name);
            if (!r.End && MqttPropertyBag.Read(ref r, MqttPropertyContext.ConnAck, Name) is { } props)
            {
                p.SessionExpiryInterval = props.SessionExpiryInterval;
                p.ReceiveMaximum = props.ReceiveMaximum;
                p.MaximumQoS = props.MaximumQoS;
                p.RetainAvailable = props.RetainAvailable;
                p.MaximumPacketSize = props.MaximumPacketSize;
                p.AssignedClientIdentifier = props.AssignedClientIdentifier;
                p.TopicAliasMaximum = props.TopicAliasMaximum;
                p.ReasonString = props.ReasonString;
                p.WildcardSubscriptionAvailable = props.WildcardSubscriptionAvailable;
                p.SubscriptionIdentifiersAvailable = props.SubscriptionIdentifierAvailable;
                p.SharedSubscriptionAvailable = props.SharedSubscriptionAvailable;
                p.ServerKeepAlive = props.ServerKeepAlive;
                p.ResponseInformation = props.ResponseInformation;
                p.ServerReference = props.ServerReference;
                p.AuthenticationMethod = props.AuthenticationMethod;
                p.AuthenticationData = props.AuthenticationData;
                p.UserProperties = props.UserProperties ?? [];
            }
        }
        else
        {
            var code = r.ReadByte();
            if (code >= V311ConnectReturnCodes.Length)
                throw new MqttProtocolException($"CONNACK: unknown return code {code}", MqttReasonCode.ProtocolError);
            p.ReasonCode = V311ConnectReturnCodes[code];
        }

        if (p.SessionPresent && p.ReasonCode != MqttReasonCode.Success)
            throw new MqttProtocolException("CONNACK: session present with a failure reason code [MQTT-3.2.2-6]", MqttReasonCode.ProtocolError);
        return p;
    }

    private void EncodeConnAck(MqttConnAckPacket p)
    {
        _body.WriteByte(p.SessionPresent ? (byte)1 : (byte)0);
        if (!V5)
        {
            var index = Array.IndexOf(V311ConnectReturnCodes, p.ReasonCode);
            if (index < 0)
                throw new ArgumentException($"reason code {p.ReasonCode} has no MQTT 3.1.1 CONNACK return code", nameof(p));
            _body.WriteByte((byte)index);
            return;
        }

        _body.WriteByte((byte)p.ReasonCode);
        _properties.Reset();
        _properties.Property(MqttPropertyId.SessionExpiryInterval, p.SessionExpiryInterval);
        _properties.Property(MqttPropertyId.ReceiveMaximum, p.ReceiveMaximum);
        _properties.Property(MqttPropertyId.MaximumQoS, p.MaximumQoS);
        _properties.Property(MqttPropertyId.RetainAvailable, p.RetainAvailable);
        _properties.Property(MqttPropertyId.MaximumPacketSize, p.MaximumPacketSize);
        _properties.Property(MqttPropertyId.AssignedClientIdentifier, p.AssignedClientIdentifier);
        _properties.Property(MqttPropertyId.TopicAliasMaximum, p.TopicAliasMaximum);
        _properties.Property(MqttPropertyId.ReasonString, p.ReasonString);
        _properties.Property(MqttPropertyId.WildcardSubscriptionAvailable, p.WildcardSubscriptionAvailable);
        _properties.Property(MqttPropertyId.SubscriptionIdentifierAvailable, p.SubscriptionIdentifiersAvailable);
        _properties.Property(MqttPropertyId.SharedSubscriptionAvailable, p.SharedSubscriptionAvailable);
        _properties.Property(MqttPropertyId.ServerKeepAlive, p.ServerKeepAlive);
        _properties.Property(MqttPropertyId.ResponseInformation, p.ResponseInformation);
        _properties.Property(MqttPropertyId.ServerReference, p.ServerReference);
        _properties.Property(MqttPropertyId.AuthenticationMethod, p.AuthenticationMethod);
        _properties.Property(MqttPropertyId.AuthenticationData, p.AuthenticationData);
        _properties.UserProperties(p.UserProperties);
        FlushProperties();
    }

    // ---- PUBLISH (section 3.3) ----

    private MqttPublishPacket DecodePublish(ref MqttBodyReader r, int flags)
    {
        const string Name = "PUBLISH";
        var p = new MqttPublishPacket
        {
            Retain = (flags & 0x01) != 0,
            QualityOfServiceLevel = (MqttQualityOfServiceLevel)((flags >> 1) & 0x03),
            Dup = (flags & 0x08) != 0,
            Topic = r.ReadString(),
        };
        if (p.QualityOfServiceLevel != MqttQualityOfServiceLevel.AtMostOnce)
            p.PacketIdentifier = ReadPacketIdentifier(ref r, Name);
        if (V5 && MqttPropertyBag.Read(ref r, MqttPropertyContext.Publish, Name) is { } props)
        {
            p.PayloadFormatIndicator = props.PayloadFormatIndicator;
            p.MessageExpiryInterval = props.MessageExpiryInterval;
            p.TopicAlias = props.TopicAlias;
            p.ResponseTopic = props.ResponseTopic;
            p.CorrelationData = props.CorrelationData;
            p.ContentType = props.ContentType;
            p.SubscriptionIdentifiers = props.SubscriptionIdentifiers ?? [];
            p.UserProperties = props.UserProperties ?? [];
        }

        // An empty topic is only allowed together with a topic alias (MQTT 5.0 section 3.3.2.3.4).
        if (!(p.Topic.Length == 0 && p.TopicAlias is not null) && !MqttTopic.IsValidTopicName(p.Topic))
            throw new MqttProtocolException($"PUBLISH: '{p.Topic}' is not a valid topic name [MQTT-3.3.2-2]", MqttReasonCode.TopicNameInvalid);
        p.Payload = r.ReadRemaining();
        return p;
    }

    private byte EncodePublish(MqttPublishPacket p)
    {
        if (p.QualityOfServiceLevel > MqttQualityOfServiceLevel.ExactlyOnce)
            throw new ArgumentException($"QoS {(int)p.QualityOfServiceLevel} does not exist", nameof(p));
        if (p.QualityOfServiceLevel == MqttQualityOfServiceLevel.AtMostOnce && (p.PacketIdentifier != 0 || p.Dup))
            throw new ArgumentException("QoS 0 PUBLISH carries neither a packet identifier nor DUP [MQTT-2.2.1-2]", nameof(p));
        if (p.QualityOfServiceLevel != MqttQualityOfServiceLevel.AtMostOnce && p.PacketIdentifier == 0)
            throw new ArgumentException("QoS 1/2 PUBLISH needs a non-zero packet identifier", nameof(p));
        if (!(V5 && p.Topic.Length == 0 && p.TopicAlias is not null))
            MqttTopic.ValidateTopicName(p.Topic);
        _body.WriteString(p.Topic);
        if (p.QualityOfServiceLevel != MqttQualityOfServiceLevel.AtMostOnce)
            _body.WriteUInt16(p.PacketIdentifier);
        if (V5)
        {
            _properties.Reset();
            _properties.Property(MqttPropertyId.PayloadFormatIndicator, p.PayloadFormatIndicator);
            _properties.Property(MqttPropertyId.MessageExpiryInterval, p.MessageExpiryInterval);
            _properties.Property(MqttPropertyId.TopicAlias, p.TopicAlias);
            _properties.Property(MqttPropertyId.ResponseTopic, p.ResponseTopic);
            _properties.Property(MqttPropertyId.CorrelationData, p.CorrelationData);
            foreach (var id in p.SubscriptionIdentifiers)
                _properties.VariableByteIntegerProperty(MqttPropertyId.SubscriptionIdentifier, id);
            _properties.Property(MqttPropertyId.ContentType, p.ContentType);
            _properties.UserProperties(p.UserProperties);
            FlushProperties();
        }

        _body.WriteRaw(p.Payload.Span);
        return (byte)((p.Dup ? 0x08 : 0) | ((byte)p.QualityOfServiceLevel << 1) | (p.Retain ? 0x01 : 0));
    }

    // ---- PUBACK, PUBREC, PUBREL, PUBCOMP (sections 3.4 to 3.7) ----

    private MqttPublishResponsePacket DecodePublishResponse(ref MqttBodyReader r, MqttPublishResponsePacket p)
    {
        var name = p.Type.ToString().ToUpperInvariant();
        p.PacketIdentifier = ReadPacketIdentifier(ref r, name);
        if (!V5 || r.End)
            return p; // 5.0: remaining length 2 means reason code 0x00 and no properties (section 3.4.2.1)
        p.ReasonCode = ReadReasonCode(ref r, name);
        if (!r.End && MqttPropertyBag.Read(ref r, MqttPropertyContext.PubResponse, name) is { } props)
        {
            p.ReasonString = props.ReasonString;
            p.UserProperties = props.UserProperties ?? [];
        }

        return p;
    }

    private void EncodePublishResponse(MqttPublishResponsePacket p)
    {
        if (p.PacketIdentifier == 0)
            throw new ArgumentException($"{p.Type} needs a non-zero packet identifier", nameof(p));
        _body.WriteUInt16(p.PacketIdentifier);
        if (!V5)
            return;
        var hasProperties = p.ReasonString is not null || p.UserProperties.Count > 0;
        if (p.ReasonCode == MqttReasonCode.Success && !hasProperties)
            return;
        _body.WriteByte((byte)p.ReasonCode);
        if (!hasProperties)
            return;
        _properties.Reset();
        _properties.Property(MqttPropertyId.ReasonString, p.ReasonString);
        _properties.UserProperties(p.UserProperties);
        FlushProperties();
    }

    // ---- SUBSCRIBE, SUBACK (sections 3.8, 3.9) ----

    private MqttSubscribePacket DecodeSubscribe(ref MqttBodyReader r)
    {
        const string Name = "SUBSCRIBE";
        var p = new MqttSubscribePacket { PacketIdentifier = ReadPacketIdentifier(ref r, Name) };
        if (V5 && MqttPropertyBag.Read(ref r, MqttPropertyContext.Subscribe, Name) is { } props)
        {
            p.SubscriptionIdentifier = props.SubscriptionIdentifiers?[0];
            p.UserProperties = props.UserProperties ?? [];
        }

        while (!r.End)
        {
            var topic = ReadTopicFilter(ref r, Name);
            var options = r.ReadByte();
            if ((options & (V5 ? 0xC0 : 0xFC)) != 0)
                throw new MqttProtocolException($"SUBSCRIBE: reserved subscription option bits set (0x{options:X2}) [MQTT-3.8.3-5]");
            if ((options & 0x03) == 3)
                throw new MqttProtocolException("SUBSCRIBE: QoS 3 is reserved [MQTT-3-8.3-4]");
            if (((options >> 4) & 0x03) == 3)
                throw new MqttProtocolException("SUBSCRIBE: retain handling 3 is reserved");
            p.TopicFilters.Add(new MqttTopicFilter
            {
                Topic = topic,
                QualityOfServiceLevel = (MqttQualityOfServiceLevel)(options & 0x03),
                NoLocal = (options & 0x04) != 0,
                RetainAsPublished = (options & 0x08) != 0,
                RetainHandling = (MqttRetainHandling)((options >> 4) & 0x03),
            });
        }

        if (p.TopicFilters.Count == 0)
            throw new MqttProtocolException("SUBSCRIBE: no topic filter [MQTT-3.8.3-3]", MqttReasonCode.ProtocolError);
        return p;
    }

    private void EncodeSubscribe(MqttSubscribePacket p)
    {
        if (p.PacketIdentifier == 0)
            throw new ArgumentException("SUBSCRIBE needs a non-zero packet identifier", nameof(p));
        if (p.TopicFilters.Count == 0)
            throw new ArgumentException("SUBSCRIBE needs at least one topic filter", nameof(p));
        _body.WriteUInt16(p.PacketIdentifier);
        if (V5)
        {
            _properties.Reset();
            _properties.VariableByteIntegerProperty(MqttPropertyId.SubscriptionIdentifier, p.SubscriptionIdentifier);
            _properties.UserProperties(p.UserProperties);
            FlushProperties();
        }

        foreach (var f in p.TopicFilters)
        {
            MqttTopic.ValidateTopicFilter(f.Topic);
            if (f.QualityOfServiceLevel > MqttQualityOfServiceLevel.ExactlyOnce || f.RetainHandling > MqttRetainHandling.DoNotSendOnSubscribe)
                throw new ArgumentException($"invalid options for topic filter {f.Topic}", nameof(p));
            _body.WriteString(f.Topic);
            var options = (byte)f.QualityOfServiceLevel;
            if (V5)
            {
                if (f.NoLocal) options |= 0x04;
                if (f.RetainAsPublished) options |= 0x08;
                options |= (byte)((byte)f.RetainHandling << 4);
            }

            _body.WriteByte(options);
        }
    }

    private MqttSubAckPacket DecodeSubAck(ref MqttBodyReader r)
    {
        const string Name = "SUBACK";
        var p = new MqttSubAckPacket { PacketIdentifier = ReadPacketIdentifier(ref r, Name) };
        if (V5 && MqttPropertyBag.Read(ref r, MqttPropertyContext.SubAck, Name) is { } props)
        {
            p.ReasonString = props.ReasonString;
            p.UserProperties = props.UserProperties ?? [];
        }

        while (!r.End)
        {
            if (V5)
            {
                p.ReasonCodes.Add(ReadReasonCode(ref r, Name));
                continue;
            }

            var code = r.ReadByte();
            if (code is not (0 or 1 or 2 or 0x80))
                throw new MqttProtocolException($"SUBACK: return code 0x{code:X2} is reserved [MQTT-3.9.3-2]", MqttReasonCode.ProtocolError);
            p.ReasonCodes.Add((MqttReasonCode)code);
        }

        if (p.ReasonCodes.Count == 0)
            throw new MqttProtocolException("SUBACK: no return code", MqttReasonCode.ProtocolError);
        return p;
    }

    private void EncodeSubAck(MqttSubAckPacket p)
    {
        _body.WriteUInt16(p.PacketIdentifier);
        if (V5)
        {
            _properties.Reset();
            _properties.Property(MqttPropertyId.ReasonString, p.ReasonString);
            _properties.UserProperties(p.UserProperties);
            FlushProperties();
        }

        foreach (var code in p.ReasonCodes)
        {
            if (!V5 && code is not (MqttReasonCode.Success or MqttReasonCode.GrantedQoS1 or MqttReasonCode.GrantedQoS2))
            {
                _body.WriteByte(0x80);
                continue;
            }

            _body.WriteByte((byte)code);
        }
    }

    // ---- UNSUBSCRIBE, UNSUBACK (sections 3.10, 3.11) ----

    private MqttUnsubscribePacket DecodeUnsubscribe(ref MqttBodyReader r)
    {
        const string Name = "UNSUBSCRIBE";
        var p = new MqttUnsubscribePacket { PacketIdentifier = ReadPacketIdentifier(ref r, Name) };
        if (V5 && MqttPropertyBag.Read(ref r, MqttPropertyContext.Unsubscribe, Name) is { } props)
            p.UserProperties = props.UserProperties ?? [];
        while (!r.End)
            p.TopicFilters.Add(ReadTopicFilter(ref r, Name));
        if (p.TopicFilters.Count == 0)
            throw new MqttProtocolException("UNSUBSCRIBE: no topic filter [MQTT-3.10.3-2]", MqttReasonCode.ProtocolError);
        return p;
    }

    private void EncodeUnsubscribe(MqttUnsubscribePacket p)
    {
        if (p.PacketIdentifier == 0)
            throw new ArgumentException("UNSUBSCRIBE needs a non-zero packet identifier", nameof(p));
        if (p.TopicFilters.Count == 0)
            throw new ArgumentException("UNSUBSCRIBE needs at least one topic filter", nameof(p));
        _body.WriteUInt16(p.PacketIdentifier);
        if (V5)
        {
            _properties.Reset();
            _properties.UserProperties(p.UserProperties);
            FlushProperties();
        }

        foreach (var f in p.TopicFilters)
        {
            MqttTopic.ValidateTopicFilter(f);
            _body.WriteString(f);
        }
    }

    private MqttUnsubAckPacket DecodeUnsubAck(ref MqttBodyReader r)
    {
        const string Name = "UNSUBACK";
        var p = new MqttUnsubAckPacket { PacketIdentifier = ReadPacketIdentifier(ref r, Name) };
        if (!V5)
            return p;
        if (MqttPropertyBag.Read(ref r, MqttPropertyContext.UnsubAck, Name) is { } props)
        {
            p.ReasonString = props.ReasonString;
            p.UserProperties = props.UserProperties ?? [];
        }

        while (!r.End)
            p.ReasonCodes.Add(ReadReasonCode(ref r, Name));
        return p;
    }

    private void EncodeUnsubAck(MqttUnsubAckPacket p)
    {
        _body.WriteUInt16(p.PacketIdentifier);
        if (!V5)
            return;
        _properties.Reset();
        _properties.Property(MqttPropertyId.ReasonString, p.ReasonString);
        _properties.UserProperties(p.UserProperties);
        FlushProperties();
        foreach (var code in p.ReasonCodes)
            _body.WriteByte((byte)code);
    }

    // ---- DISCONNECT, AUTH (sections 3.14, 3.15) ----

    private MqttDisconnectPacket DecodeDisconnect(ref MqttBodyReader r)
    {
        const string Name = "DISCONNECT";
        var p = new MqttDisconnectPacket();
        if (!V5 || r.End)
            return p;
        p.ReasonCode = ReadReasonCode(ref r, Name);
        if (!r.End && MqttPropertyBag.Read(ref r, MqttPropertyContext.Disconnect, Name) is { } props)
        {
            p.SessionExpiryInterval = props.SessionExpiryInterval;
            p.ReasonString = props.ReasonString;
            p.ServerReference = props.ServerReference;
            p.UserProperties = props.UserProperties ?? [];
        }

        return p;
    }

    private void EncodeDisconnect(MqttDisconnectPacket p)
    {
        if (!V5)
            return;
        var hasProperties = p.SessionExpiryInterval is not null || p.ReasonString is not null || p.ServerReference is not null || p.UserProperties.Count > 0;
        if (p.ReasonCode == MqttReasonCode.Success && !hasProperties)
            return;
        _body.WriteByte((byte)p.ReasonCode);
        if (!hasProperties)
            return; // remaining length 1: no property length (section 3.14.2.2.1)
        _properties.Reset();
        _properties.Property(MqttPropertyId.SessionExpiryInterval, p.SessionExpiryInterval);
        _properties.Property(MqttPropertyId.ReasonString, p.ReasonString);
        _properties.Property(MqttPropertyId.ServerReference, p.ServerReference);
        _properties.UserProperties(p.UserProperties);
        FlushProperties();
    }

    private static MqttAuthPacket DecodeAuth(ref MqttBodyReader r)
    {
        const string Name = "AUTH";
        var p = new MqttAuthPacket();
        if (r.End)
            return p;
        p.ReasonCode = ReadReasonCode(ref r, Name);
        if (p.ReasonCode is not (MqttReasonCode.Success or MqttReasonCode.ContinueAuthentication or MqttReasonCode.ReAuthenticate))
            throw new MqttProtocolException($"AUTH: reason code {p.ReasonCode} is not allowed", MqttReasonCode.ProtocolError);
        if (!r.End && MqttPropertyBag.Read(ref r, MqttPropertyContext.Auth, Name) is { } props)
        {
            p.AuthenticationMethod = props.AuthenticationMethod;
            p.AuthenticationData = props.AuthenticationData;
            p.ReasonString = props.ReasonString;
            p.UserProperties = props.UserProperties ?? [];
        }

        return p;
    }

    private void EncodeAuth(MqttAuthPacket p)
    {
        if (!V5)
            throw new ArgumentException("AUTH exists only in MQTT 5.0", nameof(p));
        var hasProperties = p.AuthenticationMethod is not null || p.AuthenticationData is not null || p.ReasonString is not null || p.UserProperties.Count > 0;
        if (p.ReasonCode == MqttReasonCode.Success && !hasProperties)
            return;
        _body.WriteByte((byte)p.ReasonCode);
        if (!hasProperties)
            return;
        _properties.Reset();
        _properties.Property(MqttPropertyId.AuthenticationMethod, p.AuthenticationMethod);
        _properties.Property(MqttPropertyId.AuthenticationData, p.AuthenticationData);
        _properties.Property(MqttPropertyId.ReasonString, p.ReasonString);
        _properties.UserProperties(p.UserProperties);
        FlushProperties();
    }
}
