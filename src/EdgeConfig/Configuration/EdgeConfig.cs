namespace Pinhole.EdgeHost.Configuration;

// The shape of edge.json (the public interface: README.md and docs/). Plain data: parsing, defaults and
// validation live in the loader, so one place reports every problem with its JSON path.

/// <summary>Root of edge.json.</summary>
public sealed class EdgeConfig
{
    public string DeviceId { get; set; } = "";
    public string Token { get; set; } = "";
    public List<string> Relays { get; set; } = [];
    public string? TrustedCa { get; set; }
    /// <summary>Optional HTTP proxy for the uplink (<c>http://host:port</c>, CONNECT); default: HTTPS_PROXY/HTTP_PROXY/NO_PROXY.</summary>
    public string? Proxy { get; set; }
    /// <summary>How the uplink reaches the relay (<c>uplink.transport</c>).</summary>
    public UplinkConfig Uplink { get; set; } = new();
    public List<CameraConfig> Cameras { get; set; } = [];
    public List<SensorConfig> Sensors { get; set; } = [];
    public MqttConfig? Mqtt { get; set; }
    public WebConfig Web { get; set; } = new();
    public string DataDir { get; set; } = "/var/lib/pinhole";
    /// <summary>How this device takes configuration from the relay (never itself managed remotely).</summary>
    public FleetConfig Fleet { get; set; } = new();
    /// <summary>Remote updates (docs/updates.md); null when edge.json has no <c>update</c> section (the device takes no updates).</summary>
    public UpdateConfig? Update { get; set; }
    /// <summary>LAN services the relay may open tunnels to, by name (docs/tunnels.md); nothing else is reachable.</summary>
    public List<ExposeConfig> Expose { get; set; } = [];
    /// <summary>The LAN RTSP server that re-serves streams published to the relay (<c>rtsp://RELAY/ID/in/NAME</c>)
    /// as <c>rtsp://DEVICE:PORT/NAME</c>; null (the key absent): off, and the device does not take inbound media.</summary>
    public RtspServerConfig? RtspServer { get; set; }
}

/// <summary><c>"rtspServer": { "listen": "0.0.0.0:8554", "users": [ { "name": "nvr", "password": "…" } ] }</c>.</summary>
public sealed class RtspServerConfig
{
    /// <summary><c>IP:PORT</c> to listen on (an IPv6 address in brackets); port 0 picks a free one.</summary>
    public string Listen { get; set; } = "0.0.0.0:8554";

    /// <summary>Who may watch (Digest, or Basic); at least one is required.</summary>
    public List<RtspUserConfig> Users { get; set; } = [];
}

/// <summary>One user of the LAN RTSP server.</summary>
public sealed class RtspUserConfig
{
    public string Name { get; set; } = "";
    public string Password { get; set; } = "";
}

/// <summary>One LAN TCP service reachable through the uplink: <c>{ "name": "ssh", "target": "127.0.0.1:22" }</c>.</summary>
public sealed class ExposeConfig
{
    /// <summary>
    /// The tunnel name reserved for the device's own local page (docs/tunnels.md, "The device page"): the
    /// device maps it to its page listener and to nothing else, so it cannot be an <c>expose</c> name.
    /// </summary>
    public const string DevicePage = "ui";

    /// <summary>The name the relay asks for (1-64 of <c>A-Z a-z 0-9 . _ -</c>).</summary>
    public string Name { get; set; } = "";

    /// <summary><c>HOST:PORT</c> the device connects to (an IPv6 address in brackets: <c>[fd00::1]:22</c>).</summary>
    public string Target { get; set; } = "";

