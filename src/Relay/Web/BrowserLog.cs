namespace Pinhole.Relay.Web;

internal static partial class BrowserLog
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Viewer {User} logged in from {Client}")]
    public static partial void LoggedIn(ILogger logger, string user, string client);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Failed login for {User} from {Client}; locked out for {Lockout}")]
    public static partial void LoginFailed(ILogger logger, string user, string client, TimeSpan lockout);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Warning, Message = "Login refused for {User} from {Client}: locked out for {RetryAfter} more")]
    public static partial void LoginLocked(ILogger logger, string user, string client, TimeSpan retryAfter);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "Player WebSocket from {Client} refused: {Reason}")]
    public static partial void SocketRefused(ILogger logger, string client, string reason);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "Viewer {User} started watching {Device}/{Camera} in a browser")]
    public static partial void ViewerStarted(ILogger logger, string user, string device, string camera);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Information, Message = "Viewer {User} stopped watching {Device}/{Camera}: {Frames} fragments sent, {Dropped} frames skipped")]
    public static partial void ViewerStopped(ILogger logger, string user, string device, string camera, long frames, long dropped);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "Player WebSocket for {Device}/{Camera} ended with an error")]
    public static partial void ViewerFailed(ILogger logger, Exception exception, string device, string camera);
}
