using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Pinhole.Relay.Tests.WebRtc;

/// <summary>What <see cref="LossyUdpProxy"/> does to the relay's RTP on its way to the browser.</summary>
internal enum LossMode
{
    /// <summary>Everything passes.</summary>
    None,

    /// <summary>Each RTP packet (first copies and retransmissions alike) is dropped with <see cref="LossyUdpProxy.LossRate"/>.</summary>
    Random,

    /// <summary>
    /// Every RTP packet is dropped for the first 300 ms and then until a small (delta) frame has
    /// been seen whole; that frame and everything after pass. The browser's first picture is then
    /// not a keyframe, so it must ask for one (PLI) before it can show anything.
    /// </summary>
    StartWithoutKeyframe,
}

/// <summary>
/// A UDP hop between the browser and the relay's WebRTC port, on another loopback address: the
/// relay advertises <see cref="Address"/> (webrtc.publicAddresses) with its own port, the browser
/// sends there, and the proxy forwards both ways, dropping relay-to-browser RTP as
/// <see cref="Mode"/> says. STUN, DTLS and RTCP always pass. SRTP leaves the RTP header readable,
/// so the proxy can tell a retransmission (the same sequence number, byte for byte the packet
/// it dropped) and the relay's answer to a PLI (the cached pictures sent again one RTP tick apart).
/// No root needed: nothing but two sockets on 127.0.0.0/8.
/// </summary>
internal sealed class LossyUdpProxy : IDisposable
{
    private const int MaxDatagram = 2048;
    private const int SmallFramePackets = 6;
    private readonly Socket _front;
    private readonly Socket _back;
    private readonly Thread _fromBrowser;
    private readonly Thread _fromRelay;
    private readonly Random _random = new(17);
    private readonly Dictionary<ushort, byte[]> _dropped = [];
    private readonly List<byte[]> _held = [];
    private volatile EndPoint? _browser;
    private volatile bool _stopped;
    private long _firstRtpAt = -1;
    private bool _startPassed;
    private bool _holding;
    private uint? _lastFrameTimestamp;
    private int _framePackets;
    private readonly List<int> _framePacketCounts = [];

    public LossyUdpProxy(IPAddress address, IPEndPoint relay)
    {
        Address = address;
        _front = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _front.Bind(new IPEndPoint(address, relay.Port));
        _back = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _back.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _back.Connect(relay);
        _fromBrowser = new Thread(ForwardFromBrowser) { IsBackground = true, Name = "proxy-from-browser" };
        _fromRelay = new Thread(ForwardFromRelay) { IsBackground = true, Name = "proxy-from-relay" };
        _fromBrowser.Start();
        _fromRelay.Start();
    }

    public IPAddress Address { get; }

    public volatile LossMode Mode;

    public double LossRate { get; set; } = 0.05;

    /// <summary>RTP packets the proxy dropped (all modes).</summary>
    public long Dropped;

    /// <summary>RTP packets forwarded to the browser.</summary>
    public long Forwarded;

    /// <summary>Packets that reached the browser with the sequence number and exact bytes of one dropped earlier (in <see cref="LossMode.Random"/>).</summary>
    public long Recovered;

    /// <summary>Frames forwarded whose RTP timestamp is 1 or 2 ticks after the previous frame's: pictures replayed in a burst (the answer to a PLI).</summary>
    public long ReplayedFrames;

    /// <summary>RTP packets of the first replayed picture (a keyframe of the test clip takes far more than a delta frame).</summary>
    public int FirstReplayedFramePackets;

    /// <summary>When the first RTP packet passed in <see cref="LossMode.StartWithoutKeyframe"/> (Environment.TickCount64), or 0.</summary>
    public long StartPassedAt;

