namespace Pinhole.Transport.Mqtt;

/// <summary>
/// Thrown when bytes from the network break the MQTT rules (OASIS MQTT 3.1.1 / 5.0): a malformed
/// packet, a reserved flag set, a packet larger than allowed. The connection that produced it must be
/// closed; MQTT 5.0 peers may first be told <see cref="ReasonCode"/> in a DISCONNECT.
/// </summary>
public sealed class MqttProtocolException : Exception
{
    /// <summary>Creates the exception with a reason a reader can act on.</summary>
    /// <param name="reason">What was wrong, for example "remaining length uses more than 4 bytes".</param>
    /// <param name="reasonCode">The MQTT 5.0 reason code to report to the peer (default Malformed Packet).</param>
    public MqttProtocolException(string reason, MqttReasonCode reasonCode = MqttReasonCode.MalformedPacket)
        : base(reason)
    {
        ReasonCode = reasonCode;
    }

    /// <summary>Creates the exception (required by the analyzers; prefer the overload with a reason code).</summary>
    public MqttProtocolException()
        : this("MQTT protocol violation")
    {
    }

    /// <summary>Creates the exception wrapping another (required by the analyzers).</summary>
    public MqttProtocolException(string message, Exception innerException)
        : base(message, innerException)
    {
        ReasonCode = MqttReasonCode.MalformedPacket;
    }

    /// <summary>The MQTT 5.0 reason code that describes the violation (Malformed Packet, Protocol Error, Packet Too Large...).</summary>
    public MqttReasonCode ReasonCode { get; }
}
