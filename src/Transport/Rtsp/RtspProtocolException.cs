namespace Pinhole.Transport.Rtsp;

/// <summary>
/// Bytes from the network broke a rule of RTSP (RFC 2326), SDP (RFC 4566), RTP/RTCP (RFC 3550)
/// or of an RTP payload format (RFC 6184, 7798, 3640). The one exception type every parser of this
/// media stack throws for malformed input; <see cref="Exception.Message"/> says which rule.
/// </summary>
public sealed class RtspProtocolException : Exception
{
    /// <summary>Creates the exception with a reason.</summary>
    public RtspProtocolException(string message) : base(message) { }

    /// <summary>Creates the exception with a reason and the error that revealed it.</summary>
    public RtspProtocolException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception with a generic reason.</summary>
    public RtspProtocolException() : base("malformed RTSP/RTP data") { }
}