    private void ForwardFromBrowser()
    {
        var buffer = new byte[MaxDatagram];
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        while (!_stopped)
        {
            try
            {
                var n = _front.ReceiveFrom(buffer, ref from);
                _browser = from;
                _back.Send(buffer.AsSpan(0, n));
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (_stopped) return;
            }
        }
    }

    private void ForwardFromRelay()
    {
        var buffer = new byte[MaxDatagram];
        while (!_stopped)
        {
            try
            {
                var n = _back.Receive(buffer);
                var packet = buffer.AsSpan(0, n).ToArray();
                lock (_dropped)
                {
                    foreach (var p in Decide(packet)) Send(p);
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (_stopped) return;
            }
        }
    }

    // RFC 7983: 128-191 is RTP or RTCP; with rtcp-mux, RTCP's packet types 192-223 sit where RTP has marker + payload type (RFC 5761 §4).
    private static bool IsRtp(byte[] p) => p.Length >= 12 && p[0] is >= 128 and <= 191 && p[1] is not (>= 192 and <= 223);

    private IEnumerable<byte[]> Decide(byte[] packet)
    {
        if (!IsRtp(packet))
        {
            yield return packet;
            yield break;
        }
        var seq = BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(2));
        var marker = (packet[1] & 0x80) != 0;
        switch (Mode)
        {
            case LossMode.Random:
                if (_random.NextDouble() < LossRate)
                {
                    _dropped[seq] = packet;
                    Dropped++;
                    yield break;
                }
                if (_dropped.Remove(seq, out var earlier) && earlier.AsSpan().SequenceEqual(packet)) Recovered++;
                yield return packet;
                yield break;
            case LossMode.StartWithoutKeyframe when !_startPassed:
                if (_firstRtpAt < 0) _firstRtpAt = Environment.TickCount64;
                if (!_holding)
                {
                    Dropped++;
                    // After 300 ms, start holding at the next frame boundary.
                    if (marker && Environment.TickCount64 - _firstRtpAt > 300) _holding = true;
                    yield break;
                }
                _held.Add(packet);
                if (!marker) yield break;
                if (_held.Count > SmallFramePackets)
                {
                    // Most likely a keyframe: drop it and hold the next frame.
                    Dropped += _held.Count;
                    _held.Clear();
                    yield break;
                }
                _startPassed = true;
                StartPassedAt = Environment.TickCount64;
                foreach (var h in _held) yield return h;
                _held.Clear();
                yield break;
            default:
                yield return packet;
                yield break;
        }
    }

    private void Send(byte[] packet)
    {
        if (_browser is not { } browser) return;
        if (IsRtp(packet))
        {
            Forwarded++;
            _framePackets++;
            if ((packet[1] & 0x80) != 0)
            {
                var ts = BinaryPrimitives.ReadUInt32BigEndian(packet.AsSpan(4));
                if (_lastFrameTimestamp is { } last && unchecked(ts - last) is 1 or 2)
                {
                    if (ReplayedFrames++ == 0) FirstReplayedFramePackets = _framePackets;
                }
                _lastFrameTimestamp = ts;
                _framePacketCounts.Add(_framePackets);
                _framePackets = 0;
            }
        }
        _front.SendTo(packet, browser);
    }

    /// <summary>The median number of RTP packets per frame forwarded (a delta frame, as most are).</summary>
    public int MedianFramePackets()
    {
        lock (_dropped)
        {
            if (_framePacketCounts.Count == 0) return 0;
            var sorted = _framePacketCounts.Order().ToList();
            return sorted[sorted.Count / 2];
        }
    }

    /// <summary>Counters read under the proxy's lock.</summary>
    public (long Dropped, long Forwarded, long Recovered, long Replayed) Snapshot()
    {
        lock (_dropped) return (Dropped, Forwarded, Recovered, ReplayedFrames);
    }

    public void Dispose()
    {
        _stopped = true;
        _front.Dispose();
        _back.Dispose();
        _fromBrowser.Join(2000);
        _fromRelay.Join(2000);
    }
}
