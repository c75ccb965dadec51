using System.Net;
using Microsoft.Extensions.Logging;

namespace Pinhole.Streaming.Rtsp;

// Source-generated log methods of the RTSP server. URLs are logged without credentials; RTSP
// request URIs never carry them (clients move user:pass into Authorization).
internal static partial class RtspServerLog
{
    [LoggerMessage(1, LogLevel.Information, "RTSP server listening on {EndPoint}")]
    public static partial void Listening(ILogger logger, EndPoint endPoint);

    [LoggerMessage(10, LogLevel.Information, "RTSPS (RTSP over TLS) listening on {EndPoint}")]
    public static partial void ListeningTls(ILogger logger, EndPoint endPoint);

    [LoggerMessage(11, LogLevel.Information, "RTSP connection from {Remote}: TLS handshake failed: {Reason}")]
    public static partial void TlsHandshakeFailed(ILogger logger, EndPoint? remote, string reason);

    [LoggerMessage(12, LogLevel.Warning, "RTSP: no viewers and anonymousViewing is off, so every RTSP viewer is refused; add viewers or set \"anonymousViewing\": true")]
    public static partial void NobodyMayView(ILogger logger);

    [LoggerMessage(13, LogLevel.Warning, "RTSP: no viewers and anonymousViewing is on: anyone who can reach the relay may watch every camera")]
    public static partial void AnonymousViewing(ILogger logger);

    [LoggerMessage(3, LogLevel.Debug, "RTSP connection from {Remote} closed: {Reason}")]
    public static partial void ConnectionClosed(ILogger logger, EndPoint? remote, string reason);

    [LoggerMessage(4, LogLevel.Information, "RTSP malformed request from {Remote}: {Reason}")]
    public static partial void MalformedRequest(ILogger logger, EndPoint? remote, string reason);

    [LoggerMessage(5, LogLevel.Information, "RTSP session {Session} for {Remote} playing {Device}/{Camera} over {Transport}")]
    public static partial void SessionPlaying(ILogger logger, string session, EndPoint? remote, string device, string camera, string transport);

    [LoggerMessage(6, LogLevel.Information, "RTSP session {Session} ended: {Reason}; {Frames} frames, {Bytes} bytes sent, {Dropped} frames skipped")]
    public static partial void SessionEnded(ILogger logger, string session, string reason, long frames, long bytes, long dropped);

    [LoggerMessage(7, LogLevel.Information, "RTSP authentication failed for {Remote} ({Scheme})")]
    public static partial void AuthenticationFailed(ILogger logger, EndPoint? remote, string scheme);

    [LoggerMessage(8, LogLevel.Error, "RTSP connection from {Remote} failed")]
    public static partial void ConnectionFailed(ILogger logger, EndPoint? remote, Exception exception);

    [LoggerMessage(9, LogLevel.Information, "RTSP session {Session}: tracks changed codec, ending the session so the viewer re-describes")]
    public static partial void CodecChanged(ILogger logger, string session);

    [LoggerMessage(14, LogLevel.Debug, "RTSP refused {Address} ({Cause}): {Detail}")]
    public static partial void Refused(ILogger logger, string cause, string? address, string detail);

    [LoggerMessage(15, LogLevel.Information, "RTSP session {Session} for {Remote} publishing to {Path}")]
    public static partial void Publishing(ILogger logger, string session, EndPoint? remote, string path);

    [LoggerMessage(16, LogLevel.Information, "RTSP publishing session {Session} ended: {Reason}; {BadPackets} bad packets")]
    public static partial void PublishEnded(ILogger logger, string session, string reason, long badPackets);
}
