using System.Diagnostics;
using System.Text;
using Pinhole.Testing;
using Pinhole.Transport.Mqtt;
using static Pinhole.Transport.Tests.Mqtt.MqttTestSupport;

namespace Pinhole.Transport.Tests.Mqtt;

/// <summary>The client against a real Mosquitto 2 over TCP, WebSocket, TLS and WebSocket over TLS.</summary>
public class MqttClientMosquittoTests(MosquittoFixture fixture) : IClassFixture<MosquittoFixture>
{
    private readonly MosquittoBroker _broker = fixture.Broker;

    public static TheoryData<MqttTransport, MqttProtocolVersion, MqttQualityOfServiceLevel> TransportsVersionsQos()
    {
        var data = new TheoryData<MqttTransport, MqttProtocolVersion, MqttQualityOfServiceLevel>();
        foreach (var transport in Enum.GetValues<MqttTransport>())
        {
            foreach (var version in new[] { MqttProtocolVersion.V311, MqttProtocolVersion.V500 })
            {
                foreach (var qos in Enum.GetValues<MqttQualityOfServiceLevel>())
                    data.Add(transport, version, qos);
            }
        }

        return data;
    }

    [RequiresTheory(Needs.Mosquitto)]
    [MemberData(nameof(TransportsVersionsQos))]
    public async Task Publish_and_subscribe_deliver_every_message_once_in_order(MqttTransport transport, MqttProtocolVersion version, MqttQualityOfServiceLevel qos)
    {
        var topic = Topic("pubsub");
        await using var subscriber = new MqttClient();
        var received = new MessageCollector(subscriber);
        await using var publisher = new MqttClient();
        await subscriber.ConnectAsync(Options(_broker, transport, version).Build());
        await publisher.ConnectAsync(Options(_broker, transport, version).Build());
        var sub = await subscriber.SubscribeAsync(topic, qos);
        Assert.Equal((MqttClientSubscribeResultCode)qos, Assert.Single(sub.Items).ResultCode);

        const int Count = 50;
        var results = await Task.WhenAll(Enumerable.Range(0, Count).Select(i => publisher.PublishAsync(
            new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload($"m{i}").WithQualityOfServiceLevel(qos).Build())));

        Assert.All(results, r => Assert.True(r.IsSuccess, r.ReasonCode.ToString()));
        if (qos != MqttQualityOfServiceLevel.AtMostOnce)
            Assert.Equal(Count, results.Select(r => r.PacketIdentifier).Distinct().Count());
        var messages = await received.TakeAsync(Count);
        Assert.Equal(Enumerable.Range(0, Count).Select(i => $"m{i}").Order(), messages.Select(m => m.ConvertPayloadToString()).Order());
        Assert.All(messages, m => Assert.Equal(qos, m.QualityOfServiceLevel));
        // Exactly once, and at most once with nothing lost on loopback: no extra copies trail behind.
        await subscriber.PingAsync();
        Assert.False(received.TryTake(out _));
        Assert.Equal(0, publisher.PendingPublishCount);
    }

    [RequiresTheory(Needs.Mosquitto)]
    [InlineData(MqttTransport.Tcp)]
    [InlineData(MqttTransport.WebSocket)]
    public async Task Large_payload_crosses_many_reads_and_frames(MqttTransport transport)
    {
        var topic = Topic("large");
        await using var subscriber = new MqttClient();
        var received = new MessageCollector(subscriber);
        await using var publisher = new MqttClient();
        await subscriber.ConnectAsync(Options(_broker, transport, MqttProtocolVersion.V500).Build());
        await publisher.ConnectAsync(Options(_broker, transport, MqttProtocolVersion.V500).Build());
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        var payload = new byte[300_000];
        new Random(1).NextBytes(payload);

        var result = await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.True(result.IsSuccess);
        Assert.Equal(payload, (await received.NextAsync()).Payload.ToArray());
    }

