using Pinhole.Transport.H264;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Transport.Rtp;

/// <summary>
/// What the H.264 and H.265 depacketizers share: a <see cref="NalUnitAssembler"/> and one
/// fragmented NAL unit in progress; an access unit ends at the marker bit or when the timestamp
/// changes; a loss drops the fragment and the access unit.
/// </summary>
public abstract class NalUnitDepacketizer : RtpDepacketizer
{
    private readonly string _markerInsideFragment;
    private long _timestamp;

    private protected NalUnitDepacketizer(int track, MediaCodec codec, IEnumerable<ReadOnlyMemory<byte>>? parameterSets, string markerInsideFragment) : base(track)
    {
        Assembler = new NalUnitAssembler(codec, track, parameterSets);
        _markerInsideFragment = markerInsideFragment;
    }

    private protected NalUnitAssembler Assembler { get; }

    private protected FragmentBuffer Fragment { get; } = new();

    /// <summary>True until a clean packet boundary: a stream joined mid-NAL (or after a loss) starts with FU tails to drop.</summary>
    private protected bool AfterLoss { get; set; } = true;

    /// <inheritdoc />
    public override TrackInfo? TrackInfo => Assembler.TrackInfo;

    /// <inheritdoc />
    public override long DroppedUnits => Assembler.Dropped;

    /// <inheritdoc />
    protected sealed override void Depacketize(RtpPacket packet, long timestamp, IAccessUnitOutput output)
    {
        if (Assembler.HasPending && timestamp != _timestamp)
        {
            // A new timestamp starts a new access unit even when the marker bit was lost.
            Fragment.Reset();
            Assembler.Complete(_timestamp, output);
        }
        _timestamp = timestamp;
        DepacketizePayload(packet.Payload);
        if (packet.Marker)
        {
            if (Fragment.InProgress) throw new RtspProtocolException(_markerInsideFragment);
            Assembler.Complete(timestamp, output);
        }
    }

    /// <summary>Adds the NAL units of one payload to <see cref="Assembler"/> (directly or through <see cref="Fragment"/>).</summary>
    private protected abstract void DepacketizePayload(ReadOnlyMemory<byte> payload);

    /// <inheritdoc />
    protected sealed override void OnLoss()
    {
        AfterLoss = true;
        Fragment.Reset();
        Assembler.MarkLoss();
    }
}
