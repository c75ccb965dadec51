using System.Buffers;
using System.Text;
using System.Text.Json;
using Pinhole.Transport.Mqtt;
using Pinhole.Transport.Mqtt.Formatter;
using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Tests.Mqtt;

/// <summary>Sample packets with every field a version allows set, and helpers to encode, decode and compare them.</summary>
internal static class MqttTestPackets
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public static byte[] Encode(MqttProtocolVersion version, MqttPacket packet)
    {
        var buffer = new ArrayBufferWriter<byte>();
        new MqttPacketFormatter(version).Encode(packet, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    public static MqttPacket Decode(MqttProtocolVersion version, byte[] bytes, uint maximumPacketSize = 1024 * 1024) =>
        new MqttPacketFormatter(version, maximumPacketSize).Parse(new ReadOnlySequence<byte>(bytes));

    /// <summary>A deep, type-aware rendering for comparing packets field by field.</summary>
    public static string Describe(MqttPacket packet) => packet.GetType().Name + JsonSerializer.Serialize(packet, packet.GetType(), Json);

    public static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    public static IEnumerable<(string Name, MqttPacket Packet)> All(MqttProtocolVersion version)
    {
        var v5 = version == MqttProtocolVersion.V500;
        List<MqttUserProperty> Props(string s) => v5 ? [new("k", s), new("k", s + "2"), new("ünï", "çødé")] : [];

        yield return ("connect-minimal", new MqttConnectPacket { ProtocolVersion = version, ClientId = "c1", KeepAlivePeriod = 60 });
        yield return ("connect-full", new MqttConnectPacket
        {
            ProtocolVersion = version,
            ClientId = "pinhole-gw1",
            CleanSession = false,
            KeepAlivePeriod = 30,
            Username = "gw1",
            Password = [1, 2, 3, 0, 255],
            WillTopic = "pinhole/gw1/status",
            WillPayload = Encoding.UTF8.GetBytes("offline"),
            WillQoS = MqttQualityOfServiceLevel.AtLeastOnce,
            WillRetain = true,
            WillDelayInterval = v5 ? 5u : null,
            WillPayloadFormatIndicator = v5 ? (byte)1 : null,
            WillMessageExpiryInterval = v5 ? 3600u : null,
            WillContentType = v5 ? "text/plain" : null,
            WillResponseTopic = v5 ? "reply/here" : null,
            WillCorrelationData = v5 ? [9, 8, 7] : null,
            WillUserProperties = Props("will"),
            SessionExpiryInterval = v5 ? 86400u : null,
            ReceiveMaximum = v5 ? (ushort)20 : null,
            MaximumPacketSize = v5 ? 65536u : null,
            TopicAliasMaximum = v5 ? (ushort)10 : null,
            RequestResponseInformation = v5 ? (byte)1 : null,
            RequestProblemInformation = v5 ? (byte)0 : null,
            AuthenticationMethod = v5 ? "SCRAM-SHA-1" : null,
            AuthenticationData = v5 ? [4, 5] : null,
            UserProperties = Props("connect"),
        });
        yield return ("connack-accepted", new MqttConnAckPacket { SessionPresent = true });
        yield return ("connack-refused", new MqttConnAckPacket { ReasonCode = MqttReasonCode.NotAuthorized });
        if (v5)
        {
            yield return ("connack-full", new MqttConnAckPacket
            {
                ReasonCode = MqttReasonCode.Success,
                SessionExpiryInterval = 100,
                ReceiveMaximum = 20,
                MaximumQoS = 1,
                RetainAvailable = 0,
                MaximumPacketSize = 100_000,
                AssignedClientIdentifier = "auto-1234",
                TopicAliasMaximum = 10,
                ReasonString = "welcome",
                WildcardSubscriptionAvailable = 1,
                SubscriptionIdentifiersAvailable = 1,
                SharedSubscriptionAvailable = 0,
                ServerKeepAlive = 45,
                ResponseInformation = "resp",
                ServerReference = "other:1883",
                AuthenticationMethod = "m",
                AuthenticationData = [1],
                UserProperties = Props("connack"),
            });
        }

        yield return ("publish-qos0", new MqttPublishPacket { Topic = "pinhole/gw1/sensors/cpu_temp", Payload = Encoding.UTF8.GetBytes("{\"value\":23.4}") });
        yield return ("publish-qos0-empty", new MqttPublishPacket { Topic = "t", Retain = true });
        yield return ("publish-qos1-dup", new MqttPublishPacket { Topic = "a/b", Payload = new byte[300], QualityOfServiceLevel = MqttQualityOfServiceLevel.AtLeastOnce, PacketIdentifier = 1, Dup = true });
        yield return ("publish-qos2-full", new MqttPublishPacket
        {
            Topic = "température/é",
            Payload = Enumerable.Range(0, 200).Select(i => (byte)i).ToArray(),
            QualityOfServiceLevel = MqttQualityOfServiceLevel.ExactlyOnce,
            Retain = true,
            PacketIdentifier = 65535,
            PayloadFormatIndicator = v5 ? (byte)0 : null,
            MessageExpiryInterval = v5 ? 60u : null,
            TopicAlias = v5 ? (ushort)3 : null,
            ResponseTopic = v5 ? "r/t" : null,
            CorrelationData = v5 ? [1, 2] : null,
            ContentType = v5 ? "application/json" : null,
            SubscriptionIdentifiers = v5 ? [1, 268_435_455] : [],
            UserProperties = Props("publish"),
        });
        if (v5)
            yield return ("publish-alias-only", new MqttPublishPacket { Topic = "", TopicAlias = 7, Payload = new byte[] { 1 } });

        foreach (var (name, make) in new (string, Func<MqttPublishResponsePacket>)[]
                 {
                     ("puback", () => new MqttPubAckPacket()), ("pubrec", () => new MqttPubRecPacket()),
                     ("pubrel", () => new MqttPubRelPacket()), ("pubcomp", () => new MqttPubCompPacket()),
                 })
        {
            var plain = make();
            plain.PacketIdentifier = 42;
            yield return (name, plain);
            if (!v5)
                continue;
            var coded = make();
            coded.PacketIdentifier = 43;
            coded.ReasonCode = name is "pubrel" or "pubcomp" ? MqttReasonCode.PacketIdentifierNotFound : MqttReasonCode.NoMatchingSubscribers;
            yield return (name + "-reason", coded);
            var full = make();
            full.PacketIdentifier = 44;
            full.ReasonCode = name is "pubrel" or "pubcomp" ? MqttReasonCode.Success : MqttReasonCode.NotAuthorized;
            full.ReasonString = "because";
            full.UserProperties = Props(name);
            yield return (name + "-full", full);
        }

        yield return ("subscribe", new MqttSubscribePacket
        {
            PacketIdentifier = 7,
            SubscriptionIdentifier = v5 ? 12345u : null,
            UserProperties = Props("sub"),
            TopicFilters =
            [
                new MqttTopicFilter { Topic = "pinhole/+/sensors/#", QualityOfServiceLevel = MqttQualityOfServiceLevel.AtLeastOnce },
                new MqttTopicFilter
                {
                    Topic = "#",
                    QualityOfServiceLevel = MqttQualityOfServiceLevel.ExactlyOnce,
                    NoLocal = v5,
                    RetainAsPublished = v5,
                    RetainHandling = v5 ? MqttRetainHandling.DoNotSendOnSubscribe : MqttRetainHandling.SendAtSubscribe,
                },
                new MqttTopicFilter { Topic = "+", RetainHandling = v5 ? MqttRetainHandling.SendAtSubscribeIfNewSubscriptionOnly : MqttRetainHandling.SendAtSubscribe },
            ],
        });
        yield return ("suback", new MqttSubAckPacket
        {
            PacketIdentifier = 7,
            ReasonCodes = [MqttReasonCode.GrantedQoS1, MqttReasonCode.GrantedQoS2, MqttReasonCode.Success, MqttReasonCode.UnspecifiedError],
            ReasonString = v5 ? "partly" : null,
            UserProperties = Props("suback"),
        });
        if (v5)
            yield return ("suback-v5-codes", new MqttSubAckPacket { PacketIdentifier = 8, ReasonCodes = [MqttReasonCode.NotAuthorized, MqttReasonCode.TopicFilterInvalid] });
        yield return ("unsubscribe", new MqttUnsubscribePacket { PacketIdentifier = 9, TopicFilters = ["a/b", "c/#"], UserProperties = Props("unsub") });
        yield return ("unsuback", new MqttUnsubAckPacket
        {
            PacketIdentifier = 9,
            ReasonCodes = v5 ? [MqttReasonCode.Success, MqttReasonCode.NoSubscriptionExisted] : [],
            ReasonString = v5 ? "done" : null,
            UserProperties = Props("unsuback"),
        });
        yield return ("pingreq", MqttPingReqPacket.Instance);
        yield return ("pingresp", MqttPingRespPacket.Instance);
        yield return ("disconnect", new MqttDisconnectPacket());
        if (v5)
        {
            yield return ("disconnect-will", new MqttDisconnectPacket { ReasonCode = MqttReasonCode.DisconnectWithWillMessage });
            yield return ("disconnect-full", new MqttDisconnectPacket
            {
                ReasonCode = MqttReasonCode.ServerShuttingDown,
                SessionExpiryInterval = 0,
                ReasonString = "bye",
                ServerReference = "b2",
                UserProperties = Props("disc"),
            });
            yield return ("auth", new MqttAuthPacket());
            yield return ("auth-full", new MqttAuthPacket
            {
                ReasonCode = MqttReasonCode.ContinueAuthentication,
                AuthenticationMethod = "SCRAM-SHA-1",
                AuthenticationData = [1, 2, 3],
                ReasonString = "more",
                UserProperties = Props("auth"),
            });
        }
    }

    public static TheoryData<MqttProtocolVersion, string> Cases()
    {
        var data = new TheoryData<MqttProtocolVersion, string>();
        foreach (var version in new[] { MqttProtocolVersion.V311, MqttProtocolVersion.V500 })
        {
            foreach (var (name, _) in All(version))
                data.Add(version, name);
        }

        return data;
    }

    public static MqttPacket Get(MqttProtocolVersion version, string name) => All(version).Single(p => p.Name == name).Packet;
}

/// <summary>Builds a multi-segment <see cref="ReadOnlySequence{T}"/> from chunks, as a pipe delivers them.</summary>
internal sealed class TestSegment : ReadOnlySequenceSegment<byte>
{
    private TestSegment(ReadOnlyMemory<byte> memory, long runningIndex)
    {
        Memory = memory;
        RunningIndex = runningIndex;
    }

    public static ReadOnlySequence<byte> Create(params byte[][] chunks)
    {
        if (chunks.Length == 0)
            return ReadOnlySequence<byte>.Empty;
        var first = new TestSegment(chunks[0], 0);
        var last = first;
        for (var i = 1; i < chunks.Length; i++)
        {
            var next = new TestSegment(chunks[i], last.RunningIndex + last.Memory.Length);
            last.Next = next;
            last = next;
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}
