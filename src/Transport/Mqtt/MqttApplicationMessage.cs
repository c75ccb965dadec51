using System.Text;
using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Mqtt;

/// <summary>An application message as published or received (the PUBLISH packet without the transport details).</summary>
public sealed class MqttApplicationMessage
{
    /// <summary>Topic name.</summary>
    public string Topic { get; set; } = "";

    /// <summary>Payload bytes.</summary>
    public ReadOnlyMemory<byte> Payload { get; set; }

    /// <summary>Delivery QoS.</summary>
    public MqttQualityOfServiceLevel QualityOfServiceLevel { get; set; }

    /// <summary>Retain flag: the broker keeps the last retained message of a topic for new subscribers.</summary>
    public bool Retain { get; set; }

    /// <summary>On a received message: the broker re-sent it (DUP flag).</summary>
    public bool Dup { get; set; }

    /// <summary>5.0: Content Type.</summary>
    public string? ContentType { get; set; }

    /// <summary>5.0: Response Topic.</summary>
    public string? ResponseTopic { get; set; }

    /// <summary>5.0: Correlation Data.</summary>
    public byte[]? CorrelationData { get; set; }

    /// <summary>5.0: Message Expiry Interval in seconds.</summary>
    public uint? MessageExpiryInterval { get; set; }

    /// <summary>5.0: Payload Format Indicator (1 = UTF-8 text).</summary>
    public byte? PayloadFormatIndicator { get; set; }

    /// <summary>5.0: User Properties.</summary>
    public List<MqttUserProperty> UserProperties { get; set; } = [];

    /// <summary>5.0: on a received message, the identifiers of the subscriptions it matched.</summary>
    public List<uint> SubscriptionIdentifiers { get; set; } = [];

    /// <summary>The payload decoded as UTF-8.</summary>
    public string ConvertPayloadToString() => Encoding.UTF8.GetString(Payload.Span);

    /// <inheritdoc />
    public override string ToString() => $"{Topic} (QoS {(int)QualityOfServiceLevel}{(Retain ? ", retained" : "")}, {Payload.Length} bytes)";
}

/// <summary>Builds an <see cref="MqttApplicationMessage"/> (the shape of MQTTnet's builder).</summary>
public sealed class MqttApplicationMessageBuilder
{
    private readonly MqttApplicationMessage _message = new();

    /// <summary>Sets the topic name.</summary>
    public MqttApplicationMessageBuilder WithTopic(string topic)
    {
        _message.Topic = topic;
        return this;
    }

    /// <summary>Sets the payload.</summary>
    public MqttApplicationMessageBuilder WithPayload(ReadOnlyMemory<byte> payload)
    {
        _message.Payload = payload;
        return this;
    }

    /// <summary>Sets the payload.</summary>
    public MqttApplicationMessageBuilder WithPayload(byte[] payload)
    {
        _message.Payload = payload;
        return this;
    }

    /// <summary>Sets the payload to the UTF-8 bytes of <paramref name="payload"/>.</summary>
    public MqttApplicationMessageBuilder WithPayload(string payload)
    {
        _message.Payload = Encoding.UTF8.GetBytes(payload);
        return this;
    }

    /// <summary>Sets the QoS.</summary>
    public MqttApplicationMessageBuilder WithQualityOfServiceLevel(MqttQualityOfServiceLevel qualityOfServiceLevel)
    {
        _message.QualityOfServiceLevel = qualityOfServiceLevel;
        return this;
    }

    /// <summary>Sets the retain flag.</summary>
    public MqttApplicationMessageBuilder WithRetainFlag(bool retain = true)
    {
        _message.Retain = retain;
        return this;
    }

    /// <summary>5.0: sets the Content Type.</summary>
    public MqttApplicationMessageBuilder WithContentType(string contentType)
    {
        _message.ContentType = contentType;
        return this;
    }

    /// <summary>5.0: sets the Response Topic.</summary>
    public MqttApplicationMessageBuilder WithResponseTopic(string responseTopic)
    {
        _message.ResponseTopic = responseTopic;
        return this;
    }

    /// <summary>5.0: sets the Correlation Data.</summary>
    public MqttApplicationMessageBuilder WithCorrelationData(byte[] correlationData)
    {
        _message.CorrelationData = correlationData;
        return this;
    }

    /// <summary>5.0: sets the Message Expiry Interval in seconds.</summary>
    public MqttApplicationMessageBuilder WithMessageExpiryInterval(uint seconds)
    {
        _message.MessageExpiryInterval = seconds;
        return this;
    }

    /// <summary>5.0: marks the payload as UTF-8 text (Payload Format Indicator 1).</summary>
    public MqttApplicationMessageBuilder WithPayloadFormatIndicatorUtf8()
    {
        _message.PayloadFormatIndicator = 1;
        return this;
    }

    /// <summary>5.0: adds a User Property.</summary>
    public MqttApplicationMessageBuilder WithUserProperty(string name, string value)
    {
        _message.UserProperties.Add(new MqttUserProperty(name, value));
        return this;
    }

    /// <summary>Returns the message.</summary>
    public MqttApplicationMessage Build()
    {
        if (string.IsNullOrEmpty(_message.Topic))
            throw new InvalidOperationException("the message has no topic");
        return _message;
    }
}
