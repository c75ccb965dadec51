using System.Buffers.Binary;
using System.Net.WebSockets;
using System.Text;

namespace Pinhole.Harness.Tests;

/// <summary>
/// Just enough MQTT 3.1.1 (OASIS spec, section 3) over a WebSocket (subprotocol "mqtt", section 6)
/// to prove the broker peer works: CONNECT, SUBSCRIBE, and reading PUBLISH packets. Not a client
/// library; the product uses MQTTnet (src/EdgeHost/Telemetry/MqttNetConnector.cs).
/// </summary>
internal sealed class RawMqttOverWebSocket : IAsyncDisposable
{
    private readonly ClientWebSocket _socket = new();
    private readonly List<byte> _buffer = [];

    public static async Task<(RawMqttOverWebSocket Client, byte ReturnCode)> ConnectAsync(Uri url, string clientId, string? user = null, string? password = null, CancellationToken ct = default, HttpMessageInvoker? invoker = null, Action<ClientWebSocketOptions>? configure = null)
    {
        var client = new RawMqttOverWebSocket();
        client._socket.Options.AddSubProtocol("mqtt");
        configure?.Invoke(client._socket.Options);
        await client._socket.ConnectAsync(url, invoker, ct);

        // 3.1: variable header "MQTT", level 4, flags, keep-alive 60 s; payload client id [user] [password].
        var flags = (byte)(0x02 | (user is null ? 0 : 0x80) | (password is null ? 0 : 0x40));
        var body = new List<byte>();
        body.AddRange(Str("MQTT"));
        body.Add(4);
        body.Add(flags);
        body.AddRange(new byte[] { 0, 60 });
        body.AddRange(Str(clientId));
        if (user is not null)
            body.AddRange(Str(user));
        if (password is not null)
            body.AddRange(Str(password));
        await client.SendAsync(0x10, body, ct);

        var (type, payload) = await client.ReadPacketAsync(ct);
        if (type >> 4 != 2 || payload.Length != 2)
            throw new InvalidOperationException($"expected CONNACK, got type {type >> 4}");
        return (client, payload[1]);
    }

    public async Task SubscribeAsync(string topicFilter, byte qos, CancellationToken ct = default)
    {
        // 3.8: packet id 1, then the filter and its requested QoS; SUBACK (3.9) echoes the id.
        var body = new List<byte> { 0, 1 };
        body.AddRange(Str(topicFilter));
        body.Add(qos);
        await SendAsync(0x82, body, ct);
        var (type, payload) = await ReadPacketAsync(ct);
        if (type >> 4 != 9 || payload.Length < 3 || payload[2] == 0x80)
            throw new InvalidOperationException($"subscription to {topicFilter} refused (packet type {type >> 4})");
    }

    public async Task<(string Topic, string Payload, bool Retain)> ReceivePublishAsync(CancellationToken ct = default)
    {
        while (true)
        {
            var (type, p) = await ReadPacketAsync(ct);
            if (type >> 4 != 3)
                continue;
            var qos = (type >> 1) & 3;
            var topicLength = BinaryPrimitives.ReadUInt16BigEndian(p);
            var topic = Encoding.UTF8.GetString(p, 2, topicLength);
            var offset = 2 + topicLength;
            if (qos > 0)
            {
                // 3.4: acknowledge QoS 1 so the broker does not resend.
                await SendAsync(0x40, [p[offset], p[offset + 1]], ct);
                offset += 2;
            }
            return (topic, Encoding.UTF8.GetString(p, offset, p.Length - offset), (type & 1) == 1);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.State == WebSocketState.Open)
            {
                await SendAsync(0xE0, [], CancellationToken.None); // DISCONNECT
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            }
        }
        catch (WebSocketException)
        {
        }
        _socket.Dispose();
    }

    private static byte[] Str(string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        var result = new byte[bytes.Length + 2];
        BinaryPrimitives.WriteUInt16BigEndian(result, (ushort)bytes.Length);
        bytes.CopyTo(result, 2);
        return result;
    }

    private async Task SendAsync(byte firstByte, IReadOnlyCollection<byte> body, CancellationToken ct)
    {
        var packet = new List<byte> { firstByte };
        var length = body.Count;
        do
        {
            // 2.2.3: remaining length, 7 bits per byte, high bit = more.
            var digit = (byte)(length % 128);
            length /= 128;
            packet.Add(length > 0 ? (byte)(digit | 0x80) : digit);
        }
        while (length > 0);
        packet.AddRange(body);
        await _socket.SendAsync(packet.ToArray(), WebSocketMessageType.Binary, true, ct);
    }

    private async Task<(byte Type, byte[] Payload)> ReadPacketAsync(CancellationToken ct)
    {
        while (true)
        {
            if (TryTakePacket(out var packet))
                return packet;
            var chunk = new byte[4096];
            var r = await _socket.ReceiveAsync(chunk, ct);
            if (r.MessageType == WebSocketMessageType.Close)
                throw new InvalidOperationException("the broker closed the WebSocket");
            _buffer.AddRange(chunk.AsSpan(0, r.Count).ToArray());
        }
    }

    private bool TryTakePacket(out (byte Type, byte[] Payload) packet)
    {
        packet = default;
        if (_buffer.Count < 2)
            return false;
        int length = 0, multiplier = 1, i = 1;
        while (true)
        {
            if (i >= _buffer.Count)
                return false;
            var b = _buffer[i++];
            length += (b & 0x7F) * multiplier;
            multiplier *= 128;
            if ((b & 0x80) == 0)
                break;
        }
        if (_buffer.Count < i + length)
            return false;
        packet = (_buffer[0], _buffer.GetRange(i, length).ToArray());
        _buffer.RemoveRange(0, i + length);
        return true;
    }
}
