namespace Pinhole.Transport.Stun;

/// <summary>
/// Bytes from the network broke a rule of STUN (RFC 8489) or of its ICE attributes (RFC 8445 §16).
/// The one exception type the STUN parser throws for malformed input; <see cref="Exception.Message"/>
/// says which rule.
/// </summary>
public sealed class StunProtocolException : Exception
{
    /// <summary>Creates the exception with a reason.</summary>
    public StunProtocolException(string message) : base(message) { }

    /// <summary>Creates the exception with a reason and the error that revealed it.</summary>
    public StunProtocolException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception with a generic reason.</summary>
    public StunProtocolException() : base("malformed STUN message") { }
}
