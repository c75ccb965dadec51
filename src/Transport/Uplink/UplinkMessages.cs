using Pinhole.Transport.Media;

namespace Pinhole.Transport.Uplink;

/// <summary>One uplink message. Each binary WebSocket message carries exactly one.</summary>
public abstract record UplinkMessage
{
    /// <summary>The channel this message belongs to.</summary>
    public abstract UplinkChannel Channel { get; }

    /// <summary>The message type within its channel.</summary>
    public abstract byte Type { get; }
}

/// <summary>Device to relay, first message of a session: the versions and features the device speaks.</summary>
/// <param name="MinVersion">Oldest protocol version the device speaks.</param>
/// <param name="MaxVersion">Newest protocol version the device speaks.</param>
/// <param name="Capabilities">Optional features the device offers.</param>
/// <param name="Agent">Software name and version, for logs (at most 255 UTF-8 bytes).</param>
public sealed record Hello(ushort MinVersion, ushort MaxVersion, UplinkCapabilities Capabilities, string Agent) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x01;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Control;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Relay to device: the session is accepted.</summary>
/// <param name="Version">The protocol version chosen for this session.</param>
/// <param name="Capabilities">Features both sides have (the intersection).</param>
/// <param name="HeartbeatInterval">How often the relay pings; the device should ping at the same rate.</param>
/// <param name="AckInterval">How often at most the relay acknowledges frames.</param>
/// <param name="MaxMessageBytes">Largest message body the relay accepts.</param>
public sealed record Welcome(ushort Version, UplinkCapabilities Capabilities, TimeSpan HeartbeatInterval, TimeSpan AckInterval, int MaxMessageBytes) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x02;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Control;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Relay to device, instead of <see cref="Welcome"/>: the session is refused; the relay then closes.</summary>
/// <param name="Reason">Why.</param>
/// <param name="Text">A human-readable explanation.</param>
public sealed record Reject(UplinkReason Reason, string Text) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x03;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Control;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Either direction: the sender ends the session; the WebSocket close follows.</summary>
/// <param name="Reason">Why.</param>
/// <param name="Text">A human-readable explanation.</param>
public sealed record Goodbye(UplinkReason Reason, string Text) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x04;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Control;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Either direction: heartbeat request. The peer answers with a <see cref="Pong"/> echoing <paramref name="Timestamp"/>.</summary>
/// <param name="Timestamp">Opaque to the receiver; the sender uses its own clock in microseconds.</param>
public sealed record Ping(ulong Timestamp) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x05;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Control;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Either direction: heartbeat answer.</summary>
/// <param name="Timestamp">The <see cref="Ping.Timestamp"/> being answered.</param>
public sealed record Pong(ulong Timestamp) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x06;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Control;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Relay to device: a merged acknowledgement of every frame up to <paramref name="Sequence"/>.</summary>
/// <param name="Sequence">Highest <see cref="MediaFrame.Sequence"/> received.</param>
/// <param name="EchoTimestamp">That frame's <see cref="MediaFrame.SendTimestamp"/>.</param>
/// <param name="AckDelayMicros">Time between receiving that frame and sending this ack, so the device can subtract it from its RTT sample.</param>
/// <param name="BytesReceived">Media-channel bytes (whole messages, headers included) received on this uplink so far.</param>
public sealed record Ack(ulong Sequence, ulong EchoTimestamp, uint AckDelayMicros, ulong BytesReceived) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x07;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Control;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Device to relay: cumulative frames the device dropped for one stream because the link was too slow.</summary>
/// <param name="StreamId">The stream (as announced).</param>
/// <param name="DroppedFrames">Frames dropped since the device started (cumulative, so a lost report loses nothing).</param>
/// <param name="DroppedBytes">Payload bytes of those frames.</param>
public sealed record DropReport(ushort StreamId, ulong DroppedFrames, ulong DroppedBytes) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x08;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Control;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Device to relay: a camera's tracks, sent before its first frame on a session and whenever they change.</summary>
/// <param name="StreamId">Number the device gives this camera for the session; frames refer to it.</param>
/// <param name="Camera">The camera's name (see <see cref="UplinkProtocol.IsValidCameraName"/>).</param>
/// <param name="Tracks">Every track, in index order.</param>
public sealed record StreamAnnounce(ushort StreamId, string Camera, IReadOnlyList<TrackInfo> Tracks) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x01;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Media;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Device to relay: one access unit.</summary>
/// <param name="Sequence">Per-uplink sequence number, starting at 1, increasing by one per frame sent.</param>
/// <param name="StreamId">The announced stream.</param>
/// <param name="SendTimestamp">Device clock in microseconds when the frame was sent, echoed by <see cref="Ack"/>.</param>
/// <param name="Unit">The frame: track index, PTS, DTS, keyframe flag and payload.</param>
public sealed record MediaFrame(ulong Sequence, ushort StreamId, ulong SendTimestamp, AccessUnit Unit) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x02;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Media;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Device to relay: the camera stopped (its source ended); viewers are told it is offline.</summary>
/// <param name="StreamId">The announced stream.</param>
public sealed record StreamEnd(ushort StreamId) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x03;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Media;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>A message this version does not know (a reserved channel or a newer type). Receivers skip it.</summary>
/// <param name="WireChannel">The channel byte.</param>
/// <param name="WireTypeByte">The type byte.</param>
/// <param name="Length">Body length that was skipped.</param>
public sealed record UnknownMessage(byte WireChannel, byte WireTypeByte, int Length) : UplinkMessage
{
    /// <inheritdoc />
    public override UplinkChannel Channel => (UplinkChannel)WireChannel;

