namespace Pinhole.Transport.Uplink;

/// <summary>Malformed or forbidden uplink input. The session that sees it ends with <see cref="Reason"/>.</summary>
public sealed class UplinkProtocolException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="reason">What category of problem this is.</param>
    /// <param name="message">A human-readable explanation, safe to log and to send to the peer.</param>
    public UplinkProtocolException(UplinkReason reason, string message) : base(message) => Reason = reason;

    /// <summary>Creates a protocol error.</summary>
    public UplinkProtocolException() : this(UplinkReason.ProtocolError, "uplink protocol error") { }

    /// <summary>Creates a protocol error with a message.</summary>
    public UplinkProtocolException(string message) : this(UplinkReason.ProtocolError, message) { }

    /// <summary>Creates a protocol error with a message and a cause.</summary>
    public UplinkProtocolException(string message, Exception innerException) : base(message, innerException) => Reason = UplinkReason.ProtocolError;

    /// <summary>The category, sent to the peer in a reject or goodbye.</summary>
    public UplinkReason Reason { get; }
}
