using System.Diagnostics;
using Pinhole.Testing;
using Pinhole.Transport.Mqtt;
using static Pinhole.Transport.Tests.Mqtt.MqttTestSupport;

namespace Pinhole.Transport.Tests.Mqtt;

/// <summary>Dead-broker detection and recovery against a real Mosquitto frozen with SIGSTOP (sockets open, nobody home).</summary>
public class MqttKeepAliveMosquittoTests
{
    [RequiresTheory(Needs.Mosquitto)]
    [InlineData(MqttTransport.Tcp)]
    [InlineData(MqttTransport.WebSocket)]
    public async Task Frozen_broker_is_detected_within_one_and_a_half_keep_alives_and_the_publish_made_meanwhile_arrives_after_it_thaws(MqttTransport transport)
    {
        await using var broker = await StartMosquittoAsync(ca: null);
        var topic = Topic("frozen");

        await using var subscriber = new MqttClient();
        var received = new MessageCollector(subscriber);
        var subscriberOptions = Options(broker, MqttTransport.Tcp, MqttProtocolVersion.V500, "frozen-sub-" + Guid.NewGuid().ToString("N")[..6])
            .WithCleanStart(false).WithSessionExpiryInterval(300).WithKeepAlivePeriod(TimeSpan.FromSeconds(60))
            .WithAutoReconnect(minimumDelay: TimeSpan.FromMilliseconds(100), maximumDelay: TimeSpan.FromMilliseconds(500)).Build();
        await subscriber.ConnectAsync(subscriberOptions);
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);

        await using var client = new MqttClient();
        var lost = new TaskCompletionSource<MqttClientDisconnectedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        var reconnected = new TaskCompletionSource<MqttClientConnectedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        var connects = 0;
        client.DisconnectedAsync += e =>
        {
            if (e.ClientWasConnected)
                lost.TrySetResult(e);
            return Task.CompletedTask;
        };
        client.ConnectedAsync += e =>
        {
            if (Interlocked.Increment(ref connects) > 1)
                reconnected.TrySetResult(e);
            return Task.CompletedTask;
        };
        var keepAlive = TimeSpan.FromSeconds(2);
        await client.ConnectAsync(Options(broker, transport, MqttProtocolVersion.V500, "frozen-pub-" + Guid.NewGuid().ToString("N")[..6])
            .WithKeepAlivePeriod(keepAlive).WithTimeout(TimeSpan.FromSeconds(1)).WithCleanStart(false).WithSessionExpiryInterval(300)
            .WithAutoReconnect(minimumDelay: TimeSpan.FromMilliseconds(100), maximumDelay: TimeSpan.FromMilliseconds(500)).Build());
        await Task.Delay(1500); // some keep-alive traffic first

        broker.Freeze();
        var frozen = Stopwatch.StartNew();
        try
        {
            var e = await lost.Task.WaitAsync(TimeSpan.FromSeconds(10));
            var detectedAfter = frozen.Elapsed;
            Assert.True(detectedAfter <= keepAlive * 1.5, $"dead broker detected after {detectedAfter.TotalSeconds:0.00} s, keep alive {keepAlive.TotalSeconds} s");
            Assert.IsType<MqttCommunicationTimedOutException>(e.Exception);

            // Published while there is no connection: it waits, and is sent once the broker is back.
            var publishing = client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("made during the outage").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            await Task.Delay(500);
            Assert.False(publishing.IsCompleted);
            broker.Resume();

            await reconnected.Task.WaitAsync(TimeSpan.FromSeconds(15));
            Assert.True((await publishing.WaitAsync(TimeSpan.FromSeconds(10))).IsSuccess);
            Assert.Equal("made during the outage", (await received.NextAsync(TimeSpan.FromSeconds(15))).ConvertPayloadToString());
        }
        finally
        {
            broker.Resume();
        }
    }
}
