using System.Threading.Channels;
using Pinhole.Transport.Mqtt;

namespace Pinhole.Transport.Tests.Mqtt;

public enum MqttTransport
{
    Tcp,
    WebSocket,
    Tls,
    SecureWebSocket,
}

/// <summary>One Mosquitto shared by the tests of a class.</summary>
public sealed class MosquittoFixture : IAsyncLifetime
{
    public MosquittoProcess Broker { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        // Without Mosquitto every test of the class is skipped (RequiresFact); do not fail the fixture.
        if (MosquittoProcess.IsInstalled)
            Broker = await MosquittoProcess.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (Broker is not null)
            await Broker.DisposeAsync();
    }
}

internal static class MqttTestSupport
{
    public static MqttClientOptionsBuilder Options(MosquittoProcess broker, MqttTransport transport, MqttProtocolVersion version, string? clientId = null)
    {
        var builder = new MqttClientOptionsBuilder()
            .WithClientId(clientId ?? "test-" + Guid.NewGuid().ToString("N")[..10])
            .WithProtocolVersion(version)
            .WithTimeout(TimeSpan.FromSeconds(5));
        return transport switch
        {
            MqttTransport.Tcp => builder.WithTcpServer("127.0.0.1", broker.TcpPort),
            MqttTransport.WebSocket => builder.WithWebSocketServer(broker.WebSocketUrl),
            MqttTransport.Tls => builder.WithTcpServer("localhost", broker.TlsPort).WithTls().WithTrustedCa(broker.CaFile),
            _ => builder.WithWebSocketServer(broker.SecureWebSocketUrl).WithTrustedCa(broker.CaFile),
        };
    }

    public static string Topic(string name) => $"t/{name}/{Guid.NewGuid():N}";
}

/// <summary>Collects what a client receives, in order.</summary>
internal sealed class MessageCollector
{
    private readonly Channel<MqttApplicationMessage> _messages = Channel.CreateUnbounded<MqttApplicationMessage>();

    public MessageCollector(MqttClient client)
    {
        client.ApplicationMessageReceivedAsync += e =>
        {
            _messages.Writer.TryWrite(e.ApplicationMessage);
            return Task.CompletedTask;
        };
    }

    public async Task<MqttApplicationMessage> NextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        return await _messages.Reader.ReadAsync(cts.Token);
    }

    public async Task<List<MqttApplicationMessage>> TakeAsync(int count, TimeSpan? timeout = null)
    {
        var list = new List<MqttApplicationMessage>();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        try
        {
            while (list.Count < count)
                list.Add(await _messages.Reader.ReadAsync(cts.Token));
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"received {list.Count} of {count} messages");
        }

        return list;
    }

    public bool TryTake(out MqttApplicationMessage? message) => _messages.Reader.TryRead(out message);
}
