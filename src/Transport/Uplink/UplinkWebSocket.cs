using System.Buffers;
using System.Net.WebSockets;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Uplink;

/// <summary>
/// The uplink protocol over one WebSocket: one uplink message per binary WebSocket message. Reads
/// whole messages with the size limit checked from the header before the body is buffered, and
/// serialises sends (a WebSocket allows one send at a time). The relay endpoint's side, and tests
/// that play a device against it; the device itself uses <see cref="UplinkClientConnection"/>.
/// Does not own the socket's lifetime beyond <see cref="DisposeAsync"/>.
/// </summary>
public sealed class UplinkWebSocket : IAsyncDisposable
{
    private readonly WebSocket _socket;
    private readonly UplinkLimits _limits;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private byte[] _receiveBuffer;
    private long _mediaBytesSent, _mediaBytesReceived;

    /// <summary>Wraps an open WebSocket.</summary>
    /// <param name="socket">The connected socket; disposed with this object.</param>
    /// <param name="limits">Limits applied to received messages.</param>
    public UplinkWebSocket(WebSocket socket, UplinkLimits? limits = null)
    {
        _socket = socket ?? throw new ArgumentNullException(nameof(socket));
        _limits = limits ?? UplinkLimits.Default;
        _receiveBuffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
    }

    /// <summary>The underlying socket.</summary>
    public WebSocket Socket => _socket;

    /// <summary>Media-channel bytes (whole messages) sent so far.</summary>
    public long MediaBytesSent => Interlocked.Read(ref _mediaBytesSent);

    /// <summary>Media-channel bytes (whole messages) received so far; what <see cref="Ack.BytesReceived"/> reports.</summary>
    public long MediaBytesReceived => Interlocked.Read(ref _mediaBytesReceived);

    /// <summary>Receives the next message. Returns null when the peer closed the WebSocket.</summary>
    /// <exception cref="UplinkProtocolException">The peer sent a text message, an oversized message or malformed bytes.</exception>
    /// <exception cref="WebSocketException">The connection failed.</exception>
    public async ValueTask<UplinkMessage?> ReceiveAsync(CancellationToken cancellationToken)
    {
        var filled = 0;
        var expected = -1;
        while (true)
        {
            if (filled == _receiveBuffer.Length) Grow(filled * 2);
            var limit = expected < 0 ? _receiveBuffer.Length : expected;
            var result = await _socket.ReceiveAsync(_receiveBuffer.AsMemory(filled, Math.Max(1, limit - filled)), cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                await AnswerCloseAsync();
                return null;
            }
            if (result.MessageType != WebSocketMessageType.Binary)
                throw new UplinkProtocolException("text WebSocket message on the uplink; every message is binary");
            filled += result.Count;
            if (expected < 0 && UplinkCodec.TryPeekBodyLength(_receiveBuffer.AsSpan(0, filled), _limits, out var body))
            {
                expected = UplinkProtocol.HeaderSize + body;
                if (expected > _receiveBuffer.Length) Grow(expected);
            }
            if (expected >= 0 && filled > expected)
                throw new UplinkProtocolException($"WebSocket message longer than the {expected} bytes its header announced");
            if (result.EndOfMessage)
            {
                if (filled != expected)
                    throw new UplinkProtocolException($"WebSocket message of {filled} bytes, its header announced {Math.Max(expected, UplinkProtocol.HeaderSize)}");
                var message = UplinkCodec.ParseOne(_receiveBuffer.AsMemory(0, filled), _limits);
                if (message.Channel == UplinkChannel.Media) Interlocked.Add(ref _mediaBytesReceived, filled);
                return message;
            }
            if (expected >= 0 && filled == expected)
            {
                // Every announced byte is here but the WebSocket message has not ended: only empty
                // continuation frames may follow.
                var scratch = new byte[16];
                WebSocketReceiveResult probe;
                do
                {
                    probe = await _socket.ReceiveAsync(scratch, cancellationToken);
                    if (probe.Count > 0 || probe.MessageType == WebSocketMessageType.Close)
                        throw new UplinkProtocolException($"WebSocket message longer than the {expected} bytes its header announced");
                }
                while (!probe.EndOfMessage);
                var message = UplinkCodec.ParseOne(_receiveBuffer.AsMemory(0, filled), _limits);
                if (message.Channel == UplinkChannel.Media) Interlocked.Add(ref _mediaBytesReceived, filled);
                return message;
            }
        }
    }

