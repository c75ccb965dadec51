namespace Pinhole.Relay.Configuration;

// The shape of relay.json (the public interface: README.md and docs/). Plain data: the loader validates it.

/// <summary>Root of relay.json.</summary>
public sealed class RelayConfig
{
    public string Http { get; set; } = "http://127.0.0.1:8080";
    public string Rtsp { get; set; } = "127.0.0.1:8554";
    public string DataDir { get; set; } = "./relay-data";
    public TlsConfig? Tls { get; set; }
    public List<DeviceConfig> Devices { get; set; } = [];
    public List<ViewerConfig> Viewers { get; set; } = [];
    /// <summary>RTSP over TLS listen address (<c>HOST:PORT</c>), served with <see cref="Tls"/>; null: none.</summary>
    public string? Rtsps { get; set; }
    /// <summary>Serve cameras without credentials when <see cref="Viewers"/> is empty. Off by default: a relay
    /// without viewers refuses every viewer rather than serving everyone.</summary>
    public bool AnonymousViewing { get; set; }
    /// <summary>Accept RTSP Basic credentials on the plaintext port (they cross the network readable). Off by
    /// default: Basic is offered and accepted only over RTSPS, Digest everywhere.</summary>
    public bool RtspBasicOverPlaintext { get; set; }
    /// <summary>Who may read <c>/metrics</c>.</summary>
    public MetricsConfig Metrics { get; set; } = new();
    /// <summary>Connection, viewer, camera and memory limits.</summary>
    public LimitsConfig Limits { get; set; } = new();
    /// <summary>WebRTC playback (WHEP); null: off.</summary>
    public WebRtcConfig? WebRtc { get; set; }
    /// <summary>Where stores that can leave <see cref="DataDir"/> live: SQLite there (default) or PostgreSQL.</summary>
    public DatabaseUrl Database { get; set; } = DatabaseUrl.Sqlite;
    /// <summary>Base URL (<c>http(s)://HOST[:PORT]</c>) under which viewers reach this very relay, for redirects
    /// from the other relays of a fleet (docs/scale-out.md); null: derived from <see cref="Http"/>.</summary>
    public string? PublicUrl { get; set; }
    /// <summary><c>HOST:PORT</c> under which RTSP clients reach this very relay, for RTSP redirects from the
    /// other relays; null: derived from <see cref="Rtsp"/>.</summary>
    public string? PublicRtsp { get; set; }
    /// <summary>Telemetry history: the broker to subscribe to, retention, alerts; null: no history.</summary>
    public TelemetryConfig? Telemetry { get; set; }
    /// <summary>STUN/TURN servers handed to browsers for WebRTC (RTCPeerConnection <c>iceServers</c>).</summary>
    public List<IceServerConfig> IceServers { get; set; } = [];
}

/// <summary>relay.json <c>webrtc</c>: the one UDP port (and the same TCP port for ICE-TCP) all WebRTC viewers use.</summary>
public sealed class WebRtcConfig
{
    /// <summary>UDP listen address, <c>HOST:PORT</c>; ICE-TCP (RFC 6544 passive) listens on the same address and port.</summary>
    public string Udp { get; set; } = "0.0.0.0:8443";
    /// <summary>Addresses browsers can reach the relay at (host candidates); empty: the listen address when it is not a wildcard, else loopback.</summary>
    public List<string> PublicAddresses { get; set; } = [];
    /// <summary>Offer ICE over TCP on the same port for networks that block UDP.</summary>
    public bool Tcp { get; set; } = true;
}

/// <summary>One STUN or TURN server for browsers. With <see cref="Secret"/> the relay mints time-limited
/// TURN credentials per viewer (TURN REST API: username <c>EXPIRY:USER</c>, password base64 HMAC-SHA1).</summary>
public sealed class IceServerConfig
{
    /// <summary><c>stun:</c>, <c>turn:</c> or <c>turns:</c> URLs.</summary>
    public List<string> Urls { get; set; } = [];
    /// <summary>A fixed TURN user name (when there is no <see cref="Secret"/>).</summary>
    public string? Username { get; set; }
    /// <summary>A fixed TURN password.</summary>
    public string? Credential { get; set; }
    /// <summary>The TURN server's shared secret (coturn <c>static-auth-secret</c>).</summary>
    public string? Secret { get; set; }
    /// <summary>Lifetime of minted credentials in seconds.</summary>
    public int Ttl { get; set; } = 3600;
}

