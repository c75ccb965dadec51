using Microsoft.Extensions.Logging;
using Pinhole.Transport.Mqtt;

namespace Pinhole.EdgeHost.Telemetry;

/// <summary>
/// <see cref="ITelemetryMqttConnector"/> over <see cref="MqttClient"/>: one client per connection,
/// MQTT 5.0, clean start false with a session expiry (the broker keeps our subscription and queues
/// for us while we are away), retained last will. Reconnecting is the session's job, so the
/// client's own auto-reconnect stays off: a lost connection fails the in-flight publishes, and
/// their readings stay in the outbox.
/// </summary>
internal sealed class MqttClientConnector(ILoggerFactory loggerFactory, TimeProvider time) : ITelemetryMqttConnector
{
    public async Task<ITelemetryMqttConnection> ConnectAsync(TelemetryConnectOptions options, Func<TelemetryInboundMessage, Task> onMessage, CancellationToken cancellationToken)
    {
        var builder = new MqttClientOptionsBuilder()
            .WithClientId(options.ClientId)
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCleanStart(false)
            .WithSessionExpiryInterval((uint)Math.Min(uint.MaxValue, options.SessionExpiry.TotalSeconds))
            .WithKeepAlivePeriod(options.KeepAlive)
            .WithTimeout(TimeSpan.FromSeconds(10))
            .WithWillMessage(new MqttApplicationMessageBuilder()
                .WithTopic(options.WillTopic)
                .WithPayload(options.WillPayload)
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
                .WithRetainFlag()
                .Build());
        var url = options.Url;
        switch (url.Scheme)
        {
            case "ws" or "wss":
                builder.WithWebSocketServer(url.ToString());
                break;
            case "mqtts":
                builder.WithTcpServer(url.Host, url.IsDefaultPort || url.Port < 0 ? 8883 : url.Port).WithTls();
                break;
            default: // mqtt://, tcp://
                builder.WithTcpServer(url.Host, url.IsDefaultPort || url.Port < 0 ? 1883 : url.Port);
                break;
        }
        if (options.Username is { } user) builder.WithCredentials(user, options.Password);
        if (options.TrustedCaPath is { } ca && url.Scheme is "wss" or "mqtts") builder.WithTrustedCa(ca);

        var client = new MqttClient(loggerFactory.CreateLogger<MqttClient>(), time);
        var connection = new Connection(client);
        client.DisconnectedAsync += _ => { connection.MarkClosed(); return Task.CompletedTask; };
        client.ApplicationMessageReceivedAsync += e =>
            onMessage(new TelemetryInboundMessage(e.ApplicationMessage.Topic, e.ApplicationMessage.Payload));
        try
        {
            await client.ConnectAsync(builder.Build(), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return connection;
    }

    private sealed class Connection(MqttClient client) : ITelemetryMqttConnection
    {
        private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Closed => _closed.Task;

        public void MarkClosed() => _closed.TrySetResult();

        public async Task PublishAsync(string topic, ReadOnlyMemory<byte> payload, bool retain, CancellationToken cancellationToken)
        {
            var message = new MqttApplicationMessage
            {
                Topic = topic,
                Payload = payload,
                QualityOfServiceLevel = MqttQualityOfServiceLevel.AtLeastOnce,
                Retain = retain,
            };
            var result = await client.PublishAsync(message, cancellationToken).ConfigureAwait(false);
            // 0x10 "no matching subscribers" is a success (< 0x80): the broker took the message.
            if (!result.IsSuccess)
                throw new PublishRefusedException(topic, (byte)result.ReasonCode, result.ReasonString);
        }

        public async Task SubscribeAsync(string topic, CancellationToken cancellationToken)
        {
            var result = await client.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce, cancellationToken).ConfigureAwait(false);
            if (result.Items.Any(i => (byte)i.ResultCode >= 0x80))
                throw new IOException($"the broker refused the subscription to {topic}: {result.Items[0].ResultCode}");
        }

        public Task DisconnectAsync(CancellationToken cancellationToken) =>
            client.DisconnectAsync(null, cancellationToken);

        public async ValueTask DisposeAsync()
        {
            _closed.TrySetResult();
            await client.DisposeAsync().ConfigureAwait(false);
        }
    }
}
