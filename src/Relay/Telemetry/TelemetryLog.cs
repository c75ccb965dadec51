namespace Pinhole.Relay.Telemetry;

internal static partial class TelemetryLog
{
    [LoggerMessage(1, LogLevel.Information, "Telemetry ingest connected to {Broker} as {ClientId} (session present: {SessionPresent})")]
    public static partial void Connected(ILogger logger, string broker, string clientId, bool sessionPresent);

    [LoggerMessage(2, LogLevel.Warning, "Telemetry ingest: broker {Broker} unreachable or refused: {Reason}; retrying in {Delay}")]
    public static partial void ConnectFailed(ILogger logger, string broker, string reason, TimeSpan delay);

    [LoggerMessage(3, LogLevel.Warning, "Telemetry ingest: connection to the broker lost: {Reason}")]
    public static partial void Disconnected(ILogger logger, string reason);

    [LoggerMessage(4, LogLevel.Warning, "Telemetry ingest: dropped a message on {Topic}: {Reason}")]
    public static partial void BadMessage(ILogger logger, string topic, string reason);

    [LoggerMessage(5, LogLevel.Error, "Telemetry ingest: storing {Count} readings failed: {Reason}; they stay unacknowledged and the broker sends them again")]
    public static partial void StoreFailed(ILogger logger, int count, string reason);

    [LoggerMessage(6, LogLevel.Information, "Telemetry alert {State}: {Device}/{Sensor} = {Value} ({Rule})")]
    public static partial void Alert(ILogger logger, string state, string device, string sensor, double value, string rule);

    [LoggerMessage(7, LogLevel.Information, "Telemetry pruned {Raw} raw readings, {Minute} 1-minute and {Hour} 1-hour aggregates")]
    public static partial void Pruned(ILogger logger, long raw, long minute, long hour);

    [LoggerMessage(8, LogLevel.Error, "Telemetry pruning failed: {Reason}")]
    public static partial void PruneFailed(ILogger logger, string reason);

    [LoggerMessage(10, LogLevel.Error, "Telemetry ingest: the store writer failed; restarting it")]
    public static partial void WriterFailed(ILogger logger, Exception exception);

    [LoggerMessage(11, LogLevel.Warning, "Telemetry alerts: the shared alert state could not be used: {Reason}; the sensors' next readings catch up")]
    public static partial void AlertsFailed(ILogger logger, string reason);

    [LoggerMessage(9, LogLevel.Warning, "Telemetry ingest: publishing alert {Topic} failed: {Reason}; it is sent again on reconnect")]
    public static partial void AlertPublishFailed(ILogger logger, string topic, string reason);
}
