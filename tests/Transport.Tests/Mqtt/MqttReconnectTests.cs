using System.Net;
using System.Net.Sockets;
using Pinhole.Transport.Mqtt;

namespace Pinhole.Transport.Tests.Mqtt;

public class MqttReconnectTests
{
    [Fact]
    public void Backoff_doubles_from_the_minimum_is_capped_and_jittered()
    {
        var options = new MqttClientOptions { MinimumReconnectDelay = TimeSpan.FromSeconds(1), MaximumReconnectDelay = TimeSpan.FromSeconds(30) };
        for (var attempt = 0; attempt < 12; attempt++)
        {
            var ceiling = Math.Min(30, Math.Pow(2, attempt));
            var delays = Enumerable.Range(0, 200).Select(_ => MqttClient.ReconnectDelay(options, attempt).TotalSeconds).ToList();
            Assert.All(delays, d => Assert.InRange(d, ceiling / 2, ceiling));
            Assert.True(delays.Distinct().Count() > 100, "no jitter");
        }
    }

    [Fact]
    public async Task StartAsync_keeps_trying_until_the_broker_appears()
    {
        // Hold the port with a bound socket that does not listen: connects are refused, and no parallel test
        // can take the port before the "broker" appears on it.
        var holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)holder.LocalEndPoint!).Port;

        await using var client = new MqttClient();
        var failures = 0;
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.DisconnectedAsync += e =>
        {
            if (!e.ClientWasConnected)
                Interlocked.Increment(ref failures);
            return Task.CompletedTask;
        };
        client.ConnectedAsync += _ =>
        {
            connected.TrySetResult();
            return Task.CompletedTask;
        };
        await client.StartAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId("late")
            .WithAutoReconnect(minimumDelay: TimeSpan.FromMilliseconds(50), maximumDelay: TimeSpan.FromMilliseconds(200)).Build());
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (Volatile.Read(ref failures) < 3 && DateTime.UtcNow < deadline)
            await Task.Delay(20);
        Assert.True(Volatile.Read(ref failures) >= 3, $"{failures} failed attempts reported");
        Assert.False(client.IsConnected);

        holder.Dispose();
        await using var broker = new FakeMqttBroker(port: port);
        await broker.AcceptAsync();
        await connected.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task DisconnectAsync_stops_reconnecting()
    {
        await using var broker = new FakeMqttBroker();
        await using var client = new MqttClient();
        var connecting = client.ConnectAsync(broker.Options().WithAutoReconnect(minimumDelay: TimeSpan.FromMilliseconds(20)).Build());
        var (conn, _) = await broker.AcceptAsync();
        await connecting;
        await client.DisconnectAsync();
        Assert.IsType<Pinhole.Transport.Mqtt.Packets.MqttDisconnectPacket>(await conn.ReceiveAnyAsync());
        await Task.Delay(300);
        Assert.False(client.IsConnected);
        await Assert.ThrowsAsync<MqttClientNotConnectedException>(() => client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("t").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build()).WaitAsync(TimeSpan.FromSeconds(5)));
    }
}
