using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.G711;

/// <summary>
/// RTP payload format for G.711 (RFC 3551 §4.5.14, PCMA/PCMU): one byte per sample and channel;
/// each packet's payload becomes one access unit stamped with the packet's timestamp.
/// </summary>
internal sealed class G711Depacketizer : RtpDepacketizer
{
    /// <summary>Creates a depacketizer for A-law (<see cref="MediaCodec.PcmAlaw"/>) or µ-law (<see cref="MediaCodec.PcmMulaw"/>).</summary>
    public G711Depacketizer(int track, MediaCodec codec, int clockRate = 8000, int channels = 1) : base(track)
    {
        if (codec is not (MediaCodec.PcmAlaw or MediaCodec.PcmMulaw)) throw new ArgumentException("G.711 is PCMA or PCMU", nameof(codec));
        ArgumentOutOfRangeException.ThrowIfLessThan(clockRate, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        TrackInfo = new TrackInfo { Codec = codec, ClockRate = clockRate, SampleRate = clockRate, Channels = channels };
    }

    /// <inheritdoc />
    public override TrackInfo? TrackInfo { get; }

    /// <inheritdoc />
    protected override void Depacketize(RtpPacket packet, long timestamp, IAccessUnitOutput output)
    {
        if (packet.Payload.Length == 0) return; // comfort-noise gaps send empty packets; nothing to play
        if (packet.Payload.Length % TrackInfo!.Channels != 0) throw new MediaFormatException("G.711 payload is not a whole number of sample frames");
        output.OnAccessUnit(TrackInfo, new AccessUnit(Track, timestamp, timestamp, true, packet.Payload.ToArray()));
    }

    /// <inheritdoc />
    protected override void OnLoss() { }
}