    [RequiresTheory(Needs.Mosquitto)]
    [InlineData(MqttTransport.Tcp, MqttProtocolVersion.V311)]
    [InlineData(MqttTransport.WebSocket, MqttProtocolVersion.V500)]
    public async Task Retained_message_reaches_a_later_subscriber_with_the_retain_flag(MqttTransport transport, MqttProtocolVersion version)
    {
        var topic = Topic("retained");
        await using var publisher = new MqttClient();
        await publisher.ConnectAsync(Options(_broker, transport, version).Build());
        await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("online").WithRetainFlag().WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        await using var late = new MqttClient();
        var received = new MessageCollector(late);
        await late.ConnectAsync(Options(_broker, transport, version).Build());
        await late.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);

        var message = await received.NextAsync();
        Assert.Equal("online", message.ConvertPayloadToString());
        Assert.True(message.Retain);

        // A live message on the same topic is not flagged retained.
        await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("live").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        var live = await received.NextAsync();
        Assert.Equal("live", live.ConvertPayloadToString());
        Assert.False(live.Retain);
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task V5_retain_handling_do_not_send_skips_the_retained_message()
    {
        var topic = Topic("retain-handling");
        await using var publisher = new MqttClient();
        await publisher.ConnectAsync(Options(_broker, MqttTransport.Tcp, MqttProtocolVersion.V500).Build());
        await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("old").WithRetainFlag().WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        await using var subscriber = new MqttClient();
        var received = new MessageCollector(subscriber);
        await subscriber.ConnectAsync(Options(_broker, MqttTransport.Tcp, MqttProtocolVersion.V500).Build());
        await subscriber.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(topic, MqttQualityOfServiceLevel.AtLeastOnce, retainHandling: MqttRetainHandling.DoNotSendOnSubscribe).Build());
        await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("marker").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.Equal("marker", (await received.NextAsync()).ConvertPayloadToString());
    }

    [RequiresTheory(Needs.Mosquitto)]
    [InlineData(MqttTransport.Tcp, MqttProtocolVersion.V311)]
    [InlineData(MqttTransport.Tcp, MqttProtocolVersion.V500)]
    [InlineData(MqttTransport.WebSocket, MqttProtocolVersion.V311)]
    [InlineData(MqttTransport.WebSocket, MqttProtocolVersion.V500)]
    public async Task Will_is_published_when_the_socket_dies_without_disconnect_and_not_after_a_clean_disconnect(MqttTransport transport, MqttProtocolVersion version)
    {
        var willTopic = Topic("will");
        await using var watcher = new MqttClient();
        var received = new MessageCollector(watcher);
        await watcher.ConnectAsync(Options(_broker, transport, version).Build());
        await watcher.SubscribeAsync(willTopic, MqttQualityOfServiceLevel.AtLeastOnce);
        var will = new MqttApplicationMessageBuilder().WithTopic(willTopic).WithPayload("offline").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();

        // Clean DISCONNECT: the broker discards the will.
        await using (var polite = new MqttClient())
        {
            await polite.ConnectAsync(Options(_broker, transport, version).WithWillMessage(will).Build());
            await polite.DisconnectAsync();
        }

        // Socket killed: the broker publishes the will.
        await using var crashing = new MqttClient();
        var disconnected = new TaskCompletionSource<MqttClientDisconnectedEventArgs>();
        crashing.DisconnectedAsync += e =>
        {
            disconnected.TrySetResult(e);
            return Task.CompletedTask;
        };
        await crashing.ConnectAsync(Options(_broker, transport, version).WithWillMessage(will).Build());
        crashing.AbortConnection();

        var message = await received.NextAsync();
        Assert.Equal("offline", message.ConvertPayloadToString());
        var e = await disconnected.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(e.DisconnectedByClient);
        await watcher.PingAsync();
        Assert.False(received.TryTake(out _)); // only one will: the polite client's was discarded
    }

    [RequiresTheory(Needs.Mosquitto)]
    [InlineData(MqttTransport.Tcp, MqttProtocolVersion.V311)]
    [InlineData(MqttTransport.Tcp, MqttProtocolVersion.V500)]
    [InlineData(MqttTransport.WebSocket, MqttProtocolVersion.V500)]
    public async Task Persistent_session_receives_qos1_messages_published_while_it_was_offline(MqttTransport transport, MqttProtocolVersion version)
    {
        var topic = Topic("offline");
        var clientId = "persistent-" + Guid.NewGuid().ToString("N")[..8];
        MqttClientOptions Persistent() => Options(_broker, transport, version, clientId).WithCleanStart(false).WithSessionExpiryInterval(300).Build();

        await using (var first = new MqttClient())
        {
            var result = await first.ConnectAsync(Persistent());
            Assert.False(result.IsSessionPresent);
            await first.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
            await first.DisconnectAsync();
        }

        await using var publisher = new MqttClient();
        await publisher.ConnectAsync(Options(_broker, transport, version).Build());
        for (var i = 0; i < 10; i++)
            await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload($"while-offline-{i}").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        await using var again = new MqttClient();
        var received = new MessageCollector(again);
        var resumed = await again.ConnectAsync(Persistent());

        Assert.True(resumed.IsSessionPresent);
        var messages = await received.TakeAsync(10);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"while-offline-{i}"), messages.Select(m => m.ConvertPayloadToString()));
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Persistent_session_survives_a_broker_restart()
    {
        await using var broker = await StartMosquittoAsync(ca: null, persistence: true);
        var topic = Topic("restart");
        var clientId = "restart-" + Guid.NewGuid().ToString("N")[..8];
        MqttClientOptions Persistent() => Options(broker, MqttTransport.Tcp, MqttProtocolVersion.V500, clientId).WithCleanStart(false).WithSessionExpiryInterval(3600).Build();
        await using (var first = new MqttClient())
        {
            await first.ConnectAsync(Persistent());
            await first.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
            await first.DisconnectAsync();
        }

        await using (var publisher = new MqttClient())
        {
            await publisher.ConnectAsync(Options(broker, MqttTransport.Tcp, MqttProtocolVersion.V500).Build());
            await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("kept").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            await publisher.DisconnectAsync();
        }

        await broker.StopAsync();
        await broker.StartAgainAsync();

        await using var again = new MqttClient();
        var received = new MessageCollector(again);
        Assert.True((await again.ConnectAsync(Persistent())).IsSessionPresent);
        Assert.Equal("kept", (await received.NextAsync()).ConvertPayloadToString());
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task V5_reason_codes_from_the_broker_reach_the_caller()
    {
        await using var client = new MqttClient();
        await client.ConnectAsync(Options(_broker, MqttTransport.WebSocket, MqttProtocolVersion.V500).Build());

        // The ACL allows t/# only. Mosquitto 2.0 grants any subscription and filters at delivery, but it refuses a
        // publish to a topic the client may not write with PUBACK 0x87.
        var denied = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("forbidden/x").WithPayload("x").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal(MqttClientPublishReasonCode.NotAuthorized, denied.ReasonCode);
        Assert.False(denied.IsSuccess);
        var deniedQos2 = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("forbidden/y").WithPayload("x").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.ExactlyOnce).Build());
        Assert.Equal(MqttClientPublishReasonCode.NotAuthorized, deniedQos2.ReasonCode);
        Assert.Equal(0, client.PendingPublishCount);

        var sub = await client.SubscribeAsync(Topic("allowed"), MqttQualityOfServiceLevel.ExactlyOnce);
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS2, sub.Items[0].ResultCode);

        var nobody = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(Topic("nobody-listens")).WithPayload("x").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal(MqttClientPublishReasonCode.NoMatchingSubscribers, nobody.ReasonCode);
        Assert.True(nobody.IsSuccess);

        var unsub = await client.UnsubscribeAsync(Topic("never-subscribed"));
        Assert.Equal(MqttClientUnsubscribeResultCode.NoSubscriptionExisted, Assert.Single(unsub.Items).ResultCode);

        // An invalid filter never leaves the client.
        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("t/#/x"));
        Assert.True(client.IsConnected);
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task V311_publish_to_a_forbidden_topic_is_acknowledged_but_not_delivered()
    {
        // 3.1.1 has no way to say "not authorized" in PUBACK: the broker acknowledges and drops.
        await using var client = new MqttClient();
        await client.ConnectAsync(Options(_broker, MqttTransport.Tcp, MqttProtocolVersion.V311).Build());
        var result = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("forbidden/y").WithPayload("x").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal(MqttClientPublishReasonCode.Success, result.ReasonCode);
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Refused_connect_reports_the_brokers_reason()
    {
        // 3.1.1 allows an empty client id only with a clean session [MQTT-3.1.3-8]; Mosquitto answers "identifier rejected".
        var options = Options(_broker, MqttTransport.Tcp, MqttProtocolVersion.V311).Build();
        options.ClientId = "";
        options.CleanSession = false;
        await using var client = new MqttClient();
        var e = await Assert.ThrowsAsync<MqttConnectingFailedException>(() => client.ConnectAsync(options));
        Assert.Equal(MqttClientConnectResultCode.ClientIdentifierNotValid, e.ResultCode);
        Assert.False(client.IsConnected);
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task V5_broker_assigns_a_client_id_and_announces_its_limits()
    {
        var options = Options(_broker, MqttTransport.Tcp, MqttProtocolVersion.V500).Build();
        options.ClientId = "";
        await using var client = new MqttClient();
        var result = await client.ConnectAsync(options);
        Assert.False(string.IsNullOrEmpty(result.AssignedClientIdentifier));
        Assert.True(result.ReceiveMaximum > 0);
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Tls_with_a_ca_that_did_not_sign_the_broker_is_refused()
    {
        using var otherCa = TestCertificateAuthority.Create();
        await using var other = await StartMosquittoAsync(otherCa); // its own CA
        await using var client = new MqttClient();
        var options = new MqttClientOptionsBuilder().WithTcpServer("localhost", _broker.TlsPort).WithTls().WithTrustedCa(other.CaFile!).WithTimeout(TimeSpan.FromSeconds(5)).Build();
        await Assert.ThrowsAnyAsync<System.Security.Authentication.AuthenticationException>(() => client.ConnectAsync(options));

        // The right CA but the wrong name: pinning a CA does not switch the host name check off.
        var wrongName = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", _broker.TlsPort).WithTrustedCa(_broker.CaFile!)
            .WithTls(o => o.TargetHost = "not-the-broker.example").WithTimeout(TimeSpan.FromSeconds(5)).Build();
        await Assert.ThrowsAnyAsync<System.Security.Authentication.AuthenticationException>(() => client.ConnectAsync(wrongName));

        // Without a pinned CA the system store does not know the test CA either.
        var wss = new MqttClientOptionsBuilder().WithWebSocketServer(_broker.SecureWebSocketUrl!.ToString()).WithTimeout(TimeSpan.FromSeconds(5)).Build();
        await Assert.ThrowsAnyAsync<Exception>(() => client.ConnectAsync(wss));
        Assert.False(client.IsConnected);
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Our_publishes_reach_mosquitto_sub_and_mosquitto_pub_reaches_us()
    {
        var topic = Topic("interop");
        using var sub = Process.Start(new ProcessStartInfo("mosquitto_sub", ["-p", _broker.TcpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-h", "127.0.0.1", "-t", topic, "-q", "1", "-C", "3", "-V", "mqttv5"])
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        await using var client = new MqttClient();
        var received = new MessageCollector(client);
        await client.ConnectAsync(Options(_broker, MqttTransport.WebSocket, MqttProtocolVersion.V500).Build());
        await client.SubscribeAsync(topic + "/back", MqttQualityOfServiceLevel.AtLeastOnce);

        // mosquitto_sub has no readiness signal: publish until it has taken three messages.
        var stdout = sub.StandardOutput.ReadToEndAsync();
        for (var i = 0; !stdout.IsCompleted && i < 100; i++)
        {
            await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("hello ü").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            await Task.WhenAny(stdout, Task.Delay(100));
        }

        Assert.Equal(["hello ü", "hello ü", "hello ü"], (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries));

        using var pub = Process.Start("mosquitto_pub", ["-p", _broker.TcpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-h", "127.0.0.1", "-t", topic + "/back", "-q", "2", "-m", "from mosquitto_pub"]);
        await pub.WaitForExitAsync();
        var back = await received.NextAsync();
        Assert.Equal("from mosquitto_pub", back.ConvertPayloadToString());
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, back.QualityOfServiceLevel);
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Many_concurrent_publishers_on_one_client_all_get_their_own_acknowledgement()
    {
        var topic = Topic("concurrent");
        await using var subscriber = new MqttClient();
        var received = new MessageCollector(subscriber);
        await subscriber.ConnectAsync(Options(_broker, MqttTransport.WebSocket, MqttProtocolVersion.V500).WithReceiveMaximum(1000).Build());
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        await using var publisher = new MqttClient();
        await publisher.ConnectAsync(Options(_broker, MqttTransport.WebSocket, MqttProtocolVersion.V500).Build());

        var tasks = Enumerable.Range(0, 16).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 100; i++)
            {
                var r = await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload($"{worker}:{i}").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                Assert.True(r.IsSuccess);
            }
        }));
        await Task.WhenAll(tasks);

        var messages = await received.TakeAsync(1600);
        Assert.Equal(1600, messages.Select(m => m.ConvertPayloadToString()).Distinct().Count());
        // Per publisher task, order is kept.
        foreach (var group in messages.Select(m => m.ConvertPayloadToString().Split(':')).GroupBy(p => p[0]))
            Assert.Equal(Enumerable.Range(0, 100), group.Select(p => int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture)));
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Handler_runs_before_the_acknowledgement_so_a_crash_in_it_means_redelivery()
    {
        var topic = Topic("ack-after-handler");
        var clientId = "ack-" + Guid.NewGuid().ToString("N")[..8];
        var options = Options(_broker, MqttTransport.Tcp, MqttProtocolVersion.V500, clientId).WithCleanStart(false).WithSessionExpiryInterval(300).Build();
        var handlerEntered = new TaskCompletionSource();
        var first = new MqttClient();
        first.ApplicationMessageReceivedAsync += async _ =>
        {
            handlerEntered.TrySetResult();
            await Task.Delay(Timeout.Infinite); // the process "hangs" in the handler, then dies
        };
        await first.ConnectAsync(options);
        await first.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        await using (var publisher = new MqttClient())
        {
            await publisher.ConnectAsync(Options(_broker, MqttTransport.Tcp, MqttProtocolVersion.V500).Build());
            await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("must not be lost").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        }

        await handlerEntered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        first.AbortConnection();

        await using var second = new MqttClient();
        var received = new MessageCollector(second);
        await second.ConnectAsync(options);
        var again = await received.NextAsync();
        Assert.Equal("must not be lost", again.ConvertPayloadToString());
        Assert.True(again.Dup);
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Utf8_topics_and_v5_properties_survive_the_broker()
    {
        var topic = Topic("props") + "/température";
        await using var client = new MqttClient();
        var received = new MessageCollector(client);
        await client.ConnectAsync(Options(_broker, MqttTransport.SecureWebSocket, MqttProtocolVersion.V500).Build());
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter(topic, MqttQualityOfServiceLevel.AtLeastOnce).WithSubscriptionIdentifier(77).Build());
        await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("{}").WithContentType("application/json")
            .WithResponseTopic("t/reply").WithCorrelationData([1, 2, 3]).WithUserProperty("unit", "°C").WithPayloadFormatIndicatorUtf8()
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        var m = await received.NextAsync();
        Assert.Equal(topic, m.Topic);
        Assert.Equal("application/json", m.ContentType);
        Assert.Equal("t/reply", m.ResponseTopic);
        Assert.Equal(new byte[] { 1, 2, 3 }, m.CorrelationData);
        Assert.Equal((byte)1, m.PayloadFormatIndicator);
        Assert.Contains(new Pinhole.Transport.Mqtt.Packets.MqttUserProperty("unit", "°C"), m.UserProperties);
        Assert.Equal([77u], m.SubscriptionIdentifiers);
        Assert.Equal(Encoding.UTF8.GetBytes("{}"), m.Payload.ToArray());
    }
}
