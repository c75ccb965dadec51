using System.Net.WebSockets;

namespace Pinhole.Transport.Mqtt.Channels;

/// <summary>
/// MQTT over WebSocket (MQTT 5.0 section 6): subprotocol <c>mqtt</c>, binary frames only. Frame
/// boundaries mean nothing: a packet may span frames and a frame may hold several packets, so reads
/// return whatever bytes arrived and the adapter does the framing.
/// </summary>
public sealed class MqttWebSocketChannel : IMqttChannel
{
    private readonly Uri _uri;
    private readonly MqttClientTlsOptions? _tls;
    private ClientWebSocket? _socket;

    /// <summary>Creates the channel for a <c>ws://</c> or <c>wss://</c> URL.</summary>
    /// <param name="uri">Broker URL, for example <c>wss://broker.example.com:8884/mqtt</c>.</param>
    /// <param name="tls">TLS settings for <c>wss://</c> (a pinned CA); null means default validation.</param>
    public MqttWebSocketChannel(Uri uri, MqttClientTlsOptions? tls = null)
    {
        ArgumentNullException.ThrowIfNull(uri);
        if (uri.Scheme is not ("ws" or "wss"))
            throw new ArgumentException($"expected a ws:// or wss:// URL, got {uri.Scheme}://", nameof(uri));
        _uri = uri;
        _tls = tls;
    }

    /// <inheritdoc />
    public string Endpoint => $"{_uri.Scheme}://{_uri.Authority}{_uri.AbsolutePath}";

    /// <inheritdoc />
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        try
        {
            socket.Options.AddSubProtocol("mqtt");
            // MQTT keep alive already probes the link; WebSocket pings would only add traffic.
            socket.Options.KeepAliveInterval = TimeSpan.Zero;
            if (_tls?.CreateValidationCallback() is { } validate)
                socket.Options.RemoteCertificateValidationCallback = validate;
            await socket.ConnectAsync(_uri, cancellationToken);
            if (socket.SubProtocol != "mqtt")
                throw new MqttCommunicationException($"{Endpoint} did not accept the 'mqtt' WebSocket subprotocol (got '{socket.SubProtocol}')");
            _socket = socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var socket = Socket;
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, cancellationToken);
            switch (result.MessageType)
            {
                case WebSocketMessageType.Close:
                    return 0;
                case WebSocketMessageType.Text:
                    // [MQTT-6.0.0-1]: MQTT control packets travel in binary frames only.
                    throw new MqttProtocolException("WebSocket text frame received; MQTT uses binary frames only [MQTT-6.0.0-1]");
            }

            if (result.Count > 0)
                return result.Count;
        }
    }

    /// <inheritdoc />
    public ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken) =>
        Socket.SendAsync(buffer, WebSocketMessageType.Binary, endOfMessage: true, cancellationToken);

    /// <inheritdoc />
    public async Task CloseAsync(CancellationToken cancellationToken)
    {
        if (_socket is { State: WebSocketState.Open or WebSocketState.CloseReceived } socket)
            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cancellationToken);
    }

    /// <inheritdoc />
    public void Abort() => _socket?.Abort();

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _socket?.Dispose();
        return ValueTask.CompletedTask;
    }

    private ClientWebSocket Socket => _socket ?? throw new InvalidOperationException("the channel is not connected");
}
