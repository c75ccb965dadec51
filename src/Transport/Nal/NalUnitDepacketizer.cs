using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.Nal;

/// <summary>
/// What the H.264 and H.265 depacketizers share: a <see cref="NalUnitAssembler"/>, one fragmented NAL
/// unit in progress, and where an access unit (a whole picture) ends; a loss drops the fragment and
/// the access unit.
/// </summary>
/// <remarks>
/// <para>An access unit ends when the timestamp changes or when a NAL unit that can only begin one
/// arrives after a slice (H.264 §7.4.1.2.3, H.265 §7.4.2.4.4): an AUD, a prefix SEI, a new parameter
/// set, or the first slice of the next picture (<c>first_mb_in_slice</c> = 0,
/// <c>first_slice_segment_in_pic_flag</c> = 1), which a FU start fragment already shows.</para>
/// <para>The marker bit alone does not end it. RFC 6184 §5.1 and RFC 7798 §4.1 set it on the last
/// packet of an access unit, but live555's proxy and encoders in slice mode set it after every
/// slice, and a picture cut at each marker reaches viewers in halves. So a unit that ends at a
/// marker is held until the next packet proves the marker right (a new timestamp or a new picture)
/// or wrong (the next slice of the same picture). After <see cref="MarkerConfirmationsNeeded"/>
/// proven markers, one of them after a keyframe (the picture most likely to be cut into slices), the
/// stream is trusted to mark whole pictures and units end at the marker with no wait; one marker
/// proven wrong turns that off for good. Until then, and for streams that mark slices, a unit
/// leaves when the next picture's first packet arrives.</para>
/// </remarks>
internal abstract class NalUnitDepacketizer : RtpDepacketizer
{
    /// <summary>Markers proven right by the following packet before the marker alone ends access units.</summary>
    public const int MarkerConfirmationsNeeded = 2;

    private readonly string _markerInsideFragment;
    private readonly MediaCodec _codec;
    private long _timestamp;
    private IAccessUnitOutput? _output;
    // The pending unit ended at a marker and waits for proof.
    private bool _markerPending;
    // A unit was emitted at a trusted marker and nothing since said whether the picture was whole.
    private bool _emittedAtMarker;
    // The rest of a picture that already left at a marker: dropped up to the next access unit.
    private bool _droppingTail;
    private int _confirmations;
    private bool _keyframeConfirmed;
    private bool _markerDisproved;
    // The fragment in progress was placed from its start (a slice or another NAL unit its header decides).
    private bool _fragmentPlaced;

