using System.Threading.Channels;
using Pinhole.Testing;
using Pinhole.Transport.Mqtt;

namespace Pinhole.Transport.Tests.Mqtt;

public enum MqttTransport
{
    Tcp,
    WebSocket,
    Tls,
    SecureWebSocket,
}

/// <summary>One Mosquitto (plain and TLS listeners, see <see cref="MqttTestSupport.StartMosquittoAsync"/>) shared by the tests of a class.</summary>
public sealed class MosquittoFixture : IAsyncLifetime
{
    private TestCertificateAuthority? _ca;

    public MosquittoBroker Broker { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        // Without Mosquitto every test of the class is skipped (RequiresFact); do not fail the fixture.
        if (MosquittoBroker.SkipReason is null)
        {
            _ca = TestCertificateAuthority.Create();
            Broker = await MqttTestSupport.StartMosquittoAsync(_ca);
        }
    }

    public async Task DisposeAsync()
    {
        if (Broker is not null)
            await Broker.DisposeAsync();
        _ca?.Dispose();
    }
}

internal static class MqttTestSupport
{
    /// <summary>
    /// A Mosquitto for the client tests: plain TCP and WebSocket, plus MQTT over TLS and WebSocket over TLS when
    /// <paramref name="ca"/> is given (its certificate names 127.0.0.1 and localhost), and an ACL that allows
    /// <c>t/#</c> and nothing else (see <see cref="Topic"/>). The CA stays the caller's to dispose.
    /// </summary>
    public static Task<MosquittoBroker> StartMosquittoAsync(TestCertificateAuthority? ca, bool persistence = false) =>
        MosquittoBroker.StartAsync(new MosquittoOptions
        {
            SecureListeners = ca,
            Persistence = persistence,
            Acl = ["topic readwrite t/#"],
            ExtraConfig =
            [
                "max_queued_messages 100000",
                // Mosquitto 2.0.11 stops sending queued QoS 2 messages to a 3.1.1 subscriber once 20 (the default
                // max_inflight_messages) were in flight, even after every PUBCOMP (mosquitto_sub stalls the same
                // way). 0 = no limit; 5.0 clients are still limited by the Receive Maximum they announce.
                "max_inflight_messages 0",
            ],
        });

    public static MqttClientOptionsBuilder Options(MosquittoBroker broker, MqttTransport transport, MqttProtocolVersion version, string? clientId = null)
    {
        var builder = new MqttClientOptionsBuilder()
            .WithClientId(clientId ?? "test-" + Guid.NewGuid().ToString("N")[..10])
            .WithProtocolVersion(version)
            .WithTimeout(TimeSpan.FromSeconds(5));
        return transport switch
        {
            MqttTransport.Tcp => builder.WithTcpServer("127.0.0.1", broker.TcpPort),
            MqttTransport.WebSocket => builder.WithWebSocketServer(broker.WebSocketUrl.ToString()),
            MqttTransport.Tls => builder.WithTcpServer("localhost", broker.TlsPort).WithTls().WithTrustedCa(broker.CaFile!),
            _ => builder.WithWebSocketServer(broker.SecureWebSocketUrl!.ToString()).WithTrustedCa(broker.CaFile!),
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
