using Pinhole.Transport.Media;

namespace Pinhole.Transport.Rtsp;

/// <summary>
/// Bytes from the network broke a rule of RTSP itself (RFC 2326/7826): the request or response
/// line, a header (Transport, Session, authentication), interleaving. Errors of the formats RTSP
/// carries (SDP, RTP, codecs) are the base type <see cref="MediaFormatException"/>.
/// </summary>
public sealed class RtspProtocolException : MediaFormatException
{
    /// <summary>Creates the exception with a reason.</summary>
    public RtspProtocolException(string message) : base(message) { }

    /// <summary>Creates the exception with a reason and the error that revealed it.</summary>
    public RtspProtocolException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception with a generic reason.</summary>
    public RtspProtocolException() : base("malformed RTSP data") { }
}
