using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Pinhole.Transport.Stun;

namespace Pinhole.Relay.WebRtc;

/// <summary>One way to the browser that passed an ICE connectivity check: the shared UDP socket to
/// one address, or one ICE-TCP connection (RFC 6544).</summary>
internal abstract class IcePath
{
    public abstract IPEndPoint Remote { get; }

    public abstract bool IsTcp { get; }

    /// <summary>Sends one datagram (STUN, DTLS, SRTP or SRTCP). Never throws: a lost packet is what UDP does anyway.</summary>
    public abstract void Send(ReadOnlySpan<byte> packet);

    public override string ToString() => (IsTcp ? "tcp:" : "udp:") + Remote;
}

internal sealed class UdpPath(Socket socket, IPEndPoint remote) : IcePath
{
    public override IPEndPoint Remote => remote;

    public override bool IsTcp => false;

    public override void Send(ReadOnlySpan<byte> packet)
    {
        try
        {
            socket.SendTo(packet, SocketFlags.None, remote);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    public override bool Equals(object? obj) => obj is UdpPath other && other.Remote.Equals(Remote);

    public override int GetHashCode() => Remote.GetHashCode();
}

/// <summary>ICE-TCP: every packet framed with a 2-byte length (RFC 4571) on one accepted connection.</summary>
internal sealed class TcpPath : IcePath, IDisposable
{
    private readonly Socket _socket;
    private readonly Lock _lock = new();
    private readonly IPEndPoint _remote;
    private bool _broken;

    public TcpPath(Socket socket)
    {
        _socket = socket;
        _remote = (IPEndPoint)socket.RemoteEndPoint!;
        // A stalled viewer must not hold the sender: a send that cannot complete drops the connection.
        _socket.SendTimeout = 2000;
        _socket.NoDelay = true;
    }

    public override IPEndPoint Remote => _remote;

    public override bool IsTcp => true;

    public override void Send(ReadOnlySpan<byte> packet)
    {
        if (packet.Length > IceTcpFraming.MaxPacketLength) return;
        // RTP packets are MTU-sized; only an odd large one rents instead of using the stack.
        var rented = packet.Length > 2048 ? ArrayPool<byte>.Shared.Rent(packet.Length + 2) : null;
        Span<byte> buffer = rented ?? stackalloc byte[2048 + 2];
        var frame = buffer[..IceTcpFraming.WriteFrame(packet, buffer)];
        try
        {
            SendFrame(frame);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private void SendFrame(ReadOnlySpan<byte> frame)
    {
        lock (_lock)
        {
            if (_broken) return;
            try
            {
                var sent = 0;
                while (sent < frame.Length) sent += _socket.Send(frame[sent..], SocketFlags.None);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                _broken = true;
                try { _socket.Dispose(); } catch (ObjectDisposedException) { }
            }
        }
    }

    public void Dispose()
    {
        lock (_lock) _broken = true;
        _socket.Dispose();
    }
}
