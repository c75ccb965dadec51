using System.Diagnostics;
using Pinhole.Transport.Mqtt;
using Pinhole.Transport.Mqtt.Packets;
using static Pinhole.Transport.Tests.Mqtt.MqttTestPackets;

namespace Pinhole.Transport.Tests.Mqtt;

/// <summary>Client behaviour against a scripted broker: re-sending, flow control, timeouts, keep alive, bad bytes.</summary>
public class MqttClientBehaviourTests
{
    private static MqttApplicationMessage Message(string payload, MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce) =>
        new MqttApplicationMessageBuilder().WithTopic("t/x").WithPayload(payload).WithQualityOfServiceLevel(qos).Build();

    private static TaskCompletionSource<MqttClientDisconnectedEventArgs> WatchDisconnect(MqttClient client)
    {
        var tcs = new TaskCompletionSource<MqttClientDisconnectedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.DisconnectedAsync += e =>
        {
            if (e.ClientWasConnected)
                tcs.TrySetResult(e);
            return Task.CompletedTask;
        };
        return tcs;
    }

    [Fact]
    public async Task Unacknowledged_qos1_publish_is_resent_with_dup_after_reconnect_and_completes_on_its_puback()
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var options = broker.Options().WithCleanStart(false).WithSessionExpiryInterval(60).WithKeepAlivePeriod(TimeSpan.Zero)
            .WithAutoReconnect(minimumDelay: TimeSpan.FromMilliseconds(20), maximumDelay: TimeSpan.FromMilliseconds(100)).Build();
        var connecting = client.ConnectAsync(options);
        var (first, _) = await broker.AcceptAsync();
        await connecting;

        var publishing = client.PublishAsync(Message("keep me"));
        var original = await first.ReceiveAsync<MqttPublishPacket>();
        Assert.False(original.Dup);
        first.Kill();

        var (second, connect) = await broker.AcceptAsync(new MqttConnAckPacket { SessionPresent = true });
        Assert.False(connect.CleanSession);
        var resent = await second.ReceiveAsync<MqttPublishPacket>();
        Assert.True(resent.Dup);
        Assert.Equal(original.PacketIdentifier, resent.PacketIdentifier);
        Assert.Equal("keep me"u8.ToArray(), resent.Payload.ToArray());
        Assert.False(publishing.IsCompleted);

