using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.EdgeHost.Telemetry;
using Pinhole.Testing;

namespace Pinhole.EdgeHost.Tests.Telemetry;

/// <summary>
/// The edge's MQTT connection (MQTTnet underneath) against a real Mosquitto on every transport the edge
/// accepts (mqtt, mqtts, ws, wss with a pinned private CA) and both protocol versions: what the telemetry
/// session relies on is that a QoS 1 publish completes only once the broker has it, that refusals come
/// back as <see cref="PublishRefusedException"/>, that the pinned CA is the only root trusted, and that a
/// broker that stops answering is noticed within 1.5 keep alives.
/// </summary>
public sealed class MqttNetConnectorMosquittoTests : IAsyncLifetime
{
    private TestCertificateAuthority? _ca;
    private MosquittoBroker? _broker;

    public async Task InitializeAsync()
    {
        if (MosquittoBroker.SkipReason is not null)
            return; // every test is skipped by RequiresFact/RequiresTheory
        _ca = TestCertificateAuthority.Create();
        _broker = await MosquittoBroker.StartAsync(new MosquittoOptions
        {
            SecureListeners = _ca,
            Acl = ["topic readwrite t/#", "topic readwrite pinhole/#"],
        });
    }

    public async Task DisposeAsync()
    {
        if (_broker is not null)
            await _broker.DisposeAsync();
        _ca?.Dispose();
    }

    public enum Transport
    {
        Tcp,
        Tls,
        WebSocket,
        SecureWebSocket,
    }

    private MosquittoBroker Broker => _broker!;

    private Uri UrlOf(Transport transport) => transport switch
    {
        Transport.Tcp => Broker.TcpUrl,
        Transport.Tls => Broker.SecureTcpUrl!,
        Transport.WebSocket => Broker.WebSocketUrl,
        _ => Broker.SecureWebSocketUrl!,
    };

    private TelemetryConnectOptions Options(Uri url, TelemetryProtocolVersion version, string? ca, TimeSpan? keepAlive = null, string? clientId = null) =>
        new(url, clientId ?? "edge-test-" + Guid.NewGuid().ToString("N")[..8], null, null,
            "t/status/" + Guid.NewGuid().ToString("N"), "offline", keepAlive ?? TimeSpan.FromSeconds(15), TimeSpan.FromMinutes(5), ca, version);

    private static MqttNetConnector Connector() => new(NullLoggerFactory.Instance, TimeProvider.System);