    /// <inheritdoc />
    public override byte Type => WireTypeByte;
}

/// <summary>
/// Relay to device, data channel (protocol extension behind <see cref="UplinkCapabilities.Data"/>):
/// the device's whole desired configuration at a revision. Sent after every welcome and on every
/// change, never as a delta, so a missed message is repaired by the next one.
/// </summary>
/// <param name="Revision">Revision number, increasing per device (1 for the first).</param>
/// <param name="Document">The managed part of edge.json as UTF-8 JSON (at most <see cref="UplinkProtocol.MaxConfigBytes"/>).</param>
public sealed record ConfigPush(ulong Revision, string Document) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x01;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Data;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>What became of a desired configuration on the device.</summary>
public enum ConfigOutcome : byte
{
    /// <summary>Validated, saved and running.</summary>
    Applied = 1,

    /// <summary>Refused by the device's validation; the previous configuration keeps running.</summary>
    Rejected = 2,

    /// <summary>Applied, then undone by the device because it could reach no relay with it.</summary>
    Reverted = 3,
}

/// <summary>Device to relay, data channel: the outcome of one revision.</summary>
/// <param name="Revision">The <see cref="ConfigPush.Revision"/> this is about.</param>
/// <param name="Outcome">Applied, rejected or reverted.</param>
/// <param name="Detail">Why (one problem per line), empty when applied. At most <see cref="UplinkProtocol.MaxReportBytes"/> UTF-8 bytes.</param>
public sealed record ConfigReport(ulong Revision, ConfigOutcome Outcome, string Detail) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x02;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Data;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Device to relay, data channel: what the device runs now (uptime, pipelines and their state), as UTF-8 JSON.</summary>
/// <param name="Document">A JSON object, at most <see cref="UplinkProtocol.MaxReportBytes"/> UTF-8 bytes.</param>
public sealed record DeviceStatus(string Document) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x03;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Data;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>
/// Relay to device, data channel (behind <see cref="UplinkCapabilities.Updates"/>): a signed release
/// bundle the device should install. The device answers with <see cref="UpdateRequest"/>s for the bytes
/// it still lacks and <see cref="UpdateReport"/>s on its progress.
/// </summary>
/// <param name="Version">The release version (1-64 of <c>A-Z a-z 0-9 . _ + -</c>).</param>
/// <param name="Architecture">What the release runs on: <c>linux-arm64</c>, <c>linux-x64</c>, or <c>any</c> (framework-dependent).</param>
/// <param name="Size">Bundle size in bytes.</param>
/// <param name="Sha256">SHA-256 of the whole bundle (32 bytes): a partial download resumed after a restart is checked against it.</param>
/// <param name="Force">Install even when the version is not newer than the one the device runs.</param>
public sealed record UpdateOffer(string Version, string Architecture, ulong Size, ReadOnlyMemory<byte> Sha256, bool Force) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x10;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Data;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Device to relay, data channel: send <paramref name="Length"/> bytes of the bundle from <paramref name="Offset"/>.
/// The device asks from the last byte it has on disk, so a download resumes after a disconnect or restart.</summary>
/// <param name="Version">The offered version.</param>
/// <param name="Offset">First byte wanted.</param>
/// <param name="Length">Bytes wanted (the relay may send fewer, in chunks of at most <see cref="UplinkProtocol.MaxUpdateChunkBytes"/>).</param>
public sealed record UpdateRequest(string Version, ulong Offset, uint Length) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x11;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Data;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Relay to device, data channel: bytes of a bundle, answering an <see cref="UpdateRequest"/>.</summary>
/// <param name="Version">The bundle's version.</param>
/// <param name="Offset">Where <paramref name="Data"/> starts in the bundle.</param>
/// <param name="Data">At most <see cref="UplinkProtocol.MaxUpdateChunkBytes"/> bytes (empty: the offset is at or past the end).</param>
public sealed record UpdateChunk(string Version, ulong Offset, ReadOnlyMemory<byte> Data) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x12;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Data;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Where a device is with an update. Values are on the wire.</summary>
public enum UpdateState : byte
{
    /// <summary>Fetching the bundle; the report's percent says how far.</summary>
    Downloading = 1,