    // Completes the close handshake the peer started (RFC 6455 §5.5.1), so neither side waits for it.
    private async Task AnswerCloseAsync()
    {
        if (_socket.State != WebSocketState.CloseReceived) return;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _sendLock.WaitAsync(cts.Token);
        try
        {
            await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", cts.Token);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException or ObjectDisposedException)
        {
            _socket.Abort();
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Sends one message.</summary>
    public async ValueTask SendAsync(UplinkMessage message, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        var length = UplinkCodec.Write(buffer, message);
        await _sendLock.WaitAsync(cancellationToken);
        try
        {
            await _socket.SendAsync(buffer.WrittenMemory, WebSocketMessageType.Binary, true, cancellationToken);
            if (message.Channel == UplinkChannel.Media) Interlocked.Add(ref _mediaBytesSent, length);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Sends one <see cref="MediaFrame"/> as one WebSocket frame.</summary>
    /// <returns>The message size in bytes.</returns>
    public async ValueTask<int> SendFrameAsync(ulong sequence, ushort streamId, ulong sendTimestamp, AccessUnit unit, CancellationToken cancellationToken)
    {
        var length = UplinkProtocol.FrameHeaderSize + unit.Data.Length;
        if (length - UplinkProtocol.HeaderSize > _limits.MaxMessageBytes)
            throw new ArgumentException($"frame of {unit.Data.Length} bytes exceeds the {_limits.MaxMessageBytes}-byte message limit", nameof(unit));
        // Header and payload in one buffer, one WebSocket frame: a client WebSocket masks (so copies)
        // every byte anyway, and a second frame would cost a second send and mask key per access unit.
        await _sendLock.WaitAsync(cancellationToken);
        var message = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            UplinkCodec.WriteFrameHeader(message, sequence, streamId, sendTimestamp, unit);
            unit.Data.Span.CopyTo(message.AsSpan(UplinkProtocol.FrameHeaderSize));
            await _socket.SendAsync(message.AsMemory(0, length), WebSocketMessageType.Binary, true, cancellationToken);
            Interlocked.Add(ref _mediaBytesSent, length);
            return length;
        }
        finally
        {
            _sendLock.Release();
            ArrayPool<byte>.Shared.Return(message);
        }
    }

    /// <summary>Sends <paramref name="goodbye"/> (best effort) and closes the WebSocket, waiting at most <paramref name="timeout"/>.</summary>
    public async Task CloseAsync(Goodbye? goodbye, WebSocketCloseStatus status, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(goodbye);
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            if (_socket.State == WebSocketState.Open) await SendAsync(goodbye, cts.Token);
            await _sendLock.WaitAsync(cts.Token);
            try
            {
                if (_socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
                    await _socket.CloseOutputAsync(status, goodbye.Reason.ToToken(), cts.Token);
            }
            finally
            {
                _sendLock.Release();
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException or IOException)
        {
            _socket.Abort();
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        var buffer = Interlocked.Exchange(ref _receiveBuffer, []);
        if (buffer.Length > 0) ArrayPool<byte>.Shared.Return(buffer);
        return ValueTask.CompletedTask;
    }

    private void Grow(int size)
    {
        var bigger = ArrayPool<byte>.Shared.Rent(size);
        _receiveBuffer.AsSpan().CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_receiveBuffer);
        _receiveBuffer = bigger;
    }
}