    [RequiresTheory(Needs.Mosquitto)]
    [InlineData(Transport.Tcp, "5")]
    [InlineData(Transport.Tcp, "3.1.1")]
    [InlineData(Transport.Tls, "5")]
    [InlineData(Transport.WebSocket, "5")]
    [InlineData(Transport.WebSocket, "3.1.1")]
    [InlineData(Transport.SecureWebSocket, "5")]
    [InlineData(Transport.SecureWebSocket, "3.1.1")]
    public async Task Publishes_reach_mosquitto_sub_once_acknowledged_and_subscriptions_deliver(Transport transport, string version)
    {
        var secure = transport is Transport.Tls or Transport.SecureWebSocket;
        var topic = $"t/{transport}/{version.Replace('.', '_')}/{Guid.NewGuid():N}";
        var received = new ConcurrentQueue<TelemetryInboundMessage>();
        await using var connection = await Connector().ConnectAsync(
            Options(UrlOf(transport), version == "3.1.1" ? TelemetryProtocolVersion.V311 : TelemetryProtocolVersion.V500, secure ? _ca!.CertificatePath : null),
            m => { received.Enqueue(m); return Task.CompletedTask; }, CancellationToken.None);
        await connection.SubscribeAsync(topic + "/in", CancellationToken.None);

        var listening = Broker.ReceiveAsync(topic + "/out", 3, TimeSpan.FromSeconds(20));
        await Task.Delay(500); // mosquitto_sub subscribed
        for (var i = 0; i < 3; i++)
            await connection.PublishAsync(topic + "/out", Encoding.UTF8.GetBytes($"reading {i}"), retain: false, CancellationToken.None);
        Assert.Equal([$"{topic}/out reading 0", $"{topic}/out reading 1", $"{topic}/out reading 2"], await listening); // mosquitto_sub -v: "topic payload"

        await Broker.PublishAsync(topic + "/in", "hello from mosquitto_pub");
        await WaitUntilAsync(() => !received.IsEmpty, TimeSpan.FromSeconds(10));
        var message = Assert.Single(received);
        Assert.Equal(topic + "/in", message.Topic);
        Assert.Equal("hello from mosquitto_pub", Encoding.UTF8.GetString(message.Payload.Span));

        await connection.DisconnectAsync(CancellationToken.None);
        await connection.Closed.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [RequiresTheory(Needs.Mosquitto)]
    [InlineData(Transport.Tls)]
    [InlineData(Transport.SecureWebSocket)]
    public async Task A_broker_certificate_not_signed_by_the_pinned_ca_is_refused(Transport transport)
    {
        using var other = TestCertificateAuthority.Create("Some Other CA");
        await Assert.ThrowsAnyAsync<Exception>(() => Connector().ConnectAsync(
            Options(UrlOf(transport), TelemetryProtocolVersion.V500, other.CertificatePath), _ => Task.CompletedTask, CancellationToken.None));
        Assert.DoesNotContain(Broker.Log.Split('\n'), l => l.Contains("New client connected", StringComparison.Ordinal) && l.Contains("edge-test", StringComparison.Ordinal));
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task A_publish_the_broker_refuses_is_a_permanent_PublishRefusedException_on_mqtt_5()
    {
        await using var connection = await Connector().ConnectAsync(
            Options(Broker.TcpUrl, TelemetryProtocolVersion.V500, null), _ => Task.CompletedTask, CancellationToken.None);
        var refused = await Assert.ThrowsAsync<PublishRefusedException>(() =>
            connection.PublishAsync("forbidden/topic", "x"u8.ToArray(), retain: false, CancellationToken.None));
        Assert.Equal(0x87, refused.ReasonCode); // not authorized (ACL)
        Assert.True(refused.Permanent);
        // The connection is still good for the next reading.
        await connection.PublishAsync("t/after-refusal", "y"u8.ToArray(), retain: false, CancellationToken.None);
    }

    [RequiresTheory(Needs.Mosquitto)]
    [InlineData(Transport.Tcp)]
    [InlineData(Transport.WebSocket)]
    public async Task A_frozen_broker_is_noticed_within_one_and_a_half_keep_alives_and_the_pending_publish_fails(Transport transport)
    {
        var keepAlive = TimeSpan.FromSeconds(2);
        await using var connection = await Connector().ConnectAsync(
            Options(UrlOf(transport), TelemetryProtocolVersion.V500, null, keepAlive), _ => Task.CompletedTask, CancellationToken.None);
        await Task.Delay(1500); // a ping or two answered first
        Broker.Freeze();
        var frozen = Stopwatch.StartNew();
        try
        {
            var publishing = connection.PublishAsync("t/frozen", "made while frozen"u8.ToArray(), retain: false, CancellationToken.None);
            await connection.Closed.WaitAsync(TimeSpan.FromSeconds(15));
            var detectedAfter = frozen.Elapsed;
            Assert.True(detectedAfter <= keepAlive * 1.5, $"dead broker noticed after {detectedAfter.TotalSeconds:0.00} s, keep alive {keepAlive.TotalSeconds} s");
            // Not acknowledged, so the session keeps the reading in its outbox.
            await Assert.ThrowsAnyAsync<Exception>(() => publishing.WaitAsync(TimeSpan.FromSeconds(15)));
        }
        finally
        {
            Broker.Resume();
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"condition not met within {timeout.TotalSeconds} s");
            await Task.Delay(50);
        }
    }
}