    /// <summary>Verified; unpacking and switching.</summary>
    Installing = 2,

    /// <summary>Running the new release on trial: it commits once it proves it works.</summary>
    Trial = 3,

    /// <summary>The release proved itself and is now the committed one.</summary>
    Committed = 4,

    /// <summary>The release failed its trial; the previous one runs again. The detail says why.</summary>
    RolledBack = 5,

    /// <summary>Refused before anything was installed (bad signature, tampered file, wrong architecture, older version). The detail says why.</summary>
    Refused = 6,

    /// <summary>The device runs this version (sent on every connect, so the relay learns what runs).</summary>
    Running = 7,
}

/// <summary>Device to relay, data channel: progress or outcome of an update.</summary>
/// <param name="Version">The version this is about.</param>
/// <param name="State">Where the device is.</param>
/// <param name="Percent">Download progress, 0-100 (0 outside <see cref="UpdateState.Downloading"/>).</param>
/// <param name="Detail">Why (refused, rolled back), UTF-8 to the end of the body, at most <see cref="UplinkProtocol.MaxReportBytes"/>.</param>
public sealed record UpdateReport(string Version, UpdateState State, byte Percent, string Detail) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x13;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Data;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Relay to device (capability <see cref="UplinkCapabilities.InboundMedia"/>): a stream a WAN client
/// published to the relay, to be re-served in the device's LAN. Same body as <see cref="StreamAnnounce"/>;
/// sent before its first frame and again whenever its tracks change.</summary>
/// <param name="StreamId">Number the relay gives this published stream for the session; frames refer to it.</param>
/// <param name="Name">The stream's name (the <c>NAME</c> of <c>rtsp://RELAY/ID/in/NAME</c>; a valid camera name).</param>
/// <param name="Tracks">Every track, in index order.</param>
public sealed record InboundAnnounce(ushort StreamId, string Name, IReadOnlyList<TrackInfo> Tracks) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x11;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Media;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Relay to device: one access unit of a published stream (no sequence or acknowledgement: the
/// relay bounds what it queues itself, dropping whole GOPs when the downlink is slow).</summary>
/// <param name="StreamId">The announced stream.</param>
/// <param name="Unit">The frame: track index, PTS, DTS, keyframe flag and payload.</param>
public sealed record InboundFrame(ushort StreamId, AccessUnit Unit) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x12;

    /// <summary>Size of the body before the payload: stream id, track, flags, pts, dts.</summary>
    public const int FieldsSize = 2 + 1 + 1 + 8 + 8;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Media;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Relay to device: the publisher stopped; the device's LAN viewers see the stream go offline.</summary>
/// <param name="StreamId">The announced stream.</param>
public sealed record InboundEnd(ushort StreamId) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x13;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Media;

    /// <inheritdoc />
    public override byte Type => WireType;
}
