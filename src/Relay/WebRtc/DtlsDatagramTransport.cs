using System.Collections.Concurrent;
using Org.BouncyCastle.Tls;

namespace Pinhole.Relay.WebRtc;

/// <summary>
/// BouncyCastle's view of the ICE path: DTLS records the demultiplexer routed to this peer arrive
/// through <see cref="Deliver"/>; what DTLS sends goes out on the peer's current path.
/// </summary>
internal sealed class DtlsDatagramTransport(Func<IcePath?> path) : DatagramTransport
{
    // Leaves room for IP, UDP and a TURN channel header under a 1280-byte IPv6 minimum MTU.
    private const int Mtu = 1200;
    private readonly BlockingCollection<byte[]> _incoming = new(boundedCapacity: 256);
    private volatile bool _closed;

    public void Deliver(ReadOnlySpan<byte> record)
    {
        if (_closed) return;
        // A full queue drops: DTLS retransmits.
        _incoming.TryAdd(record.ToArray());
    }

    public int GetReceiveLimit() => 1500;

    public int GetSendLimit() => Mtu;

    public int Receive(byte[] buf, int off, int len, int waitMillis) => Receive(buf.AsSpan(off, len), waitMillis);

    public int Receive(Span<byte> buffer, int waitMillis)
    {
        if (_closed) throw new TlsTimeoutException("the WebRTC session ended");
        try
        {
            if (!_incoming.TryTake(out var record, Math.Max(0, waitMillis))) return -1;
            var n = Math.Min(record.Length, buffer.Length);
            record.AsSpan(0, n).CopyTo(buffer);
            return n;
        }
        catch (ObjectDisposedException)
        {
            throw new TlsTimeoutException("the WebRTC session ended");
        }
    }

    public void Send(byte[] buf, int off, int len) => Send(buf.AsSpan(off, len));

    public void Send(ReadOnlySpan<byte> buffer)
    {
        if (_closed) return;
        path()?.Send(buffer);
    }

    public void Close()
    {
        _closed = true;
        _incoming.CompleteAdding();
    }
}
