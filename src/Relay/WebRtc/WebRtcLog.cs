namespace Pinhole.Relay.WebRtc;

internal static partial class WebRtcLog
{
    [LoggerMessage(EventId = 1701, Level = LogLevel.Information, Message = "WebRTC listening on udp {Udp}{Tcp}; candidates {Candidates}")]
    public static partial void Listening(ILogger logger, string udp, string tcp, string candidates);

    [LoggerMessage(EventId = 1702, Level = LogLevel.Information, Message = "WebRTC {Id}: {User} watches {Device}/{Camera}")]
    public static partial void Offered(ILogger logger, string id, string user, string device, string camera);

    [LoggerMessage(EventId = 1703, Level = LogLevel.Information, Message = "WebRTC {Id}: {User} connected to {Device}/{Camera} over {Path} after {Milliseconds} ms")]
    public static partial void Connected(ILogger logger, string id, string user, string device, string camera, string path, long milliseconds);

    [LoggerMessage(EventId = 1704, Level = LogLevel.Information, Message = "WebRTC {Id}: {User} left {Device}/{Camera}: {Reason} ({Packets} packets, {Retransmitted} retransmitted)")]
    public static partial void Closed(ILogger logger, string id, string user, string device, string camera, string reason, long packets, long retransmitted);

    [LoggerMessage(EventId = 1705, Level = LogLevel.Information, Message = "WebRTC {Id}: path {From} -> {To}")]
    public static partial void PathChanged(ILogger logger, string id, string from, string to);

    [LoggerMessage(EventId = 1706, Level = LogLevel.Error, Message = "WebRTC {Id}: sender failed")]
    public static partial void SenderFailed(ILogger logger, Exception exception, string id);

    [LoggerMessage(EventId = 1707, Level = LogLevel.Debug, Message = "WebRTC: dropped a datagram from {Remote}: {Reason}")]
    public static partial void Dropped(ILogger logger, string remote, string reason);

    [LoggerMessage(EventId = 1708, Level = LogLevel.Warning, Message = "WHEP offer from {User} for {Device}/{Camera} refused: {Reason}")]
    public static partial void Refused(ILogger logger, string user, string device, string camera, string reason);

    [LoggerMessage(EventId = 1709, Level = LogLevel.Error, Message = "WebRTC: the {Transport} receive loop failed")]
    public static partial void LoopFailed(ILogger logger, Exception exception, string transport);
}
