using Microsoft.Extensions.Logging;

namespace Pinhole.EdgeHost.Uplink;

internal static partial class UplinkClientLog
{
    [LoggerMessage(1, LogLevel.Warning, "Relay {Relay} is plain ws://: media and the token travel unencrypted; use wss://")]
    public static partial void Insecure(ILogger logger, Uri relay);

    [LoggerMessage(2, LogLevel.Information, "Uplink connected to {Relay} (protocol v{Version})")]
    public static partial void Connected(ILogger logger, Uri relay, int version);

    [LoggerMessage(3, LogLevel.Warning, "Uplink to {Relay} failed: {Reason}")]
    public static partial void ConnectFailed(ILogger logger, Uri relay, string reason);

    [LoggerMessage(4, LogLevel.Warning, "Relay {Relay} refused the uplink: {Reason}")]
    public static partial void Refused(ILogger logger, Uri relay, string reason);

    [LoggerMessage(5, LogLevel.Warning, "Uplink to {Relay} ended: {Reason}")]
    public static partial void Ended(ILogger logger, Uri relay, string reason);

    [LoggerMessage(6, LogLevel.Warning, "Uplink to {Relay}: nothing received for {Silence}; link dead, reconnecting")]
    public static partial void DeadLink(ILogger logger, Uri relay, TimeSpan silence);

    [LoggerMessage(7, LogLevel.Information, "Uplink: retrying in {Delay}")]
    public static partial void Backoff(ILogger logger, TimeSpan delay);

    [LoggerMessage(9, LogLevel.Warning, "Uplink to {Relay}: the WebSocket upgrade was refused ({Answer}); falling back to HTTP streaming")]
    public static partial void FallingBackToHttp(ILogger logger, Uri relay, string answer);

    [LoggerMessage(10, LogLevel.Warning, "Uplink to {Relay}: the WebSocket upgrade got no answer within {Seconds} s; falling back to HTTP streaming")]
    public static partial void UpgradeHungFallingBackToHttp(ILogger logger, Uri relay, double seconds);

    [LoggerMessage(8, LogLevel.Warning, "Uplink: frame of {Bytes} bytes from {Camera} exceeds the relay's message limit; dropped")]
    public static partial void FrameTooLarge(ILogger logger, string camera, int bytes);
}
