namespace Pinhole.Transport.Mqtt.Channels;

/// <summary>
/// Moves bytes between the client and the broker and knows nothing of MQTT framing (MQTTnet's
/// channel layer): TCP, TLS over TCP, WebSocket. One reader and one writer may use it at the same time.
/// </summary>
public interface IMqttChannel : IAsyncDisposable
{
    /// <summary>Where the channel goes, for logs (never contains credentials).</summary>
    string Endpoint { get; }

    /// <summary>Opens the connection (TCP connect, TLS handshake, WebSocket upgrade).</summary>
    Task ConnectAsync(CancellationToken cancellationToken);

    /// <summary>Reads some bytes; returns 0 when the peer closed the connection.</summary>
    ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Writes all of <paramref name="buffer"/>.</summary>
    ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Closes gracefully after the last write (TCP FIN, WebSocket close handshake).</summary>
    Task CloseAsync(CancellationToken cancellationToken);

    /// <summary>Tears the connection down at once; pending reads and writes fail. Safe to call more than once.</summary>
    void Abort();
}
