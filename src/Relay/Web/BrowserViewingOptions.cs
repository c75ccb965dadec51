using System.Globalization;
using Pinhole.Relay.Configuration;
using Pinhole.Transport.Security;

namespace Pinhole.Relay.Web;

/// <summary>Settings of the browser viewing endpoints (login, device list, player, player WebSocket).</summary>
public sealed class BrowserViewingOptions
{
    /// <summary>Directory that keeps the cookie signing key (<c>browser-session.key</c>, created when missing);
    /// null: a random key per start.</summary>
    public string? DataDir { get; set; }

    /// <summary>How long a login lasts.</summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(12);

    /// <summary>Port of the relay's RTSP server, shown to H.265 viewers as the way to watch.</summary>
    public int RtspPort { get; set; } = 8554;

    /// <summary>Failed logins allowed (per client address and per user name) before lockouts start.</summary>
    public int FreeLoginFailures { get; set; } = 3;

    /// <summary>The first lockout; each further failure doubles it.</summary>
    public TimeSpan FirstLockout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest lockout.</summary>
    public TimeSpan MaxLockout { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>The login throttle's timing from <see cref="FreeLoginFailures"/>, <see cref="FirstLockout"/> and
    /// <see cref="MaxLockout"/> (the same free failures per address and per user).</summary>
    public LoginThrottleOptions LoginThrottle() => new()
    {
        FreeFailures = FreeLoginFailures,
        FreeFailuresPerAccount = FreeLoginFailures,
        FirstLockout = FirstLockout,
        MaxLockout = MaxLockout,
    };

    /// <summary>Origins besides the relay's own that may open the player WebSocket (e.g. <c>https://cams.example.com</c>
    /// when a TLS-terminating proxy changes the scheme or host the relay sees).</summary>
    public IList<string> AllowedOrigins { get; } = [];

    /// <summary>A send to a viewer that takes longer than this ends the connection (the client stopped reading).</summary>
    public TimeSpan SendTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Takes what relay.json says: <c>dataDir</c> for the signing key, the port of <c>rtsp</c> for H.265 viewers.</summary>
    public void ApplyRelayConfig(RelayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        DataDir = config.DataDir;
        var colon = config.Rtsp.LastIndexOf(':');
        if (colon >= 0 && int.TryParse(config.Rtsp.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536)
            RtspPort = port;
    }
}
