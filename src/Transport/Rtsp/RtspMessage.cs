using System.Globalization;

namespace Pinhole.Transport.Rtsp;

/// <summary>What RTSP requests and responses share (RFC 2326 §4): headers and an optional body.</summary>
public abstract class RtspMessage
{
    /// <summary>The protocol version written on the start line.</summary>
    public const string Version = "RTSP/1.0";

    /// <summary>Header fields.</summary>
    public RtspHeaders Headers { get; } = new();

    /// <summary>The message body (Content-Length bytes); empty when there is none.</summary>
    public ReadOnlyMemory<byte> Body { get; set; }

    /// <summary>The CSeq header (RFC 2326 §12.17), or -1 when absent or not a number.</summary>
    public int CSeq
    {
        get => int.TryParse(Headers["CSeq"], NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : -1;
        set => Headers["CSeq"] = value.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>The body decoded as UTF-8 (SDP is UTF-8 by RFC 4566 §5).</summary>
    public string BodyText => System.Text.Encoding.UTF8.GetString(Body.Span);
}

/// <summary>An RTSP request (RFC 2326 §6): method, request URI, headers, body.</summary>
public sealed class RtspRequest : RtspMessage
{
    /// <summary>Creates a request.</summary>
    public RtspRequest(string method, string uri)
    {
        ArgumentException.ThrowIfNullOrEmpty(method);
        ArgumentException.ThrowIfNullOrEmpty(uri);
        Method = method;
        Uri = uri;
    }

    /// <summary>The method, e.g. <c>DESCRIBE</c> (RFC 2326 §10). Methods are case-sensitive.</summary>
    public string Method { get; }

    /// <summary>The Request-URI as written on the wire (absolute URL or <c>*</c>).</summary>
    public string Uri { get; }
}

/// <summary>An RTSP response (RFC 2326 §7): status code, reason phrase, headers, body.</summary>
public sealed class RtspResponse : RtspMessage
{
    /// <summary>Creates a response.</summary>
    public RtspResponse(int statusCode, string reasonPhrase)
    {
        if (statusCode is < 100 or > 999) throw new ArgumentOutOfRangeException(nameof(statusCode));
        StatusCode = statusCode;
        ReasonPhrase = reasonPhrase ?? "";
    }

    /// <summary>The three-digit status code (RFC 2326 §7.1.1).</summary>
    public int StatusCode { get; }

    /// <summary>The reason phrase.</summary>
    public string ReasonPhrase { get; }

    /// <summary>True for 2xx.</summary>
    public bool IsSuccess => StatusCode is >= 200 and < 300;

    /// <summary>The standard reason phrase for common RTSP status codes (RFC 2326 §7.1.1).</summary>
    public static string ReasonFor(int statusCode) => statusCode switch
    {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        _ => "Unknown",
    };
}