    private protected NalUnitDepacketizer(int track, MediaCodec codec, IEnumerable<ReadOnlyMemory<byte>>? parameterSets, string markerInsideFragment) : base(track)
    {
        Assembler = new NalUnitAssembler(codec, track, parameterSets);
        _codec = codec;
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

    /// <summary>True once the stream has shown that its marker bits end whole pictures, so access units leave at the marker.</summary>
    public bool MarkerEndsPictures => !_markerDisproved && _confirmations >= MarkerConfirmationsNeeded && _keyframeConfirmed;

    /// <inheritdoc />
    protected sealed override void Depacketize(RtpPacket packet, long timestamp, IAccessUnitOutput output)
    {
        _output = output;
        if (timestamp != _timestamp)
        {
            // A new timestamp starts a new access unit even when the marker bit was lost.
            if (Assembler.HasPending)
            {
                Fragment.Reset();
                Complete(proven: _markerPending);
            }
            else if (_emittedAtMarker) Confirm(keyframe: false);
            _markerPending = _emittedAtMarker = _droppingTail = false;
        }
        _timestamp = timestamp;
        try
        {
            DepacketizePayload(packet.Payload);
        }
        finally
        {
            _output = null;
        }
        if (packet.Marker)
        {
            if (Fragment.InProgress) throw new MediaFormatException(_markerInsideFragment);
            if (!Assembler.HasVcl || MarkerEndsPictures)
            {
                // Parameter sets alone carry no picture to cut; a trusted marker ends the picture now.
                var hadVcl = Assembler.HasVcl;
                Assembler.Complete(timestamp, output);
                _emittedAtMarker = hadVcl;
            }
            else
            {
                _markerPending = true;
            }
        }
    }

    /// <summary>Adds the NAL units of one payload through <see cref="AddNal"/> (directly or through <see cref="Fragment"/>).</summary>
    private protected abstract void DepacketizePayload(ReadOnlyMemory<byte> payload);

    /// <summary>
    /// The start of a fragmented NAL unit: its rebuilt header and the first bytes after it. A slice
    /// shows here whether it starts a new picture, so the previous one can leave before the rest of
    /// this one arrives.
    /// </summary>
    private protected void StartFragment(ReadOnlySpan<byte> head)
    {
        var role = AccessUnitBoundary.Classify(_codec, head);
        // A parameter set is compared whole, and a start too short to show the slice header is
        // decided when the whole NAL unit is there.
        _fragmentPlaced = role is not (NalUnitRole.ParameterSet or NalUnitRole.Neutral);
        if (_fragmentPlaced) Place(role, head, whole: false);
    }

    /// <summary>Adds one whole NAL unit, ending the pending access unit first when this one begins the next.</summary>
    /// <param name="nal">The NAL unit.</param>
    /// <param name="fragment">True for a fragmented NAL unit whose start went to <see cref="StartFragment"/>.</param>
    private protected void AddNal(ReadOnlySpan<byte> nal, bool fragment = false)
    {
        var role = AccessUnitBoundary.Classify(_codec, nal);
        if (!fragment || !_fragmentPlaced) Place(role, nal, whole: true);
        if (_droppingTail) return;
        Assembler.Add(nal);
    }

    // Decides whether a NAL unit begins a new access unit, and what that proves about the marker.
    private void Place(NalUnitRole role, ReadOnlySpan<byte> nal, bool whole)
    {
        var startsUnit = role switch
        {
            NalUnitRole.AccessUnitStart or NalUnitRole.FirstSlice => true,
            // GStreamer's rtph264pay config-interval=-1 repeats SPS/PPS before every slice of a
            // keyframe: a copy of one already in the unit is not a new picture. After a unit that
            // left at the marker, a copy of the one in use proves nothing either.
            NalUnitRole.ParameterSet => whole && !(_emittedAtMarker ? Assembler.IsCurrentParameterSet(nal) : Assembler.Contains(nal)),
            _ => false,
        };
        if (_emittedAtMarker)
        {
            // The unit before left at a trusted marker: this NAL unit says whether it was whole.
            if (startsUnit)
            {
                Confirm(keyframe: false);
                _emittedAtMarker = false;
            }
            else if (role == NalUnitRole.NextSlice)
            {
                // It was not: the stream marks slices after all. Stop trusting the marker; the picture
                // already sent lacks this slice, so drop the rest of it and wait for a keyframe, as after a loss.
                _markerDisproved = true;
                _emittedAtMarker = false;
                _droppingTail = true;
                Assembler.MarkLoss();
            }
            return;
        }
        if (_droppingTail)
        {
            if (startsUnit) _droppingTail = false;
            return;
        }
        if (!Assembler.HasVcl || _output is null) return; // what comes before the first slice belongs to the unit
        if (startsUnit)
        {
            Complete(proven: _markerPending);
            _markerPending = false;
        }
        else if (role == NalUnitRole.NextSlice && _markerPending)
        {
            // Another slice of the same picture after the marker: this stream marks slices.
            _markerDisproved = true;
            _markerPending = false;
        }
    }

    private void Complete(bool proven)
    {
        if (proven) Confirm(Assembler.HasKeyframe);
        Assembler.Complete(_timestamp, _output!);
    }

    private void Confirm(bool keyframe)
    {
        _confirmations++;
        _keyframeConfirmed |= keyframe;
    }

    /// <inheritdoc />
    protected sealed override void OnLoss()
    {
        AfterLoss = true;
        Fragment.Reset();
        Assembler.MarkLoss();
        // Whatever the lost packets were, they prove nothing about the marker.
        _markerPending = _emittedAtMarker = _droppingTail = false;
    }
}
