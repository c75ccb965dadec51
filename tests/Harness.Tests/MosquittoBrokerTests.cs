using Pinhole.Testing;

namespace Pinhole.Harness.Tests;

public class MosquittoBrokerTests
{
    private static CancellationToken Timeout(int seconds = 20) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;

    [RequiresFact(Needs.Mosquitto)]
    public async Task Message_published_over_tcp_arrives_at_a_websocket_subscriber()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        Assert.NotEqual(broker.TcpPort, broker.WebSocketPort);
        Assert.Equal($"ws://127.0.0.1:{broker.WebSocketPort}/mqtt", broker.WebSocketUrl.ToString());

        var (client, rc) = await RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "harness-ws", ct: Timeout());
        await using var _ = client;
        Assert.Equal(0, rc);
        await client.SubscribeAsync("pinhole/gw1/sensors/+", 1, Timeout());

        await broker.PublishAsync("pinhole/gw1/sensors/cpu_temp", """{"value": 42.5}""");

        var (topic, payload, retain) = await client.ReceivePublishAsync(Timeout());
        Assert.Equal("pinhole/gw1/sensors/cpu_temp", topic);
        Assert.Equal("""{"value": 42.5}""", payload);
        Assert.False(retain);
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Password_is_enforced_on_the_websocket_listener()
    {
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoOptions { Username = "gw1", Password = "s3cret" });

        var (anonymous, anonymousRc) = await RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "anon", ct: Timeout());
        await anonymous.DisposeAsync();
        var (wrong, wrongRc) = await RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "wrong", "gw1", "guess", Timeout());
        await wrong.DisposeAsync();
        var (right, rightRc) = await RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "right", "gw1", "s3cret", Timeout());
        await right.DisposeAsync();

        // 3.2.2.3: 4 = bad user name or password, 5 = not authorized.
        Assert.Contains(anonymousRc, new byte[] { 4, 5 });
        Assert.Contains(wrongRc, new byte[] { 4, 5 });
        Assert.Equal(0, rightRc);
    }

    [RequiresTheory(Needs.Mosquitto)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Retained_message_survives_a_restart_with_persistence(bool graceful)
    {
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoOptions { Persistence = true });
        var (tcp, ws) = (broker.TcpPort, broker.WebSocketPort);
        await broker.PublishAsync("pinhole/gw1/status", "online", retain: true);

        if (graceful)
            await broker.StopAsync();
        else
            broker.Kill(); // autosave on every change: nothing acknowledged may be lost even on SIGKILL
        Assert.False(broker.IsRunning);
        Assert.True(File.Exists(Path.Combine(broker.DataDirectory, "mosquitto.db")), broker.Log);
        await broker.StartAgainAsync();

        Assert.Equal((tcp, ws), (broker.TcpPort, broker.WebSocketPort));
        var (client, rc) = await RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "after-restart", ct: Timeout());
        await using var _ = client;
        Assert.Equal(0, rc);
        await client.SubscribeAsync("pinhole/gw1/status", 1, Timeout());
        var (topic, payload, retain) = await client.ReceivePublishAsync(Timeout());
        Assert.Equal(("pinhole/gw1/status", "online", true), (topic, payload, retain));
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Without_persistence_a_restart_forgets_retained_messages()
    {
        // The control for the test above: what makes the message survive is the persistence option.
        await using var broker = await MosquittoBroker.StartAsync();
        await broker.PublishAsync("pinhole/gw1/status", "online", retain: true);
        Assert.Single(await broker.ReceiveAsync("pinhole/gw1/status", 1, TimeSpan.FromSeconds(5)));

        await broker.StopAsync();
        await broker.StartAgainAsync();

        Assert.Empty(await broker.ReceiveAsync("pinhole/gw1/status", 1, TimeSpan.FromSeconds(2)));
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Tls_broker_is_reachable_with_the_test_ca_and_refused_without_it()
    {
        using var ca = TestCertificateAuthority.Create();
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoOptions { Tls = ca });
        Assert.Equal("wss", broker.WebSocketUrl.Scheme);
        Assert.Equal("mqtts", broker.TcpUrl.Scheme);

        // mosquitto_pub over TLS, verifying the certificate (name = 127.0.0.1) against the CA.
        await broker.PublishAsync("pinhole/gw1/status", "online", retain: true);

        var (client, rc) = await RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "tls-ws", ct: Timeout(),
            configure: o => o.RemoteCertificateValidationCallback = ca.ValidationCallback);
        await using (client)
        {
            Assert.Equal(0, rc);
            await client.SubscribeAsync("pinhole/gw1/status", 1, Timeout());
            Assert.Equal(("pinhole/gw1/status", "online", true), await client.ReceivePublishAsync(Timeout()));
        }

        // Without trusting the test CA the handshake fails: the listener really speaks TLS with our certificate.
        await Assert.ThrowsAnyAsync<System.Net.WebSockets.WebSocketException>(() =>
            RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "untrusting", ct: Timeout()));
        using var otherCa = TestCertificateAuthority.Create("Some Other CA");
        await Assert.ThrowsAnyAsync<System.Net.WebSockets.WebSocketException>(() =>
            RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "wrong-ca", ct: Timeout(),
                configure: o => o.RemoteCertificateValidationCallback = otherCa.ValidationCallback));
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Secure_listeners_answer_next_to_the_plain_ones()
    {
        using var ca = TestCertificateAuthority.Create();
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoOptions { SecureListeners = ca });
        Assert.Equal(4, new[] { broker.TcpPort, broker.WebSocketPort, broker.TlsPort, broker.SecureWebSocketPort }.Distinct().Count());
        Assert.Equal("mqtt", broker.TcpUrl.Scheme);
        Assert.Equal("ws", broker.WebSocketUrl.Scheme);
        Assert.Equal($"mqtts://localhost:{broker.TlsPort}/", broker.SecureTcpUrl!.ToString());
        Assert.Equal($"wss://localhost:{broker.SecureWebSocketPort}/mqtt", broker.SecureWebSocketUrl!.ToString());
        Assert.Equal(ca.CertificatePath, broker.CaFile);

        var (plain, plainRc) = await RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "plain-ws", ct: Timeout());
        await using var _ = plain;
        var (secure, secureRc) = await RawMqttOverWebSocket.ConnectAsync(broker.SecureWebSocketUrl, "secure-ws", ct: Timeout(),
            configure: o => o.RemoteCertificateValidationCallback = ca.ValidationCallback);
        await using var __ = secure;
        Assert.Equal(0, plainRc);
        Assert.Equal(0, secureRc);
        await plain.SubscribeAsync("pinhole/both", 1, Timeout());
        await secure.SubscribeAsync("pinhole/both", 1, Timeout());

        // mosquitto_pub over the MQTT-over-TLS listener, checking the certificate (name localhost) against the CA.
        var pub = await Command.RunAsync("mosquitto_pub",
            ["-h", "localhost", "-p", broker.TlsPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--cafile", broker.CaFile!,
             "-q", "1", "-t", "pinhole/both", "-m", "over tls"], TimeSpan.FromSeconds(15));
        Assert.True(pub.Succeeded, pub.ToString());
        Assert.Equal(("pinhole/both", "over tls", false), await plain.ReceivePublishAsync(Timeout()));
        Assert.Equal(("pinhole/both", "over tls", false), await secure.ReceivePublishAsync(Timeout()));

        // The plain listeners stay plain: the harness helpers (no --cafile) still reach the TCP one.
        await broker.PublishAsync("pinhole/both", "over tcp");
        Assert.Equal(("pinhole/both", "over tcp", false), await secure.ReceivePublishAsync(Timeout()));

        // The secure WebSocket listener really speaks TLS with the CA's certificate.
        await Assert.ThrowsAnyAsync<System.Net.WebSockets.WebSocketException>(() =>
            RawMqttOverWebSocket.ConnectAsync(broker.SecureWebSocketUrl, "untrusting", ct: Timeout()));
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Acl_drops_topics_it_does_not_grant()
    {
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoOptions { Acl = ["topic readwrite t/#"] });
        var (client, rc) = await RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "acl", ct: Timeout());
        await using var _ = client;
        Assert.Equal(0, rc);
        await client.SubscribeAsync("#", 1, Timeout()); // granted, but only t/# is delivered

        await broker.PublishAsync("forbidden/x", "dropped");
        await broker.PublishAsync("t/allowed", "delivered");

        Assert.Equal(("t/allowed", "delivered", false), await client.ReceivePublishAsync(Timeout()));
        Assert.Contains("acl_file", await File.ReadAllTextAsync(broker.ConfigPath));
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Frozen_broker_stops_answering_until_it_is_resumed()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        Assert.Equal(broker.Process!.Id, broker.Pid);
        Assert.True(broker.Pid > 0);

        broker.Freeze();
        Assert.True(broker.IsFrozen);
        Assert.True(broker.IsRunning);
        // The kernel still completes the TCP handshake, but the WebSocket upgrade is never answered.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "frozen", ct: Timeout(2)));

        broker.Resume();
        Assert.False(broker.IsFrozen);
        var (client, rc) = await RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "resumed", ct: Timeout());
        await using var _ = client;
        Assert.Equal(0, rc);
        await broker.PublishAsync("pinhole/gw1/status", "online", retain: true);
        await client.SubscribeAsync("pinhole/gw1/status", 1, Timeout());
        Assert.Equal(("pinhole/gw1/status", "online", true), await client.ReceivePublishAsync(Timeout()));

        // A frozen broker still stops cleanly (it is resumed so it can act on SIGTERM).
        broker.Freeze();
        await broker.StopAsync();
        Assert.False(broker.IsRunning);
        Assert.False(broker.IsFrozen);
    }
}
