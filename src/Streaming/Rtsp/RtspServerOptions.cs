using System.Net;
using System.Security.Cryptography.X509Certificates;
using Pinhole.Transport.Rtp;

namespace Pinhole.Streaming.Rtsp;

/// <summary>Settings and limits of an RTSP server (the relay's, or an edge's LAN server).</summary>
public sealed record RtspServerOptions
{
    /// <summary>Where to listen; port 0 picks a free port (see <see cref="RtspServer.LocalEndPoint"/>).</summary>
    public IPEndPoint EndPoint { get; init; } = new(IPAddress.Loopback, 8554);

    /// <summary>The <c>Server</c> header of every response.</summary>
    public string ServerName { get; init; } = "pinhole-relay";

    /// <summary>Null (the relay): stream URLs are <c>/DEVICE/CAMERA</c>. Set (an edge's LAN server): they are
    /// <c>/NAME</c>, and every stream is looked up under this device id in the registry.</summary>
    public string? SingleDevice { get; init; }

    /// <summary>Realm shown in Basic and Digest challenges.</summary>
    public string Realm { get; init; } = "pinhole";

    /// <summary>Most simultaneous TCP connections (plaintext and TLS together); more are accepted and closed at once.</summary>
    public int MaxConnections { get; init; } = 256;

    /// <summary>Most simultaneous TCP connections from one client address, so one client cannot hold every slot.</summary>
    public int MaxConnectionsPerAddress { get; init; } = 16;

    /// <summary>A connection must authenticate (or, when viewing is anonymous, make its first DESCRIBE or SETUP)
    /// within this long of being accepted; OPTIONS and interleaved frames do not extend it.</summary>
    public TimeSpan AuthenticationTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Serve without credentials when there are no viewers. Off: a server without viewers refuses everyone.</summary>
    public bool AnonymousViewing { get; init; }

    /// <summary>Offer and accept Basic credentials on the plaintext listener. Off: Basic only over TLS.</summary>
    public bool AllowBasicOnPlaintext { get; init; }

    /// <summary>Where to serve RTSP over TLS (<c>rtsps://</c>); null: no TLS listener.</summary>
    public IPEndPoint? TlsEndPoint { get; init; }

    /// <summary>Certificate (with its private key) for <see cref="TlsEndPoint"/>.</summary>
    public X509Certificate2? TlsCertificate { get; init; }

    /// <summary>How long a TLS client has to finish its handshake.</summary>
    public TimeSpan TlsHandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

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
