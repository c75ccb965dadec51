using Pinhole.Transport.Media;

namespace Pinhole.Transport.Rtp;

/// <summary>Receives what a depacketizer or assembler produces.</summary>
public interface IAccessUnitOutput
{
    /// <summary>A whole access unit of a track whose configuration is <paramref name="track"/>.
    /// A new <paramref name="track"/> instance means the configuration changed.</summary>
    void OnAccessUnit(TrackInfo track, in AccessUnit unit);
}

/// <summary>
/// Turns the RTP packets of one payload format into whole access units. Packets must arrive in
/// sequence order (TCP, or UDP through <see cref="RtpReorderBuffer"/>); a gap in sequence numbers
/// is treated as loss. Malformed payloads throw <see cref="MediaFormatException"/>; the
/// depacketizer stays usable afterwards (it drops the broken access unit).
/// </summary>
public abstract class RtpDepacketizer
{
    private readonly RtpTimestampUnwrapper _unwrapper = new();
    private int _lastSequence = -1;

    /// <summary>Creates a depacketizer for track <paramref name="track"/>.</summary>
    protected RtpDepacketizer(int track) => Track = track;

    /// <summary>The track index written into every <see cref="AccessUnit"/>.</summary>
    public int Track { get; }

    /// <summary>The current configuration; null while it is still unknown (video without parameter sets yet).</summary>
    public abstract TrackInfo? TrackInfo { get; }

    /// <summary>Access units dropped (loss, waiting for a keyframe or parameter sets, malformed).</summary>
    public virtual long DroppedUnits { get; protected set; }

    /// <summary>
    /// Feeds one packet; completed access units go to <paramref name="output"/>. Nothing keeps the
    /// packet's memory after this returns (access units own copies), so the caller may reuse it.
    /// </summary>
    public void Push(RtpPacket packet, IAccessUnitOutput output)
    {
        ArgumentNullException.ThrowIfNull(packet);
        ArgumentNullException.ThrowIfNull(output);
        var lost = _lastSequence >= 0 && packet.SequenceNumber != (ushort)(_lastSequence + 1);
        _lastSequence = packet.SequenceNumber;
        if (lost) OnLoss();
        try
        {
            Depacketize(packet, _unwrapper.Unwrap(packet.Timestamp), output);
        }
        catch (MediaFormatException)
        {
            OnLoss();
            throw;
        }
    }

    /// <summary>Handles one in-order packet; <paramref name="timestamp"/> is its unwrapped RTP timestamp.</summary>
    protected abstract void Depacketize(RtpPacket packet, long timestamp, IAccessUnitOutput output);

    /// <summary>Packets went missing (or a malformed one was rejected): drop partial state.</summary>
    protected abstract void OnLoss();
}
