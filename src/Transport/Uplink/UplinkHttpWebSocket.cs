using System.Buffers.Binary;
using System.Net.WebSockets;

namespace Pinhole.Transport.Uplink;

/// <summary>
/// The relay's end of the uplink's HTTP fallback presented as a <see cref="WebSocket"/>, so the session code
/// (<see cref="UplinkWebSocket"/> and what sits on it) runs unchanged: <see cref="ReceiveAsync(Memory{byte}, CancellationToken)"/>
/// reads the device's <c>POST</c> body (already de-chunked by the server) and returns one uplink message per
/// "WebSocket message", using the uplink header's length to find the boundaries; sends write one message to the
/// <c>GET</c>'s response body and flush it, which the server sends as one chunk. Closing ends the response.
/// </summary>
public sealed class UplinkHttpWebSocket : WebSocket
{
    private readonly Stream _up;
    private readonly Stream _down;
    private readonly Func<Task> _completeDown;
    private readonly Action _abort;
    private readonly byte[] _header = new byte[UplinkProtocol.HeaderSize];
    private int _headerFilled, _headerGiven;
    private long _remaining; // bytes of the current message not yet returned; 0 between messages
    private WebSocketState _state = WebSocketState.Open;

    /// <summary>Wraps the two halves of one HTTP uplink session.</summary>
    /// <param name="up">The device's request body (bytes of uplink messages).</param>
    /// <param name="down">The response body to the device.</param>
    /// <param name="completeDown">Ends the response body cleanly (the device then sees its stream end).</param>
    /// <param name="abort">Aborts both HTTP requests.</param>
    public UplinkHttpWebSocket(Stream up, Stream down, Func<Task> completeDown, Action abort)
    {
        _up = up ?? throw new ArgumentNullException(nameof(up));
        _down = down ?? throw new ArgumentNullException(nameof(down));
        _completeDown = completeDown ?? throw new ArgumentNullException(nameof(completeDown));
        _abort = abort ?? throw new ArgumentNullException(nameof(abort));
    }

    /// <inheritdoc />
    public override WebSocketCloseStatus? CloseStatus => _state is WebSocketState.Closed or WebSocketState.CloseReceived ? WebSocketCloseStatus.NormalClosure : null;

    /// <inheritdoc />
    public override string? CloseStatusDescription => null;

    /// <inheritdoc />
    public override WebSocketState State => _state;

    /// <inheritdoc />
    public override string? SubProtocol => UplinkProtocol.SubProtocol;

    /// <inheritdoc />
    public override void Abort()
    {
        _state = WebSocketState.Aborted;
        _abort();
    }

    /// <inheritdoc />
    public override async Task CloseAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken)
    {
        await CloseOutputAsync(closeStatus, statusDescription, cancellationToken).ConfigureAwait(false);
        _state = WebSocketState.Closed;
    }

    /// <inheritdoc />
    public override async Task CloseOutputAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken)
    {
        if (_state is WebSocketState.Open or WebSocketState.CloseReceived)
        {
            _state = _state == WebSocketState.CloseReceived ? WebSocketState.Closed : WebSocketState.CloseSent;
            await _completeDown().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        if (_state is not (WebSocketState.Closed or WebSocketState.Aborted)) _state = WebSocketState.Closed;
    }

    /// <inheritdoc />
    public override async Task<WebSocketReceiveResult> ReceiveAsync(ArraySegment<byte> buffer, CancellationToken cancellationToken)
    {
        var result = await ReceiveAsync(buffer.AsMemory(), cancellationToken).ConfigureAwait(false);
        return result.MessageType == WebSocketMessageType.Close
            ? new WebSocketReceiveResult(0, WebSocketMessageType.Close, true, WebSocketCloseStatus.NormalClosure, null)
            : new WebSocketReceiveResult(result.Count, result.MessageType, result.EndOfMessage);
    }

    /// <inheritdoc />
    public override async ValueTask<ValueWebSocketReceiveResult> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (buffer.IsEmpty) throw new ArgumentException("empty receive buffer", nameof(buffer));
        if (_remaining == 0)
        {
            // A message starts: its 6-byte header says how long it is.
            _headerFilled = _headerGiven = 0;
            while (_headerFilled < _header.Length)
            {
                var n = await _up.ReadAsync(_header.AsMemory(_headerFilled), cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    if (_headerFilled > 0) throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "the device's stream ended in the middle of a message");
                    _state = _state == WebSocketState.CloseSent ? WebSocketState.Closed : WebSocketState.CloseReceived;
                    return new ValueWebSocketReceiveResult(0, WebSocketMessageType.Close, true);
                }
                _headerFilled += n;
            }
            _remaining = UplinkProtocol.HeaderSize + (long)BinaryPrimitives.ReadUInt32BigEndian(_header.AsSpan(2));
        }
        int count;
        if (_headerGiven < _header.Length)
        {
            count = Math.Min(buffer.Length, _header.Length - _headerGiven);
            _header.AsSpan(_headerGiven, count).CopyTo(buffer.Span);
            _headerGiven += count;
        }
        else
        {
            count = await _up.ReadAsync(buffer[..(int)Math.Min(buffer.Length, _remaining)], cancellationToken).ConfigureAwait(false);
            if (count == 0) throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "the device's stream ended in the middle of a message");
        }
        _remaining -= count;
        return new ValueWebSocketReceiveResult(count, WebSocketMessageType.Binary, _remaining == 0);
    }

    /// <inheritdoc />
    public override Task SendAsync(ArraySegment<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken) =>
        SendAsync(buffer.AsMemory(), messageType, endOfMessage, cancellationToken).AsTask();

    /// <inheritdoc />
    public override async ValueTask SendAsync(ReadOnlyMemory<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken)
    {
        if (_state is not (WebSocketState.Open or WebSocketState.CloseReceived)) throw new WebSocketException(WebSocketError.InvalidState, "the uplink's HTTP stream is closed");
        if (messageType != WebSocketMessageType.Binary) throw new ArgumentException("the uplink carries binary messages only", nameof(messageType));
        try
        {
            await _down.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (endOfMessage) await _down.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "the uplink's HTTP stream failed", e);
        }
    }
}