    /// <summary>Splits <c>HOST:PORT</c>; false with a one-line reason when it is not one.</summary>
    public static bool TryParseTarget(string target, out string host, out int port, out string error)
    {
        host = "";
        port = 0;
        var colon = target.LastIndexOf(':');
        if (colon <= 0 || colon == target.Length - 1)
        {
            error = $"must be HOST:PORT, e.g. 127.0.0.1:22 (got \"{target}\")";
            return false;
        }
        host = target[..colon];
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        else if (host.Contains(':'))
        {
            error = $"an IPv6 address goes in brackets, e.g. [fd00::1]:22 (got \"{target}\")";
            return false;
        }
        if (!int.TryParse(target.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
        {
            error = $"port must be 1-65535 (got \"{target[(colon + 1)..]}\")";
            return false;
        }
        if (host.Length == 0 || Uri.CheckHostName(host) == UriHostNameType.Unknown)
        {
            error = $"\"{host}\" is not a host name or IP address";
            return false;
        }
        error = "";
        return true;
    }
}

/// <summary>The <c>uplink</c> section of edge.json.</summary>
public sealed class UplinkConfig
{
    /// <summary>The transport values <see cref="Transport"/> takes.</summary>
    public static readonly IReadOnlyList<string> Transports = ["auto", "websocket", "http"];

    /// <summary>
    /// <c>auto</c> (default): a WebSocket, falling back to HTTP streaming when the upgrade is refused (a proxy that strips
    /// <c>Upgrade</c>), and trying the WebSocket again at every reconnect; <c>websocket</c>: never fall back;
    /// <c>http</c>: HTTP streaming only (docs/uplink-protocol.md §1a).
    /// </summary>
    public string Transport { get; set; } = "auto";
}

/// <summary>
/// Where releases are installed and whose signature the device trusts. A device without this section
/// does not offer the update capability to the relay.
/// </summary>
public sealed class UpdateConfig
{
    /// <summary>PEM file with the ECDSA P-256 public key releases must be signed with (absolute once loaded).</summary>
    public string PublicKey { get; set; } = "";

    /// <summary>Install root: <c>ROOT/releases/VERSION/</c>, <c>ROOT/current</c> (absolute once loaded). Default <c>/opt/pinhole</c>.</summary>
    public string Root { get; set; } = "/opt/pinhole";

    /// <summary>How long a new release has to prove it works before it is rolled back. Default 3m.</summary>
    public string TrialTimeout { get; set; } = "3m";
}

/// <summary>
/// The device's own limits on remote management: a relay admin can change cameras, sensors, MQTT and
/// relays, but cannot make the device run commands unless it allows that here.
/// </summary>
public sealed class FleetConfig
{
    /// <summary>Accept <c>exec:</c> camera sources from the relay (they run commands on the device). Default false.</summary>
    public bool AllowExec { get; set; }

    /// <summary>A remote change of <c>relays</c> that reaches no relay within this time is undone. Default 90s.</summary>
    public string ConnectivityGuard { get; set; } = "90s";
}

/// <summary>One camera: <c>rtsp://…</c> or <c>exec:COMMAND</c>.</summary>
public sealed class CameraConfig
{
    public string Name { get; set; } = "";
    public string Source { get; set; } = "";
    /// <summary><c>auto</c> (default: TCP, then UDP when the camera refuses TCP), <c>tcp</c> or <c>udp</c>; <c>rtsp://</c> sources only.</summary>
    public string Transport { get; set; } = "auto";
}

/// <summary>
/// One sensor. <c>kind</c> is <c>file</c>, <c>gpio</c> or a chip (<see cref="SensorKinds.All"/>);
/// durations are strings like <c>5s</c>, <c>20ms</c>.
/// </summary>
public sealed class SensorConfig
{
    public string Name { get; set; } = "";
    public string Kind { get; set; } = "";
    // kind = file
    public string? Path { get; set; }
    public double Scale { get; set; } = 1.0;
    public double Offset { get; set; }
    public string? Unit { get; set; }
    public string? Interval { get; set; }
    // kind = gpio
    public string? Chip { get; set; }
    public int? Line { get; set; }
    public string? Edge { get; set; }
    public string? Debounce { get; set; }
    // chips: interval as for file; I2C chips: bus and address ("0x76"); dht22: chip and pin; ds18b20: address ("28-…")
    public int? Bus { get; set; }
    public string? Address { get; set; }
    public int? Pin { get; set; }
}

/// <summary>The MQTT broker the telemetry goes to.</summary>
public sealed class MqttConfig
{
    public string Url { get; set; } = "";
    public string? Username { get; set; }
    public string? Password { get; set; }
    public string TopicPrefix { get; set; } = "pinhole";
    /// <summary><c>"5"</c> (MQTT 5.0, the default) or <c>"3.1.1"</c> for brokers that speak only that.</summary>
    public string ProtocolVersion { get; set; } = "5";
    /// <summary>How telemetry reaches the broker: <c>"auto"</c> (the default: <see cref="Url"/> first; when that fails and
    /// the uplink is up, MQTT is carried through the uplink to the broker the relay ingests from), <c>"direct"</c> (only
    /// <see cref="Url"/>) or <c>"uplink"</c> (only through the uplink).</summary>
    public string Via { get; set; } = "auto";
}

/// <summary>The local config page.</summary>
public sealed class WebConfig
{
    public string Listen { get; set; } = "http://0.0.0.0:8081";
    public string? Password { get; set; }
    /// <summary>Whether the page may add or change <c>exec:</c> camera sources (they run commands on the device).
    /// Off by default: only edge.json itself (or the relay's fleet config) sets them.</summary>
    public bool AllowExec { get; set; }
}
