using System.Net;
using System.Net.Sockets;
using Pinhole.Transport.Mqtt;
using Pinhole.Transport.Mqtt.Adapter;
using Pinhole.Transport.Mqtt.Channels;
using Pinhole.Transport.Mqtt.Formatter;
using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Tests.Mqtt;

/// <summary>
/// A scripted broker on a loopback port, built on our own formatter: the test decides every answer, so it can
/// withhold acknowledgements, drop the connection at a chosen step, or send malformed bytes.
/// </summary>
internal sealed class FakeMqttBroker : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly MqttProtocolVersion _version;
    private readonly List<FakeBrokerConnection> _connections = [];

    public FakeMqttBroker(MqttProtocolVersion version = MqttProtocolVersion.V500, int port = 0)
    {
        _version = version;
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public MqttClientOptionsBuilder Options() => new MqttClientOptionsBuilder()
        .WithTcpServer("127.0.0.1", Port).WithClientId("fake-test").WithProtocolVersion(_version).WithTimeout(TimeSpan.FromSeconds(5));

    /// <summary>Accepts the next connection, reads its CONNECT and answers with <paramref name="connAck"/>.</summary>
    public async Task<(FakeBrokerConnection Connection, MqttConnectPacket Connect)> AcceptAsync(MqttConnAckPacket? connAck = null)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var socket = await _listener.AcceptSocketAsync(timeout.Token);
        var connection = new FakeBrokerConnection(socket, _version);
        _connections.Add(connection);
        var connect = await connection.ReceiveAsync<MqttConnectPacket>();
        await connection.SendAsync(connAck ?? new MqttConnAckPacket());
        return (connection, connect);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var c in _connections)
            await c.DisposeAsync();
        _listener.Stop();
        _listener.Dispose();
    }
}

internal sealed class FakeBrokerConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly MqttChannelAdapter _adapter;

    public FakeBrokerConnection(Socket socket, MqttProtocolVersion version)
    {
        _socket = socket;
        _adapter = new MqttChannelAdapter(new AcceptedSocketChannel(socket), new MqttPacketFormatter(version), TimeProvider.System);
    }

    public async Task<T> ReceiveAsync<T>(TimeSpan? timeout = null)
        where T : MqttPacket
    {
        var packet = await ReceiveAnyAsync(timeout);
        return packet as T ?? throw new InvalidOperationException($"expected {typeof(T).Name}, got {packet?.ToString() ?? "end of stream"}");
    }

    /// <summary>The next packet, or null when the client closed the connection.</summary>
    public async Task<MqttPacket?> ReceiveAnyAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        return await _adapter.ReceivePacketAsync(cts.Token);
    }

    /// <summary>True when nothing arrives within <paramref name="wait"/>.</summary>
    public async Task<bool> StaysQuietAsync(TimeSpan wait)
    {
        try
        {
            var packet = await ReceiveAnyAsync(wait);
            throw new InvalidOperationException($"expected silence, got {packet}");
        }
        catch (OperationCanceledException)
        {
            return true;
        }
    }

    public Task SendAsync(MqttPacket packet) => _adapter.SendPacketAsync(packet, CancellationToken.None);

    public async Task SendRawAsync(byte[] bytes) => await _socket.SendAsync(bytes);

    public void Kill() => _socket.Close(0);

    public async ValueTask DisposeAsync() => await _adapter.DisposeAsync();

    private sealed class AcceptedSocketChannel(Socket socket) : IMqttChannel
    {
        public string Endpoint => "fake-broker-side";

        public Task ConnectAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            try
            {
                return await socket.ReceiveAsync(buffer, cancellationToken);
            }
            catch (SocketException)
            {
                return 0;
            }
            catch (ObjectDisposedException)
            {
                return 0;
            }
        }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken) => await socket.SendAsync(buffer, cancellationToken);

        public Task CloseAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Abort() => socket.Dispose();

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
