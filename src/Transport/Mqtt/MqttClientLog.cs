using Microsoft.Extensions.Logging;

namespace Pinhole.Transport.Mqtt;

internal static partial class MqttClientLog
{
    [LoggerMessage(1, LogLevel.Information, "MQTT connected to {Endpoint} as '{ClientId}' (MQTT {Version}, session present {SessionPresent}, keep alive {KeepAliveSeconds} s, receive maximum {ReceiveMaximum}); re-sent {Resent} unacknowledged publishes")]
    public static partial void Connected(ILogger logger, string endpoint, string clientId, string version, bool sessionPresent, double keepAliveSeconds, int receiveMaximum, int resent);

    [LoggerMessage(2, LogLevel.Warning, "MQTT connection to {Endpoint} lost")]
    public static partial void ConnectionLost(ILogger logger, string endpoint, Exception? exception);

    [LoggerMessage(3, LogLevel.Information, "MQTT disconnected from {Endpoint}")]
    public static partial void Disconnected(ILogger logger, string endpoint);

    [LoggerMessage(4, LogLevel.Warning, "MQTT broker {Endpoint} sent DISCONNECT with reason {ReasonCode} ({ReasonString})")]
    public static partial void ServerDisconnected(ILogger logger, string endpoint, MqttReasonCode reasonCode, string? reasonString);

    [LoggerMessage(5, LogLevel.Warning, "MQTT protocol violation from {Endpoint}: {Reason}; closing the connection")]
    public static partial void ProtocolViolation(ILogger logger, string endpoint, string reason);

    [LoggerMessage(6, LogLevel.Warning, "MQTT keep alive: nothing received from {Endpoint} for {Seconds:0.0} s (keep alive {KeepAliveSeconds} s); closing the connection")]
    public static partial void KeepAliveTimeout(ILogger logger, string endpoint, double seconds, double keepAliveSeconds);

    [LoggerMessage(7, LogLevel.Information, "MQTT reconnecting to {Endpoint} in {DelayMs} ms (attempt {Attempt})")]
    public static partial void Reconnecting(ILogger logger, string endpoint, long delayMs, int attempt);

    [LoggerMessage(8, LogLevel.Warning, "MQTT connect to {Endpoint} failed")]
    public static partial void ConnectFailed(ILogger logger, string endpoint, Exception exception);

    [LoggerMessage(9, LogLevel.Error, "MQTT event handler {Handler} threw")]
    public static partial void HandlerFailed(ILogger logger, string handler, Exception exception);

    [LoggerMessage(10, LogLevel.Debug, "MQTT {PacketType} {PacketIdentifier} arrived but nobody waits for it (timed out?)")]
    public static partial void UnexpectedAcknowledgement(ILogger logger, string packetType, ushort packetIdentifier);

    [LoggerMessage(11, LogLevel.Error, "MQTT packet could not be encoded and was dropped: {Packet}")]
    public static partial void EncodeFailed(ILogger logger, string packet, Exception exception);
}
