using System.Net.Security;
using System.Net.Sockets;

namespace Pinhole.Transport.Mqtt.Channels;

/// <summary>MQTT over TCP (port 1883) or TLS over TCP (port 8883). Disposing closes the socket.</summary>
public sealed class MqttTcpChannel : IMqttChannel
{
    private readonly string _host;
    private readonly int _port;
    private readonly MqttClientTlsOptions? _tls;
    private Socket? _socket;
    private Stream? _stream;

    /// <summary>Creates the channel; nothing happens on the network until <see cref="ConnectAsync"/>.</summary>
    /// <param name="host">Broker host name or address.</param>
    /// <param name="port">Broker port.</param>
    /// <param name="tls">TLS settings, or null for plain TCP.</param>
    public MqttTcpChannel(string host, int port, MqttClientTlsOptions? tls = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(port);
        _host = host;
        _port = port;
        _tls = tls is { UseTls: true } ? tls : null;
    }

    /// <inheritdoc />
    public string Endpoint => $"{(_tls is null ? "mqtt" : "mqtts")}://{_host}:{_port}";

    /// <inheritdoc />
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(_host, _port, cancellationToken);
            Stream stream = new NetworkStream(socket, ownsSocket: true);
            if (_tls is not null)
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = _tls.TargetHost ?? _host,
                    EnabledSslProtocols = _tls.SslProtocols,
                    RemoteCertificateValidationCallback = _tls.CreateValidationCallback(),
                }, cancellationToken);
                stream = ssl;
            }

            _socket = socket;
            _stream = stream;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken) =>
        Stream.ReadAsync(buffer, cancellationToken);

    /// <inheritdoc />
    public ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken) =>
        Stream.WriteAsync(buffer, cancellationToken);

    /// <inheritdoc />
    public async Task CloseAsync(CancellationToken cancellationToken)
    {
        if (_stream is SslStream ssl)
            await ssl.ShutdownAsync();
        try
        {
            _socket?.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // Already gone; nothing left to close gracefully.
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <inheritdoc />
    public void Abort()
    {
        _socket?.Dispose();
        _stream?.Dispose();
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        Abort();
        return ValueTask.CompletedTask;
    }

    private Stream Stream => _stream ?? throw new InvalidOperationException("the channel is not connected");
}
