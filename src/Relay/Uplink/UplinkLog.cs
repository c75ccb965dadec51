using Microsoft.Extensions.Logging;

namespace Pinhole.Relay.Uplink;

internal static partial class UplinkLog
{
    [LoggerMessage(1, LogLevel.Warning, "Uplink refused before upgrade from {Remote}: {Reason} ({Detail})")]
    public static partial void Refused(ILogger logger, string? remote, string reason, string detail);

    [LoggerMessage(2, LogLevel.Information, "Uplink of {Device} connected from {Remote} ({Agent}, protocol v{Version})")]
    public static partial void Connected(ILogger logger, string device, string? remote, string agent, int version);

    [LoggerMessage(3, LogLevel.Information, "Uplink of {Device} ended: {Reason}")]
    public static partial void Ended(ILogger logger, string device, string reason);

    [LoggerMessage(4, LogLevel.Warning, "Uplink of {Device} rejected after hello: {Reason} ({Detail})")]
    public static partial void Rejected(ILogger logger, string device, string reason, string detail);

    [LoggerMessage(5, LogLevel.Information, "Uplink of {Device} replaced by a newer one")]
    public static partial void Replaced(ILogger logger, string device);

    [LoggerMessage(6, LogLevel.Warning, "Uplink of {Device}: nothing received for {Silence}; link dead, closing")]
    public static partial void DeadLink(ILogger logger, string device, TimeSpan silence);

    [LoggerMessage(7, LogLevel.Warning, "Uplink of {Device}: protocol error: {Reason} {Detail}")]
    public static partial void ProtocolError(ILogger logger, string device, string reason, string detail);

    [LoggerMessage(8, LogLevel.Information, "Uplink of {Device}: camera {Camera} announced {Tracks}")]
    public static partial void Announced(ILogger logger, string device, string camera, string tracks);

    [LoggerMessage(9, LogLevel.Debug, "Uplink of {Device}: skipped unknown message channel {Channel} type {Type}")]
    public static partial void SkippedUnknown(ILogger logger, string device, int channel, int type);

    [LoggerMessage(11, LogLevel.Warning, "Uplink of {Device}: could not connect the device's stream to the relay's {Service} service: {Reason}")]
    public static partial void DeviceStreamFailed(ILogger logger, string device, string service, string reason);

    [LoggerMessage(10, LogLevel.Information, "Uplink of {Device}: device dropped {Frames} frames of {Camera} (link too slow)")]
    public static partial void DeviceDrops(ILogger logger, string device, string camera, ulong frames);
}
