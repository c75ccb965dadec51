using System.Net;
using Pinhole.Transport.Rtp;

namespace Pinhole.Relay.Rtsp;

/// <summary>Settings and limits of the relay's RTSP server.</summary>
public sealed record RtspServerOptions
{
    /// <summary>Where to listen; port 0 picks a free port (see <see cref="RtspServer.LocalEndPoint"/>).</summary>
    public IPEndPoint EndPoint { get; init; } = new(IPAddress.Loopback, 8554);

    /// <summary>Realm shown in Basic and Digest challenges.</summary>
    public string Realm { get; init; } = "pinhole";

    /// <summary>Most simultaneous TCP connections; more are accepted and closed at once.</summary>
    public int MaxConnections { get; init; } = 256;

    /// <summary>Largest request line plus headers.</summary>
    public int MaxHeaderBytes { get; init; } = 8 * 1024;

    /// <summary>Largest request body (clients rarely send one: SET_PARAMETER, GET_PARAMETER).</summary>
    public int MaxBodyBytes { get; init; } = 16 * 1024;

    /// <summary>A session (or a connection without one) with no request and no RTCP for this long is closed
    /// (RFC 2326 §12.37, announced as <c>timeout=</c> in the Session header).</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>A connection whose client has not read anything for this long (a write stuck on a full socket) is closed.</summary>
    public TimeSpan WriteTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>How long a Digest nonce is accepted.</summary>
    public TimeSpan NonceLifetime { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Largest RTP packet sent over UDP and TCP.</summary>
    public int MaxRtpPacketSize { get; init; } = RtpPacketizerOptions.DefaultMaxPacketSize;

    /// <summary>Kernel send buffer per connection. Kept small so a viewer that cannot keep up is seen at once
    /// (and skips to the next keyframe) instead of building seconds of delay in the socket.</summary>
    public int SocketSendBufferBytes { get; init; } = 256 * 1024;

    /// <summary>Interval of RTCP sender reports per track (RFC 3550 §6.2 suggests 5 s as the minimum).</summary>
    public TimeSpan SenderReportInterval { get; init; } = TimeSpan.FromSeconds(5);
}