        await second.SendAsync(new MqttPubAckPacket { PacketIdentifier = resent.PacketIdentifier });
        var result = await publishing.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(MqttClientPublishReasonCode.Success, result.ReasonCode);
        Assert.Equal(0, client.PendingPublishCount);
    }

    [Fact]
    public async Task Released_qos2_publish_resends_pubrel_not_the_message_after_reconnect()
    {
        await using var broker = new FakeMqttBroker(MqttProtocolVersion.V311);
        await using var client = new MqttClient();
        var options = broker.Options().WithCleanStart(false).WithKeepAlivePeriod(TimeSpan.Zero)
            .WithAutoReconnect(minimumDelay: TimeSpan.FromMilliseconds(20), maximumDelay: TimeSpan.FromMilliseconds(100)).Build();
        var connecting = client.ConnectAsync(options);
        var (first, _) = await broker.AcceptAsync();
        await connecting;

        var publishing = client.PublishAsync(Message("once", MqttQualityOfServiceLevel.ExactlyOnce));
        var publish = await first.ReceiveAsync<MqttPublishPacket>();
        await first.SendAsync(new MqttPubRecPacket { PacketIdentifier = publish.PacketIdentifier });
        Assert.Equal(publish.PacketIdentifier, (await first.ReceiveAsync<MqttPubRelPacket>()).PacketIdentifier);
        first.Kill();

        var (second, _) = await broker.AcceptAsync(new MqttConnAckPacket { SessionPresent = true });
        var pubRel = await second.ReceiveAsync<MqttPubRelPacket>();
        Assert.Equal(publish.PacketIdentifier, pubRel.PacketIdentifier);
        await second.SendAsync(new MqttPubCompPacket { PacketIdentifier = pubRel.PacketIdentifier });
        Assert.True((await publishing.WaitAsync(TimeSpan.FromSeconds(5))).IsSuccess);
    }

    [Fact]
    public async Task In_flight_window_respects_the_brokers_receive_maximum()
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var connecting = client.ConnectAsync(broker.Options().WithKeepAlivePeriod(TimeSpan.Zero).Build());
        var (conn, _) = await broker.AcceptAsync(new MqttConnAckPacket { ReceiveMaximum = 3 });
        await connecting;

        var publishes = Enumerable.Range(0, 10).Select(i => client.PublishAsync(Message($"m{i}"))).ToList();
        var seen = new List<MqttPublishPacket>();
        for (var i = 0; i < 3; i++)
            seen.Add(await conn.ReceiveAsync<MqttPublishPacket>());
        Assert.True(await conn.StaysQuietAsync(TimeSpan.FromMilliseconds(300)));

        for (var next = 0; next < 10; next++)
        {
            await conn.SendAsync(new MqttPubAckPacket { PacketIdentifier = seen[next].PacketIdentifier });
            if (seen.Count < 10)
                seen.Add(await conn.ReceiveAsync<MqttPublishPacket>());
        }

        var results = await Task.WhenAll(publishes).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.All(results, r => Assert.True(r.IsSuccess));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"m{i}"), seen.Select(p => System.Text.Encoding.UTF8.GetString(p.Payload.Span)));
    }

    [Fact]
    public async Task Missing_acknowledgement_times_out_and_frees_the_slot()
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var connecting = client.ConnectAsync(broker.Options().WithTimeout(TimeSpan.FromMilliseconds(300)).WithKeepAlivePeriod(TimeSpan.Zero).Build());
        var (conn, _) = await broker.AcceptAsync();
        await connecting;

        var sw = Stopwatch.StartNew();
        await Assert.ThrowsAsync<MqttCommunicationTimedOutException>(() => client.PublishAsync(Message("lost")));
        Assert.InRange(sw.ElapsedMilliseconds, 250, 3000);
        Assert.Equal(0, client.PendingPublishCount);
        await conn.ReceiveAsync<MqttPublishPacket>();

        // A late PUBACK for the abandoned id is ignored; the connection stays usable.
        var late = client.SubscribeAsync("t/y");
        await conn.SendAsync(new MqttPubAckPacket { PacketIdentifier = 1 });
        var subscribe = await conn.ReceiveAsync<MqttSubscribePacket>();
        await conn.SendAsync(new MqttSubAckPacket { PacketIdentifier = subscribe.PacketIdentifier, ReasonCodes = [MqttReasonCode.Success] });
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS0, (await late).Items[0].ResultCode);
        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task Idle_client_pings_at_half_the_keep_alive_and_a_silent_broker_is_declared_dead_within_it()
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var disconnected = WatchDisconnect(client);
        var connecting = client.ConnectAsync(broker.Options().WithKeepAlivePeriod(TimeSpan.FromSeconds(2)).Build());
        var (conn, connect) = await broker.AcceptAsync();
        await connecting;
        Assert.Equal(2, connect.KeepAlivePeriod);

        // Answer two pings: each arrives about 1 s (half the keep alive) after the last traffic.
        for (var i = 0; i < 2; i++)
        {
            var sw = Stopwatch.StartNew();
            await conn.ReceiveAsync<MqttPingReqPacket>(TimeSpan.FromSeconds(3));
            Assert.True(sw.ElapsedMilliseconds is >= 700 and <= 1600, $"ping {i} came {sw.ElapsedMilliseconds} ms after the last traffic");
            await conn.SendAsync(MqttPingRespPacket.Instance);
        }

        // Now the broker goes silent.
        var silentSince = Stopwatch.StartNew();
        var e = await disconnected.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(silentSince.ElapsedMilliseconds is >= 1500 and <= 3000, $"declared dead {silentSince.ElapsedMilliseconds} ms after the broker went silent (keep alive 2 s)");
        Assert.IsType<MqttCommunicationTimedOutException>(e.Exception);
        Assert.False(client.IsConnected);
    }

    [Fact]
    public async Task Server_keep_alive_from_connack_replaces_the_clients()
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var connecting = client.ConnectAsync(broker.Options().WithKeepAlivePeriod(TimeSpan.FromSeconds(60)).Build());
        var (conn, _) = await broker.AcceptAsync(new MqttConnAckPacket { ServerKeepAlive = 1 });
        await connecting;
        var sw = Stopwatch.StartNew();
        await conn.ReceiveAsync<MqttPingReqPacket>(TimeSpan.FromSeconds(3));
        Assert.InRange(sw.ElapsedMilliseconds, 300, 1200);
    }

    [Theory]
    [InlineData("36 05 00 01 61 00 01", MqttReasonCode.MalformedPacket)]       // QoS 3
    [InlineData("30 05 00 03 61 FF 62", MqttReasonCode.MalformedPacket)]       // invalid UTF-8 topic
    [InlineData("40 02 00 00", MqttReasonCode.ProtocolError)]                  // packet id 0
    [InlineData("30 FF FF FF 7F", MqttReasonCode.PacketTooLarge)]              // announces 256 MB
    [InlineData("10 00", MqttReasonCode.MalformedPacket)]                      // an empty CONNECT
    [InlineData("10 0F 00 04 4D 51 54 54 05 02 00 3C 00 00 02 63 31", MqttReasonCode.ProtocolError)] // a valid CONNECT, which no broker sends
    [InlineData("20 02 00 00", MqttReasonCode.ProtocolError)]                  // a second CONNACK
    public async Task Bad_bytes_from_the_broker_close_the_connection_with_a_protocol_error_and_a_v5_disconnect(string hex, MqttReasonCode expected)
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var disconnected = WatchDisconnect(client);
        var connecting = client.ConnectAsync(broker.Options().WithKeepAlivePeriod(TimeSpan.Zero).Build());
        var (conn, _) = await broker.AcceptAsync();
        await connecting;

        await conn.SendRawAsync(Hex(hex));

        var e = await disconnected.Task.WaitAsync(TimeSpan.FromSeconds(5));
        var protocolError = Assert.IsType<MqttProtocolException>(e.Exception);
        var disconnect = await conn.ReceiveAsync<MqttDisconnectPacket>();
        Assert.Equal(expected, protocolError.ReasonCode);
        Assert.Equal(expected, disconnect.ReasonCode);
        Assert.Null(await conn.ReceiveAnyAsync()); // and then the socket closes
        Assert.False(client.IsConnected);
        await Assert.ThrowsAsync<MqttClientNotConnectedException>(() => client.PublishAsync(Message("after")));
    }

    [Fact]
    public async Task Broker_disconnect_reason_reaches_the_disconnected_event()
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var disconnected = WatchDisconnect(client);
        var connecting = client.ConnectAsync(broker.Options().WithKeepAlivePeriod(TimeSpan.Zero).Build());
        var (conn, _) = await broker.AcceptAsync();
        await connecting;
        await conn.SendAsync(new MqttDisconnectPacket { ReasonCode = MqttReasonCode.SessionTakenOver, ReasonString = "another client with your id" });
        var e = await disconnected.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(MqttReasonCode.SessionTakenOver, e.ReasonCode);
        Assert.Equal("another client with your id", e.ReasonString);
    }

    [Fact]
    public async Task Refused_connack_throws_with_the_reason_and_leaves_the_client_disconnected()
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var connecting = client.ConnectAsync(broker.Options().Build());
        await broker.AcceptAsync(new MqttConnAckPacket { ReasonCode = MqttReasonCode.BadUserNameOrPassword, ReasonString = "nope" });
        var e = await Assert.ThrowsAsync<MqttConnectingFailedException>(() => connecting);
        Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, e.ResultCode);
        Assert.Equal("nope", e.Result!.ReasonString);
        Assert.False(client.IsConnected);
    }

    [Fact]
    public async Task Received_qos2_duplicate_is_delivered_once_and_acks_follow_the_handler()
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var delivered = new List<string>();
        var release = new TaskCompletionSource();
        client.ApplicationMessageReceivedAsync += async e =>
        {
            delivered.Add(e.ApplicationMessage.ConvertPayloadToString());
            await release.Task;
        };
        var connecting = client.ConnectAsync(broker.Options().WithKeepAlivePeriod(TimeSpan.Zero).Build());
        var (conn, _) = await broker.AcceptAsync();
        await connecting;

        var publish = new MqttPublishPacket { Topic = "t/in", Payload = "q2"u8.ToArray(), QualityOfServiceLevel = MqttQualityOfServiceLevel.ExactlyOnce, PacketIdentifier = 5 };
        await conn.SendAsync(publish);
        Assert.True(await conn.StaysQuietAsync(TimeSpan.FromMilliseconds(300))); // handler still running: no PUBREC yet
        release.SetResult();
        Assert.Equal(5, (await conn.ReceiveAsync<MqttPubRecPacket>()).PacketIdentifier);

        publish.Dup = true;
        await conn.SendAsync(publish); // the broker missed our PUBREC
        Assert.Equal(5, (await conn.ReceiveAsync<MqttPubRecPacket>()).PacketIdentifier);
        await conn.SendAsync(new MqttPubRelPacket { PacketIdentifier = 5 });
        var pubComp = await conn.ReceiveAsync<MqttPubCompPacket>();
        Assert.Equal(MqttReasonCode.Success, pubComp.ReasonCode);
        Assert.Equal(["q2"], delivered);
    }

    [Fact]
    public async Task Message_above_the_brokers_maximum_packet_size_is_refused_before_sending()
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var connecting = client.ConnectAsync(broker.Options().WithKeepAlivePeriod(TimeSpan.Zero).Build());
        var (conn, _) = await broker.AcceptAsync(new MqttConnAckPacket { MaximumPacketSize = 200 });
        await connecting;

        // At QoS 0: type byte + 2-byte remaining length + 2-byte topic length + "t/x" + property length 0 = 9 bytes around the payload.
        await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("t/x").WithPayload(new byte[191]).Build());
        Assert.Equal(191, (await conn.ReceiveAsync<MqttPublishPacket>()).Payload.Length);
        var e = await Assert.ThrowsAsync<ArgumentException>(() => client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("t/x").WithPayload(new byte[192]).Build()));
        Assert.Contains("at most 200", e.Message, StringComparison.Ordinal);
        Assert.True(client.IsConnected);
    }
}
