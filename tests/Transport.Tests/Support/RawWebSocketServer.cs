using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Pinhole.Transport.Tests.Support;

/// <summary>
/// A WebSocket "server" on a free loopback port that a test scripts byte by byte: it accepts one
/// connection, reads the upgrade request, and hands the socket to the test, which answers and sends
/// whatever frames it wants, well-formed or not. Its frame reader is written here, independently of
/// the code under test, and unmasks byte by byte as RFC 6455 §5.3 describes.
/// </summary>
internal sealed class RawWebSocketServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private Socket? _client;
    private byte[] _pending = [];

    public RawWebSocketServer() => _listener.Start();

    public Uri Url => new($"ws://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/uplink");

    public Socket Client => _client ?? throw new InvalidOperationException("no client yet");

    /// <summary>The request head (request line and headers) the client sent.</summary>
    public string Request { get; private set; } = "";

    /// <summary>Accepts the client and reads its upgrade request; returns its Sec-WebSocket-Key.</summary>
    public async Task<string> AcceptAsync(CancellationToken cancellationToken)
    {
        _client = await _listener.AcceptSocketAsync(cancellationToken);
        var buffer = new List<byte>();
        var chunk = new byte[1024];
        while (true)
        {
            var n = await _client.ReceiveAsync(chunk, cancellationToken);
            if (n == 0) throw new IOException("client closed before its request ended");
            buffer.AddRange(chunk.AsSpan(0, n));
            var text = Encoding.Latin1.GetString(buffer.ToArray());
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end < 0) continue;
            Request = text[..end];
            _pending = buffer.Skip(end + 4).ToArray();
            var key = Request.Split("\r\n").First(l => l.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase));
            return key[(key.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
    }

    public static string Accept(string key) =>
        Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));

    /// <summary>Answers 101 with a correct accept key and the uplink subprotocol, plus <paramref name="after"/> in the same write.</summary>
    public Task SwitchAsync(string key, byte[]? after = null, string subProtocol = "pinhole-uplink.v1") =>
        SendAsync([.. Encoding.ASCII.GetBytes($"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {Accept(key)}\r\nSec-WebSocket-Protocol: {subProtocol}\r\n\r\n"), .. after ?? []]);

    public async Task SendAsync(byte[] bytes)
    {
        var sent = 0;
        while (sent < bytes.Length) sent += await Client.SendAsync(bytes.AsMemory(sent));
    }

    /// <summary>An unmasked server frame.</summary>
    public static byte[] Frame(int opcode, ReadOnlySpan<byte> payload, bool fin = true)
    {
        var header = new List<byte> { (byte)((fin ? 0x80 : 0) | opcode) };
        if (payload.Length <= 125) header.Add((byte)payload.Length);
        else if (payload.Length <= ushort.MaxValue) { header.Add(126); header.Add((byte)(payload.Length >> 8)); header.Add((byte)payload.Length); }
        else { header.Add(127); var len = new byte[8]; BinaryPrimitives.WriteUInt64BigEndian(len, (ulong)payload.Length); header.AddRange(len); }
        return [.. header, .. payload];
    }

    /// <summary>Reads one client frame: (FIN, opcode, mask key, unmasked payload).</summary>
    public async Task<(bool Fin, int Opcode, byte[] Key, byte[] Payload)> ReadFrameAsync(CancellationToken cancellationToken)
    {
        var head = await ReadExactlyAsync(2, cancellationToken);
        long length = head[1] & 0x7F;
        if (length == 126) length = BinaryPrimitives.ReadUInt16BigEndian(await ReadExactlyAsync(2, cancellationToken));
        else if (length == 127) length = (long)BinaryPrimitives.ReadUInt64BigEndian(await ReadExactlyAsync(8, cancellationToken));
        if ((head[1] & 0x80) == 0) throw new InvalidDataException("client frame not masked (RFC 6455 §5.1 requires it)");
        var key = await ReadExactlyAsync(4, cancellationToken);
        var payload = await ReadExactlyAsync((int)length, cancellationToken);
        for (var i = 0; i < payload.Length; i++) payload[i] ^= key[i % 4];
        return ((head[0] & 0x80) != 0, head[0] & 0x0F, key, payload);
    }

    private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken cancellationToken)
    {
        var result = new byte[count];
        var have = Math.Min(count, _pending.Length);
        _pending.AsSpan(0, have).CopyTo(result);
        _pending = _pending[have..];
        while (have < count)
        {
            var n = await Client.ReceiveAsync(result.AsMemory(have), cancellationToken);
            if (n == 0) throw new EndOfStreamException("client closed");
            have += n;
        }
        return result;
    }

    public void Dispose()
    {
        _client?.Dispose();
        _listener.Stop();
    }
}
