namespace Pinhole.Relay.Configuration;

// The shape of relay.json (see ../shared/design/interface.md). Plain data: the loader validates it.

/// <summary>Root of relay.json.</summary>
public sealed class RelayConfig
{
    public string Http { get; set; } = "http://127.0.0.1:8080";
    public string Rtsp { get; set; } = "127.0.0.1:8554";
    public string DataDir { get; set; } = "./relay-data";
    public TlsConfig? Tls { get; set; }
    public List<DeviceConfig> Devices { get; set; } = [];
    public List<ViewerConfig> Viewers { get; set; } = [];
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
}

/// <summary>The values of <c>viewers[].role</c>.</summary>
public static class ViewerRoles
{
    /// <summary>Watches cameras (RTSP, browser).</summary>
    public const string Viewer = "viewer";

    /// <summary>Also sees and changes the fleet: devices, tokens, configuration, the audit log.</summary>
    public const string Admin = "admin";
}
