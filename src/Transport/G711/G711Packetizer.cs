using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.G711;

/// <summary>
/// RTP packetizer for G.711 (RFC 3551 §4.5.14: PCMA payload type 8, PCMU payload type 0):
/// samples go out as they are, split so no packet exceeds the packet size or
/// <see cref="MaxSamplesPerPacket"/>; each packet's timestamp advances by the samples before it.
/// </summary>
internal sealed class G711Packetizer : RtpPacketizer
{
    private readonly int _channels;
    private bool _talkspurtStarted;

    /// <summary>Creates the packetizer for a G.711 track.</summary>
    /// <param name="track">The track (A-law or µ-law).</param>
    /// <param name="payloadType">Payload type; the static 8 (A-law) or 0 (µ-law) when null.</param>
    /// <param name="options">Packet size and starting points; null for defaults.</param>
    public G711Packetizer(TrackInfo track, byte? payloadType = null, RtpPacketizerOptions? options = null)
        : base(payloadType ?? StaticPayloadType(Checked(track).Codec), Checked(track).ClockRate, options)
    {
        _channels = Math.Max(1, track.Channels);
        Codec = track.Codec;
    }

    /// <summary>The static payload type of a G.711 codec (RFC 3551 Table 4).</summary>
    public static byte StaticPayloadType(MediaCodec codec) => codec switch
    {
        MediaCodec.PcmMulaw => 0,
        MediaCodec.PcmAlaw => 8,
        _ => throw new ArgumentException("not a G.711 codec", nameof(codec)),
    };

    private static TrackInfo Checked(TrackInfo track)
    {
        ArgumentNullException.ThrowIfNull(track);
        if (track.Codec is not (MediaCodec.PcmAlaw or MediaCodec.PcmMulaw)) throw new ArgumentException("track is not G.711", nameof(track));
        return track;
    }

    /// <summary>A-law or µ-law.</summary>
    public MediaCodec Codec { get; }

    /// <summary>Most samples per packet: 20 ms at 8 kHz, the RFC 3551 §4.2 default packetization interval, scaled to the clock.</summary>
    public int MaxSamplesPerPacket => Math.Max(1, ClockRate / 50);

    /// <inheritdoc />
    public override bool TryUpdateTrack(TrackInfo track)
    {
        ArgumentNullException.ThrowIfNull(track);
        return track.Codec == Codec && track.ClockRate == ClockRate && Math.Max(1, track.Channels) == _channels;
    }

    /// <inheritdoc />
    public override void Packetize(in AccessUnit unit, RtpPacketHandler output)
    {
        var samples = unit.Data.Span;
        // One byte per sample per channel; a packet holds whole sample frames.
        var perPacket = Math.Min(MaxSamplesPerPacket, MaxPayloadSize / _channels) * _channels;
        var timestamp = ToRtpTimestamp(unit.Pts);
        samples = samples[..(samples.Length - samples.Length % _channels)];
        while (!samples.IsEmpty)
        {
            var take = Math.Min(perPacket, samples.Length);
            // RFC 3551 §4.1: for audio the marker bit flags the first packet of a talkspurt; a relay
            // without silence suppression has one talkspurt, starting at the first packet.
            Emit(output, timestamp, marker: !_talkspurtStarted, default, samples[..take]);
            _talkspurtStarted = true;
            timestamp = unchecked(timestamp + (uint)(take / _channels));
            samples = samples[take..];
        }
    }
}
