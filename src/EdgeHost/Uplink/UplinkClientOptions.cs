using System.Security.Cryptography.X509Certificates;
using Pinhole.EdgeHost.Configuration;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>Settings of the device's uplink. <see cref="FromConfig"/> builds them from edge.json; tests shorten the intervals.</summary>
public sealed record UplinkClientOptions
{
    /// <summary>This device's id, sent in the <c>Pinhole-Device</c> header.</summary>
    public required string DeviceId { get; init; }

    /// <summary>This device's token, sent as <c>Authorization: Bearer</c> (never in the URL, never logged).</summary>
    public required string Token { get; init; }

    /// <summary>Relay URLs (<c>wss://…/uplink</c>), tried in order; <c>ws://</c> works with a warning.</summary>
    public required IReadOnlyList<Uri> Relays { get; init; }

    /// <summary>When set, the relay certificate must chain to one of these (a pinned private CA) instead of the system roots.</summary>
    public X509Certificate2Collection? TrustedCa { get; init; }

    /// <summary>HTTP proxy for the uplink (CONNECT). Null uses HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment.</summary>
    public Uri? Proxy { get; init; }

    /// <summary>Which transport carries the uplink: a WebSocket with HTTP fallback (default), only one, or only the other.</summary>
    public UplinkTransportChoice Transport { get; init; } = UplinkTransportChoice.Auto;

    /// <summary>How often the device pings the relay. Default 10 s.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Nothing received for this long means the link is dead and the client reconnects. Default 30 s.</summary>
    public TimeSpan DeadLinkTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Most time for TCP+TLS+upgrade+welcome. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>With <see cref="UplinkTransportChoice.Auto"/>: most time the WebSocket upgrade may go unanswered once the
    /// connection is made before the HTTP fallback is tried instead (a middlebox that holds upgrades until its own
    /// timeout). The fallback then gets a whole <see cref="ConnectTimeout"/> of its own. Default 5 s.</summary>
    public TimeSpan UpgradeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Oldest a queued frame may get before it is dropped (about one GOP). Default 2 s.</summary>
    public TimeSpan QueueDuration { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Most payload bytes queued across cameras. Default 32 MiB.</summary>
    public long QueueMaxBytes { get; init; } = 32L * 1024 * 1024;

    /// <summary>Most delay allowed in flight (socket buffers, the network): the client stops handing frames to the
    /// socket while its oldest unacknowledged frame is older than this, or more bytes are unacknowledged than the
    /// link delivers in this time. Held-back frames age in the queue, which drops by GOP. Default 1 s: the queue already
    /// drops what would arrive after <see cref="TargetDelay"/> counting the bytes in flight, and a shorter bound stalled
    /// the link behind every keyframe (on a slow link a keyframe alone takes half a second to cross, and its ack comes
    /// up to an ack interval later).</summary>
    public TimeSpan MaxUnackedAge { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Delay at the relay a frame should not exceed when the link is the bottleneck: a frame that would arrive
    /// later (its age plus the bytes still ahead of it and its own at the measured delivery rate) is dropped with the
    /// rest of its GOP; a keyframe that would arrive late drops its whole GOP (see
    /// <see cref="UplinkSendQueue.TryDequeue(out QueuedFrame, long, double)"/>). Default 1 s.
    /// <see cref="QueueDuration"/> stays the hard bound.</summary>
    public TimeSpan TargetDelay { get; init; } = TimeSpan.FromSeconds(1.1);

    /// <summary>Most of the link's time the kernel may hold unsent below the queue (TCP_NOTSENT_LOWAT = delivery
    /// rate × this, at least 16 KiB). Tunnel data has a tighter budget of its own (see docs/tunnels.md, "Video first").
    /// Default 50 ms.</summary>
    public TimeSpan SendBacklog { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>First reconnect delay. Default 1 s.</summary>
    public TimeSpan BackoffInitial { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest reconnect delay. Default 30 s.</summary>
    public TimeSpan BackoffMax { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often changed drop counters are reported to the relay. Default 1 s.</summary>
    public TimeSpan DropReportInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Sent in the hello: <c>pinhole-edge/VERSION (ARCH)</c>. The relay logs it, shows the version, and offers each device
    /// the release bundle of its architecture (docs/updates.md); a relay that reads only the version ignores the rest.
    /// </summary>
    public string Agent { get; init; } = $"pinhole-edge/{Updates.ReleaseInfo.Version} ({Pinhole.Transport.Updates.ReleaseBundle.CurrentArchitecture})";

    /// <summary>Message size limits for what the relay sends.</summary>
    public UplinkLimits Limits { get; init; } = UplinkLimits.Default;

    /// <summary>Builds the options from edge.json. Throws <see cref="ArgumentException"/> naming the bad field.</summary>
    public static UplinkClientOptions FromConfig(EdgeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (string.IsNullOrWhiteSpace(config.DeviceId)) throw new ArgumentException("deviceId is required", nameof(config));
        if (string.IsNullOrWhiteSpace(config.Token)) throw new ArgumentException("token is required", nameof(config));
        if (config.Relays.Count == 0) throw new ArgumentException("relays needs at least one wss:// URL", nameof(config));
        var relays = new List<Uri>();
        foreach (var r in config.Relays)
        {
            if (!Uri.TryCreate(r, UriKind.Absolute, out var uri) || uri.Scheme is not ("wss" or "ws"))
                throw new ArgumentException($"relays: '{r}' is not a wss:// or ws:// URL", nameof(config));
            if (!string.IsNullOrEmpty(uri.UserInfo) || uri.Query.Contains("token", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"relays: credentials do not belong in the URL; use token", nameof(config));
            relays.Add(uri);
        }
        X509Certificate2Collection? ca = null;
        if (!string.IsNullOrEmpty(config.TrustedCa))
        {
            ca = [];
            try
            {
                ca.ImportFromPemFile(config.TrustedCa);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                throw new ArgumentException($"trustedCa: cannot read '{config.TrustedCa}': {e.Message}", nameof(config), e);
            }
            if (ca.Count == 0) throw new ArgumentException($"trustedCa: '{config.TrustedCa}' holds no PEM certificate", nameof(config));
        }
        Uri? proxy = null;
        if (!string.IsNullOrEmpty(config.Proxy) && !Uri.TryCreate(config.Proxy, UriKind.Absolute, out proxy))
            throw new ArgumentException($"proxy: '{config.Proxy}' is not a URL", nameof(config));
        var transport = config.Uplink.Transport switch
        {
            "auto" => UplinkTransportChoice.Auto,
            "websocket" => UplinkTransportChoice.WebSocket,
            "http" => UplinkTransportChoice.Http,
            var other => throw new ArgumentException($"uplink.transport: '{other}' is not auto, websocket or http", nameof(config)),
        };
        return new UplinkClientOptions { DeviceId = config.DeviceId, Token = config.Token, Relays = relays, TrustedCa = ca, Proxy = proxy, Transport = transport };
    }
}

/// <summary>The edge config's <c>uplink.transport</c>.</summary>
public enum UplinkTransportChoice
{
    /// <summary>A WebSocket; when the upgrade is refused (a proxy stripped <c>Upgrade</c>), HTTP streaming. The WebSocket is tried again at every reconnect.</summary>
    Auto,

    /// <summary>A WebSocket only.</summary>
    WebSocket,

    /// <summary>HTTP streaming only (a streaming GET down, a chunked POST up).</summary>
    Http,
}