/// <summary>relay.json <c>telemetry</c>: the relay subscribes to the devices' readings and keeps their history.</summary>
public sealed class TelemetryConfig
{
    /// <summary>Broker URL: <c>ws://</c>, <c>wss://</c>, <c>mqtt://</c> or <c>mqtts://</c>.</summary>
    public string Mqtt { get; set; } = "";
    /// <summary>Broker user name (optional).</summary>
    public string? Username { get; set; }
    /// <summary>Broker password (optional).</summary>
    public string? Password { get; set; }
    /// <summary>The devices' <c>mqtt.topicPrefix</c> (default <c>pinhole</c>).</summary>
    public string TopicPrefix { get; set; } = "pinhole";
    /// <summary>MQTT client id of the relay's persistent session (default <c>pinhole-relay-HOSTNAME</c>); unique per relay.</summary>
    public string? ClientId { get; set; }
    /// <summary>
    /// MQTT 5 shared subscription group: with several relays on one broker, each reading goes to one of them
    /// (<c>$share/GROUP/PREFIX/+/sensors/+</c>); null (default): the relay subscribes on its own.
    /// </summary>
    public string? SharedGroup { get; set; }
    /// <summary>How long raw readings are kept.</summary>
    public TimeSpan RawRetention { get; set; } = TimeSpan.FromDays(7);
    /// <summary>How long 1-minute aggregates are kept.</summary>
    public TimeSpan MinuteRetention { get; set; } = TimeSpan.FromDays(90);
    /// <summary>How long 1-hour aggregates are kept; null: forever.</summary>
    public TimeSpan? HourRetention { get; set; }
    /// <summary>Thresholds that raise and clear alerts.</summary>
    public List<AlertRuleConfig> Alerts { get; set; } = [];
}

/// <summary>One alert threshold: a sensor (on one device or <c>*</c>) above or below a value for at least a duration.</summary>
public sealed class AlertRuleConfig
{
    /// <summary>Device id, or <c>*</c> for every device.</summary>
    public string Device { get; set; } = "*";
    /// <summary>Sensor name.</summary>
    public string Sensor { get; set; } = "";
    /// <summary>Raise when the value is above this.</summary>
    public double? Above { get; set; }
    /// <summary>Raise when the value is below this.</summary>
    public double? Below { get; set; }
    /// <summary>How long the condition must hold before the alert is raised (and be false before it clears).</summary>
    public TimeSpan For { get; set; } = TimeSpan.Zero;
}

/// <summary><c>/metrics</c> access.</summary>
public sealed class MetricsConfig
{
    /// <summary>True: anyone may read <c>/metrics</c>; false (default): a logged-in viewer session or a bearer token is needed.</summary>
    public bool Public { get; set; }
}

/// <summary>relay.json <c>limits</c>: what one client, user or device may hold.</summary>
public sealed class LimitsConfig
{
    /// <summary>RTSP connections in total (plaintext and TLS together).</summary>
    public int RtspConnections { get; set; } = 256;
    /// <summary>RTSP connections from one client address.</summary>
    public int RtspConnectionsPerAddress { get; set; } = 16;
    /// <summary>HTTP connections (pages, the player's WebSockets, the API, device uplinks) from one client
    /// address; 0 turns the cap off (behind a load balancer every client has the balancer's address).</summary>
    public int HttpConnectionsPerAddress { get; set; } = 64;
    /// <summary>Cameras one device may announce; more are refused.</summary>
    public int CamerasPerDevice { get; set; } = 32;
    /// <summary>Simultaneous viewers (RTSP and browser) of all cameras together, every user counted.</summary>
    public int Viewers { get; set; } = 256;
    /// <summary>Simultaneous viewers (RTSP and browser) one user may have.</summary>
    public int ViewersPerUser { get; set; } = 16;
    /// <summary>Bytes all cameras' GOP caches may hold together.</summary>
    public long GopCacheMemory { get; set; } = 256L * 1024 * 1024;
}

/// <summary>Certificate and key (PEM files) for HTTPS, WSS and the uplink.</summary>
public sealed class TlsConfig
{
    public string Certificate { get; set; } = "";
    public string Key { get; set; } = "";
}

/// <summary>A device allowed to open an uplink.</summary>
public sealed class DeviceConfig
{
    public string Id { get; set; } = "";
    public string Token { get; set; } = "";
}

/// <summary>A person allowed to watch (RTSP and browser); with <c>"role": "admin"</c> also to manage the fleet.</summary>
public sealed class ViewerConfig
{
    public string User { get; set; } = "";
    public string Password { get; set; } = "";
    /// <summary><c>viewer</c> (the default) or <c>admin</c>.</summary>
    public string Role { get; set; } = ViewerRoles.Viewer;
    /// <summary>May publish streams to devices (<c>rtsp://RELAY/ID/in/NAME</c>); admins always may.</summary>
    public bool Publish { get; set; }
}

/// <summary>The values of <c>viewers[].role</c>.</summary>
public static class ViewerRoles
{
    /// <summary>Watches cameras (RTSP, browser).</summary>
    public const string Viewer = "viewer";

    /// <summary>Also sees and changes the fleet: devices, tokens, configuration, the audit log.</summary>
    public const string Admin = "admin";
}
