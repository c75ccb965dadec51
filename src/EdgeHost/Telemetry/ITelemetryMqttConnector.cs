namespace Pinhole.EdgeHost.Telemetry;

// The few MQTT operations the telemetry session needs, so the session's logic (reconnect,
// drain in order, acknowledge only on PUBACK, discovery) is tested against a fake, and the
// adapter over MQTTnet (MqttNetConnector) stays a thin translation.

/// <summary>How to connect: a persistent session (clean start false) with a retained last will.</summary>
internal sealed record TelemetryConnectOptions(
    Uri Url,
    string ClientId,
    string? Username,
    string? Password,
    string WillTopic,
    string WillPayload,
    TimeSpan KeepAlive,
    TimeSpan SessionExpiry,
    string? TrustedCaPath,
    TelemetryProtocolVersion ProtocolVersion = TelemetryProtocolVersion.V500);

/// <summary>The MQTT version spoken to the broker (edge.json <c>mqtt.protocolVersion</c>).</summary>
internal enum TelemetryProtocolVersion
{
    /// <summary>MQTT 3.1.1.</summary>
    V311,

    /// <summary>MQTT 5.0, the default: reason codes on every acknowledgement, session expiry.</summary>
    V500,
}

/// <summary>A message received on a subscription.</summary>
internal readonly record struct TelemetryInboundMessage(string Topic, ReadOnlyMemory<byte> Payload);

/// <summary>Opens connections to the broker.</summary>
internal interface ITelemetryMqttConnector
{
    /// <summary>Connects; <paramref name="onMessage"/> is called for messages on subscribed topics.</summary>
    Task<ITelemetryMqttConnection> ConnectAsync(TelemetryConnectOptions options, Func<TelemetryInboundMessage, Task> onMessage, CancellationToken cancellationToken);
}

/// <summary>One live connection. Publish calls may run concurrently.</summary>
internal interface ITelemetryMqttConnection : IAsyncDisposable
{
    /// <summary>Completes when the connection is lost (never faults).</summary>
    Task Closed { get; }

    /// <summary>How the connection reaches the broker: <c>direct</c>, or <c>uplink</c> (carried through the uplink to the relay's broker).</summary>
    string Route => TelemetryRoutes.Direct;

    /// <summary>Publishes at QoS 1; completes when the broker acknowledged it with a success reason code, throws otherwise.</summary>
    Task PublishAsync(string topic, ReadOnlyMemory<byte> payload, bool retain, CancellationToken cancellationToken);

    /// <summary>Subscribes at QoS 1.</summary>
    Task SubscribeAsync(string topic, CancellationToken cancellationToken);

    /// <summary>Disconnects cleanly (the broker does not send the will).</summary>
    Task DisconnectAsync(CancellationToken cancellationToken);
}

/// <summary>
/// The broker answered a publish with a failure reason code (MQTT 5.0 section 3.4.2.1).
/// <see cref="Permanent"/> codes say this message will never be accepted as it is (not authorized,
/// topic name invalid, payload format invalid): retrying it forever would block every reading behind it.
/// </summary>
internal sealed class PublishRefusedException(string topic, byte reasonCode, string? reason)
    : IOException($"the broker refused a publish to {topic}: reason code 0x{reasonCode:X2}{(reason is null ? "" : $" ({reason})")}")
{
    public string Topic { get; } = topic;

    public byte ReasonCode { get; } = reasonCode;

    public bool Permanent => ReasonCode is 0x87 or 0x90 or 0x99;
}
