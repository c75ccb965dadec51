namespace Pinhole.Transport.Uplink;

// Tunnel channel (3), behind UplinkCapabilities.Tunnel: multiplexed, flow-controlled byte streams
// inside the one uplink (docs/uplink-protocol.md, "Tunnel channel"). The relay opens a stream by the
// name of something the device exposes; each direction has its own credit window, and either side
// half-closes its direction with TunnelClose or aborts both with TunnelReset.

/// <summary>Why a tunnel stream was reset. Values are on the wire; unknown values are kept as numbers.</summary>
public enum TunnelResetCode : byte
{
    /// <summary>The device does not expose that name (nothing else is ever reachable).</summary>
    NotExposed = 1,

    /// <summary>The device could not connect to the exposed target.</summary>
    ConnectFailed = 2,

    /// <summary>Too many open streams.</summary>
    Limit = 3,

    /// <summary>A peer broke the stream's rules (data beyond the window, data after close).</summary>
    FlowControl = 4,

    /// <summary>One end went away (the client or the target closed abruptly, or the stream was disposed).</summary>
    Cancelled = 5,

    /// <summary>Idle for too long, never answered, or over its time limit.</summary>
    Timeout = 6,
}

/// <summary>Relay to device: open a stream to the exposed service <paramref name="Name"/>.</summary>
/// <param name="StreamId">Chosen by the relay; unique among the session's open streams.</param>
/// <param name="Window">Bytes the device may send on this stream before it receives a <see cref="TunnelWindow"/>.</param>
/// <param name="Name">The <c>expose[].name</c> asked for (1-64 of <c>A-Z a-z 0-9 . _ -</c>).</param>
public sealed record TunnelOpen(uint StreamId, uint Window, string Name) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x01;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Tunnel;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Device to relay: the target is connected; the stream carries bytes both ways from now.</summary>
/// <param name="StreamId">The opened stream.</param>
/// <param name="Window">Bytes the relay may send before it receives a <see cref="TunnelWindow"/>.</param>
public sealed record TunnelAccept(uint StreamId, uint Window) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x02;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Tunnel;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Either direction: bytes of a stream (at most <see cref="UplinkProtocol.MaxTunnelDataBytes"/>), counted against the receiver's window.</summary>
/// <param name="StreamId">The stream.</param>
/// <param name="Data">The bytes.</param>
public sealed record TunnelData(uint StreamId, ReadOnlyMemory<byte> Data) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x03;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Tunnel;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Either direction: the receiver consumed bytes; the sender may send <paramref name="Increment"/> more.</summary>
/// <param name="StreamId">The stream.</param>
/// <param name="Increment">Credit added to the sender's window (&gt; 0).</param>
public sealed record TunnelWindow(uint StreamId, uint Increment) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x04;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Tunnel;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Either direction: the sender's half-close: it sends no more data (TCP FIN). The other direction stays open.</summary>
/// <param name="StreamId">The stream.</param>
public sealed record TunnelClose(uint StreamId) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x05;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Tunnel;

    /// <inheritdoc />
    public override byte Type => WireType;
}

/// <summary>Either direction: the stream is aborted both ways (also the device's refusal of a <see cref="TunnelOpen"/>).</summary>
/// <param name="StreamId">The stream.</param>
/// <param name="Code">Why.</param>
/// <param name="Text">A human-readable explanation.</param>
public sealed record TunnelReset(uint StreamId, TunnelResetCode Code, string Text) : UplinkMessage
{
    /// <summary>Wire type.</summary>
    public const byte WireType = 0x06;

    /// <inheritdoc />
    public override UplinkChannel Channel => UplinkChannel.Tunnel;

    /// <inheritdoc />
    public override byte Type => WireType;
}
