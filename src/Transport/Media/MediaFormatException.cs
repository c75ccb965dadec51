namespace Pinhole.Transport.Media;

/// <summary>
/// Bytes from the network broke a rule of a media format: SDP (RFC 4566), RTP/RTCP (RFC 3550), an
/// RTP payload format (RFC 6184, 7798, 3640, 3551) or a codec's bitstream (an SPS, an
/// AudioSpecificConfig). Every parser below RTSP throws this for malformed input, and RTSP's own
/// <see cref="MediaFormatException"/> is one, so a caller that only needs "the peer sent
/// garbage" catches this type; <see cref="Exception.Message"/> says which rule.
/// </summary>
public class MediaFormatException : Exception
{
    /// <summary>Creates the exception with a reason.</summary>
    public MediaFormatException(string message) : base(message) { }

    /// <summary>Creates the exception with a reason and the error that revealed it.</summary>
    public MediaFormatException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception with a generic reason.</summary>
    public MediaFormatException() : base("malformed media data") { }

    /// <summary>At most 40 characters of <paramref name="text"/> from the wire, for an error message.</summary>
    internal static string Quote(string text) => text.Length <= 40 ? text : text[..40] + "…";
}
