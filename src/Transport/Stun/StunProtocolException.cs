namespace Pinhole.Transport.Stun;

/// <summary>A STUN message (or ICE-TCP frame) that breaks RFC 8489 / RFC 4571: the one exception the STUN parsers throw.</summary>
public sealed class StunProtocolException : Exception
{
    /// <summary>Creates the exception with a reason.</summary>
    public StunProtocolException(string message) : base(message) { }

    /// <summary>Creates the exception without a reason.</summary>
    public StunProtocolException() { }

    /// <summary>Creates the exception with a reason and a cause.</summary>
    public StunProtocolException(string message, Exception innerException) : base(message, innerException) { }
}
