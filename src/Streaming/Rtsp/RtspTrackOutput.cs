using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Streaming.Rtsp;

/// <summary>Where the RTP and RTCP packets of one set-up track go: interleaved on the RTSP connection or UDP.</summary>
internal abstract class RtspTrackOutput : IDisposable
{
    protected RtspTrackOutput(int trackIndex, RtpPacketizer packetizer)
    {
        TrackIndex = trackIndex;
        Packetizer = packetizer;
        RtpHandler = SendRtp;
    }

    public int TrackIndex { get; }

    public RtpPacketizer Packetizer { get; }

    /// <summary>The packetizer's output, cached as a delegate so the send path does not allocate one per frame.</summary>
    public RtpPacketHandler RtpHandler { get; }

    /// <summary>Bytes written or sent, RTP and RTCP.</summary>
    public long BytesSent { get; protected set; }

    /// <summary>When the last access unit went out (<see cref="TimeProvider.GetTimestamp"/>), for RTCP SR.</summary>
    public long LastSentAt { get; set; }

    /// <summary>The decode time of the last access unit sent since the session's RTP time was last
    /// (re)anchored, in the track's clock; null before one. DTS never goes back on a track, so one
    /// that does (or leaps ahead) shows the source restarted its clock.</summary>
    public long? LastDts { get; set; }

    /// <summary>True when packets go on the RTSP connection and must be written under its write lock.</summary>
    public abstract bool IsInterleaved { get; }

    /// <summary>The Transport header value answering SETUP.</summary>
    public abstract string TransportHeader { get; }

    public abstract void SendRtp(ReadOnlySpan<byte> packet);

    public abstract void SendRtcp(ReadOnlySpan<byte> packet);

    public virtual void Dispose() { }
}

/// <summary>RTP/AVP/TCP: packets framed with <c>$</c>, channel and length on the RTSP connection (RFC 2326 §10.12).</summary>
internal sealed class InterleavedTrackOutput(int trackIndex, RtpPacketizer packetizer, PipeWriter writer, RtspRange channels)
    : RtspTrackOutput(trackIndex, packetizer)
{
    public RtspRange Channels { get; } = channels;

    public override bool IsInterleaved => true;

    public override string TransportHeader => new RtspTransport
    {
        Protocol = "RTP/AVP/TCP",
        Interleaved = Channels,
        Ssrc = Packetizer.Ssrc,
    }.ToString();

    public override void SendRtp(ReadOnlySpan<byte> packet)
    {
        InterleavedFrame.Write(writer, (byte)Channels.First, packet);
        BytesSent += packet.Length + InterleavedFrame.HeaderLength;
    }

    public override void SendRtcp(ReadOnlySpan<byte> packet)
    {
        InterleavedFrame.Write(writer, (byte)Channels.Second, packet);
        BytesSent += packet.Length + InterleavedFrame.HeaderLength;
    }
}

/// <summary>
/// RTP/AVP over UDP unicast: an even RTP port and the next odd RTCP port on the server
/// (RFC 3550 §11), sending to the client's ports on the address of its RTSP connection only, so the
/// relay cannot be used to flood a third party (RFC 2326 §12.39 <c>destination</c> is ignored).
/// </summary>
internal sealed class UdpTrackOutput : RtspTrackOutput
{
    private readonly Socket _rtp;
    private readonly Socket _rtcp;
    private readonly IPEndPoint _clientRtp;
    private readonly IPEndPoint _clientRtcp;
    private readonly RtspRange _clientPorts;
    private readonly CancellationTokenSource _closing = new();

    private UdpTrackOutput(int trackIndex, RtpPacketizer packetizer, Socket rtp, Socket rtcp, IPAddress client, RtspRange clientPorts)
        : base(trackIndex, packetizer)
    {
        _rtp = rtp;
        _rtcp = rtcp;
        _clientPorts = clientPorts;
        _clientRtp = new IPEndPoint(client, clientPorts.First);
        _clientRtcp = new IPEndPoint(client, clientPorts.Second);
    }

    public int ServerRtpPort => ((IPEndPoint)_rtp.LocalEndPoint!).Port;

    public override bool IsInterleaved => false;

    public override string TransportHeader => new RtspTransport
    {
        Protocol = "RTP/AVP",
        ClientPort = _clientPorts,
        ServerPort = new RtspRange(ServerRtpPort, ServerRtpPort + 1),
        Ssrc = Packetizer.Ssrc,
    }.ToString();

    /// <summary>Binds an even/odd port pair on <paramref name="local"/>; null when none could be found.</summary>
    public static UdpTrackOutput? Create(int trackIndex, RtpPacketizer packetizer, IPAddress local, IPAddress client, RtspRange clientPorts, Action onRtcp)
    {
        for (var attempt = 0; attempt < 32; attempt++)
        {
            var rtp = new Socket(local.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            Socket? rtcp = null;
            try
            {
                rtp.Bind(new IPEndPoint(local, 0));
                var port = ((IPEndPoint)rtp.LocalEndPoint!).Port;
                if (port % 2 != 0 || port == 65535)
                {
                    rtp.Dispose();
                    continue;
                }
                rtcp = new Socket(local.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
                rtcp.Bind(new IPEndPoint(local, port + 1));
                var output = new UdpTrackOutput(trackIndex, packetizer, rtp, rtcp, client, clientPorts);
                output.StartReceiving(onRtcp);
                return output;
            }
            catch (SocketException)
            {
                rtp.Dispose();
                rtcp?.Dispose();
            }
        }
        return null;
    }

    public override void SendRtp(ReadOnlySpan<byte> packet) => Send(_rtp, packet, _clientRtp);

    public override void SendRtcp(ReadOnlySpan<byte> packet) => Send(_rtcp, packet, _clientRtcp);

    private void Send(Socket socket, ReadOnlySpan<byte> packet, IPEndPoint to)
    {
        try
        {
            // UDP sends do not wait for the peer; a full socket buffer drops the datagram like the network would.
            socket.SendTo(packet, SocketFlags.None, to);
            BytesSent += packet.Length;
        }
        catch (SocketException)
        {
            // ICMP unreachable from an earlier datagram, or no buffer space: live media, keep going.
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void StartReceiving(Action onRtcp)
    {
        // RTCP receiver reports keep the session alive (RFC 2326 §12.37); datagrams on the RTP port are
        // the client's NAT "punch" packets and are only drained.
        _ = ReceiveLoopAsync(_rtcp, onRtcp, _closing.Token);
        _ = ReceiveLoopAsync(_rtp, null, _closing.Token);
    }

    private async Task ReceiveLoopAsync(Socket socket, Action? onPacket, CancellationToken ct)
    {
        var buffer = new byte[2048];
        var any = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        var errors = 0;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var r = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, ct).ConfigureAwait(false);
                errors = 0;
                if (onPacket is not null && r.RemoteEndPoint is IPEndPoint from && from.Address.Equals(_clientRtcp.Address))
                    onPacket();
            }
            catch (SocketException) when (++errors < 100)
            {
                // ICMP errors surface here on some systems; the socket is still usable. A socket
                // that only fails is given up on (sending does not depend on this loop).
            }
            catch (SocketException)
            {
                return;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    public override void Dispose()
    {
        _closing.Cancel();
        _rtp.Dispose();
        _rtcp.Dispose();
        _closing.Dispose();
    }
}
