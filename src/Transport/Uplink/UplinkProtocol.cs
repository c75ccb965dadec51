namespace Pinhole.Transport.Uplink;

/// <summary>Constants of uplink protocol v1 (see docs/uplink-protocol.md).</summary>
public static class UplinkProtocol
{
    /// <summary>The protocol version this code speaks.</summary>
    public const ushort Version = 1;

    /// <summary>Request header carrying the device id on the WebSocket upgrade.</summary>
    public const string DeviceHeader = "Pinhole-Device";

    /// <summary>Request header listing the protocol versions the device speaks, comma separated (e.g. <c>1</c>).</summary>
    public const string VersionHeader = "Pinhole-Uplink-Version";

    /// <summary>Response header on a refused upgrade naming the reason (a <see cref="UplinkReason"/> in kebab case).</summary>
    public const string RejectHeader = "Pinhole-Reject";

    /// <summary>
    /// Request header on the HTTP fallback's downstream <c>GET</c> (value <c>http</c>): the relay answers with a
    /// streaming body of uplink messages instead of expecting a WebSocket upgrade (docs/uplink-protocol.md §1a).
    /// </summary>
    public const string TransportHeader = "Pinhole-Transport";

    /// <summary>Response header of the HTTP fallback's <c>GET</c> naming the session; the device's upstream <c>POST</c> repeats it.</summary>
    public const string SessionHeader = "Pinhole-Session";

    /// <summary>The WebSocket subprotocol name the device offers and the relay selects.</summary>
    public const string SubProtocol = "pinhole-uplink.v1";

    /// <summary>Size of the message header: channel (1), type (1), body length (4).</summary>
    public const int HeaderSize = 6;

    /// <summary>Size of a <see cref="MediaFrame"/> message before its payload, header included.</summary>
    public const int FrameHeaderSize = HeaderSize + 8 + 2 + 1 + 1 + 8 + 8 + 8;

    /// <summary>Longest camera name.</summary>
    public const int MaxCameraNameLength = 64;

    /// <summary>Longest human-readable text (reject and goodbye messages), in UTF-8 bytes.</summary>
    public const int MaxTextBytes = 1024;

    /// <summary>Largest configuration document in a <see cref="ConfigPush"/>, in UTF-8 bytes.</summary>
    public const int MaxConfigBytes = 256 * 1024;

    /// <summary>Largest detail of a <see cref="ConfigReport"/> and largest <see cref="DeviceStatus"/> document, in UTF-8 bytes.</summary>
    public const int MaxReportBytes = 64 * 1024;

    /// <summary>Largest payload of one <see cref="UpdateChunk"/>.</summary>
    public const int MaxUpdateChunkBytes = 256 * 1024;

    /// <summary>Largest payload of one <see cref="TunnelData"/>.</summary>
    public const int MaxTunnelDataBytes = 64 * 1024;

    /// <summary>True when <paramref name="name"/> is a valid camera name: 1–64 of <c>A-Z a-z 0-9 . _ -</c>, not starting with a dot.
    /// Camera names become URL path segments on the relay.</summary>
    public static bool IsValidCameraName(string name)
    {
        if (name.Length is 0 or > MaxCameraNameLength || name[0] == '.') return false;
        foreach (var c in name)
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')) return false;
        return true;
    }

    /// <summary>The kebab-case token used for a reason in the <see cref="RejectHeader"/> header.</summary>
    public static string ToToken(this UplinkReason reason) => reason switch
    {
        UplinkReason.Unauthorized => "unauthorized",
        UplinkReason.UnsupportedVersion => "unsupported-version",
        UplinkReason.ProtocolError => "protocol-error",
        UplinkReason.Replaced => "replaced",
        UplinkReason.Shutdown => "shutdown",
        UplinkReason.MessageTooLarge => "message-too-large",
        UplinkReason.Timeout => "timeout",
        UplinkReason.BadRequest => "bad-request",
        _ => "unknown",
    };
}

/// <summary>Logical channels multiplexed on the uplink. Each message belongs to exactly one.</summary>
public enum UplinkChannel : byte
{
    /// <summary>Session control: hello, accept/reject, heartbeats, acks, drop reports, goodbye.</summary>
    Control = 0,

    /// <summary>Media: stream announces and access units (device to relay).</summary>
    Media = 1,

    /// <summary>Data: desired configuration (relay to device), its outcome and the device's status (device to relay).</summary>
    Data = 2,

    /// <summary>Tunnels: multiplexed, flow-controlled byte streams to services the device exposes.</summary>
    Tunnel = 3,
}

/// <summary>Optional features, advertised in <see cref="Hello"/> and confirmed (intersected) in <see cref="Welcome"/>.</summary>
[Flags]
public enum UplinkCapabilities : uint
{
    /// <summary>Nothing beyond the base protocol.</summary>
    None = 0,

    /// <summary>Media channel: announces and frames.</summary>
    Media = 1 << 0,

    /// <summary>Device sends <see cref="DropReport"/> messages.</summary>
    DropReports = 1 << 1,

    /// <summary>The data channel: <see cref="ConfigPush"/>, <see cref="ConfigReport"/>, <see cref="DeviceStatus"/>.</summary>
    Data = 1 << 2,

    /// <summary>The tunnel channel: <see cref="TunnelOpen"/>, <see cref="TunnelAccept"/>, <see cref="TunnelData"/>,
    /// <see cref="TunnelWindow"/>, <see cref="TunnelClose"/>, <see cref="TunnelReset"/>.</summary>
    Tunnel = 1 << 3,

    /// <summary>Remote updates on the data channel: <see cref="UpdateOffer"/>, <see cref="UpdateRequest"/>,
    /// <see cref="UpdateChunk"/>, <see cref="UpdateReport"/>. Only together with <see cref="Data"/>.</summary>
    Updates = 1 << 4,

    /// <summary>Media from the relay to the device (WAN to LAN): <see cref="InboundAnnounce"/>,
    /// <see cref="InboundFrame"/>, <see cref="InboundEnd"/>. A device offers it when it runs an RTSP server.</summary>
    InboundMedia = 1 << 5,

    /// <summary>The device may open tunnel streams itself, to services the relay offers by name (<c>mqtt</c>: the relay's
    /// telemetry broker), with stream ids that have the high bit set. Only together with <see cref="Tunnel"/>.</summary>
    DeviceStreams = 1 << 6,
}

/// <summary>Why a session was refused or ended. Values are on the wire.</summary>
public enum UplinkReason : byte
{
    /// <summary>The device id is unknown or the token is wrong (deliberately not told apart, so ids cannot be probed).</summary>
    Unauthorized = 1,

    /// <summary>No protocol version in common.</summary>
    UnsupportedVersion = 2,

    /// <summary>The peer sent something malformed or out of order.</summary>
    ProtocolError = 3,

    /// <summary>A newer uplink of the same device replaced this one.</summary>
    Replaced = 4,

    /// <summary>The peer is shutting down.</summary>
    Shutdown = 5,

    /// <summary>A message exceeded the size limit.</summary>
    MessageTooLarge = 6,

    /// <summary>The peer did not answer in time (no hello, or heartbeats missing).</summary>
    Timeout = 7,

    /// <summary>The upgrade request was malformed (missing headers, not a WebSocket request).</summary>
    BadRequest = 8,
}
