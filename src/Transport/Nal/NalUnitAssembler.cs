using System.Buffers.Binary;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.Nal;

/// <summary>
/// Collects the NAL units of one H.264 or H.265 access unit and emits it as AVCC (4-byte
/// big-endian lengths). Tracks parameter sets (from SDP and in-band) and publishes a new
/// <see cref="TrackInfo"/> when they change; drops access units until it has the parameter sets
/// and a keyframe, and again after a loss until the next keyframe (never a broken GOP). Gives each
/// unit a DTS from its PTS (<see cref="DecodeTimestampGenerator"/>, with the reorder depth from the
/// SPS), so DTS = PTS without B-frames. The caller decides where units end.
/// Used by the RTP depacketizers and by the Annex-B reader of <c>exec:</c> sources.
/// </summary>
public sealed class NalUnitAssembler
{
    /// <summary>Largest access unit accepted (bytes of NAL data).</summary>
    public const int MaxAccessUnitBytes = 8 * 1024 * 1024;

    /// <summary>Most NAL units in one access unit.</summary>
    public const int MaxNalUnits = 1024;

    private const int InitialUnitBytes = 64 * 1024;
    private const int UnknownReorderDepth = 2;
    private const int ShrinkAboveBytes = 1024 * 1024;

    private readonly MediaCodec _codec;
    private readonly int _track;
    // The access unit being collected, already in its output form: each NAL unit behind its 4-byte
    // length. NAL units are copied in as they come, so callers may reuse their buffers at once.
    private byte[] _unit = new byte[InitialUnitBytes];
    private int _used;
    private readonly List<(int Offset, int Length)> _nals = [];
    private bool _vcl, _keyframe;
    private bool _broken;
    private bool _waitForKeyframe = true;
    private byte[]? _vps, _sps, _pps;
    private int _width, _height;
    private TrackInfo? _trackInfo;
    private readonly DecodeTimestampGenerator _dts = new(90000);

    /// <summary>Creates an assembler; <paramref name="parameterSets"/> are out-of-band ones (SDP sprop-*).</summary>
    public NalUnitAssembler(MediaCodec codec, int track, IEnumerable<ReadOnlyMemory<byte>>? parameterSets = null)
    {
        if (!codec.IsVideo()) throw new ArgumentException("NAL units are H.264 or H.265", nameof(codec));
        _codec = codec;
        _track = track;
        if (parameterSets is not null)
        {
            foreach (var p in parameterSets)
            {
                try { StoreParameterSet(p.Span); }
                catch (MediaFormatException) { /* a bad sprop is replaced by in-band ones */ }
            }
            TryUpdateTrackInfo();
        }
    }

    /// <summary>The configuration, once SPS and PPS (and VPS for H.265) are known.</summary>
    public TrackInfo? TrackInfo => _trackInfo;

    /// <summary>Access units dropped so far.</summary>
    public long Dropped { get; private set; }

    /// <summary>True when an access unit is being collected.</summary>
    public bool HasPending => _nals.Count > 0 || _broken;

    /// <summary>True when the access unit being collected holds a slice (VCL NAL unit) already.</summary>
    public bool HasVcl => _vcl;

    /// <summary>True when the access unit being collected holds a keyframe slice (IDR, IRAP).</summary>
    public bool HasKeyframe => _keyframe;

    /// <summary>True when the access unit being collected holds a NAL unit equal to <paramref name="nal"/>
    /// (a repeated parameter set, which <see cref="Add(ReadOnlySpan{byte})"/> leaves out).</summary>
    public bool Contains(ReadOnlySpan<byte> nal)
    {
        foreach (var (offset, length) in _nals)
            if (_unit.AsSpan(offset, length).SequenceEqual(nal)) return true;
        return false;
    }

    /// <summary>True when <paramref name="nal"/> equals the SPS, PPS or VPS in use.</summary>
    internal bool IsCurrentParameterSet(ReadOnlySpan<byte> nal) =>
        (_sps is not null && nal.SequenceEqual(_sps)) || (_pps is not null && nal.SequenceEqual(_pps)) || (_vps is not null && nal.SequenceEqual(_vps));

    /// <summary>The reorder depth the DTS are derived with (0 without B-frames).</summary>
    public int ReorderDepth => _dts.ReorderDepth;

    /// <summary>Adds one NAL unit (header included, no start code or length). It is copied: the caller may reuse the memory at once.</summary>
    public void Add(ReadOnlyMemory<byte> nal) => Add(nal.Span);

    /// <summary>Adds one NAL unit (header included, no start code or length). It is copied: the caller may reuse the memory at once.</summary>
    public void Add(ReadOnlySpan<byte> nal)
    {
        if (nal.Length < HeaderLength) throw new MediaFormatException($"{_codec} NAL unit shorter than its header");
        if ((nal[0] & 0x80) != 0) throw new MediaFormatException($"{_codec} NAL unit with forbidden_zero_bit set");
        if (_broken) return;
        var type = NalType(nal);
        if (IsAccessUnitDelimiter(type)) return; // re-created by muxers when needed
        if (IsParameterSet(type))
        {
            StoreParameterSet(nal);
            // Packetizers with config-interval=-1 repeat SPS/PPS before every slice of a keyframe;
            // a copy between two slices of one picture would make a decoder start a new frame.
            if (Contains(nal)) return;
        }
        if (_nals.Count >= MaxNalUnits) throw new MediaFormatException($"more than {MaxNalUnits} NAL units in one access unit");
        if (_used - 4 * _nals.Count + nal.Length > MaxAccessUnitBytes) throw new MediaFormatException($"access unit larger than {MaxAccessUnitBytes} bytes");
        var needed = _used + 4 + nal.Length;
        if (needed > _unit.Length) Array.Resize(ref _unit, Math.Max(needed, Math.Min(_unit.Length * 2, MaxAccessUnitBytes + 4 * MaxNalUnits)));
        BinaryPrimitives.WriteInt32BigEndian(_unit.AsSpan(_used), nal.Length);
        nal.CopyTo(_unit.AsSpan(_used + 4));
        _nals.Add((_used + 4, nal.Length));
        _used = needed;
        _vcl |= IsVcl(type);
        _keyframe |= IsKeyframe(type);
    }

    /// <summary>Marks the pending access unit as damaged (lost packets) and waits for the next keyframe.</summary>
    internal void MarkLoss()
    {
        if (_nals.Count > 0) _broken = true;
        _waitForKeyframe = true;
    }

    /// <summary>Ends the pending access unit and emits it when it is whole and decodable.</summary>
    public void Complete(long pts, IAccessUnitOutput output)
    {
        ArgumentNullException.ThrowIfNull(output);
        try
        {
            if (_broken) { Dropped++; return; }
            if (_nals.Count == 0) return;
            var keyframe = _keyframe;
            TryUpdateTrackInfo();
            if (!_vcl) return; // parameter sets or SEI alone: configuration only
            if (_trackInfo is null || (_waitForKeyframe && !keyframe)) { Dropped++; return; }
            _waitForKeyframe = false;
            // The unit leaves as its own array: sinks keep it (send queues, GOP caches) while the
            // collecting buffer is reused for the next one.
            var payload = _unit.AsSpan(0, _used).ToArray();
            output.OnAccessUnit(_trackInfo, new AccessUnit(_track, pts, _dts.Next(pts, keyframe), keyframe, payload));
        }
        finally
        {
            // One huge unit (up to MaxAccessUnitBytes) must not pin that much memory for good: a
            // keyframe (the largest units) that used under a quarter of a big buffer shrinks it.
            if (_keyframe && _unit.Length > ShrinkAboveBytes && _used < _unit.Length / 4) _unit = new byte[Math.Max(InitialUnitBytes, 2 * _used)];
            _nals.Clear();
            _used = 0;
            _vcl = _keyframe = false;
            _broken = false;
        }
    }

    private int HeaderLength => _codec == MediaCodec.H264 ? 1 : 2;

    private int NalType(ReadOnlySpan<byte> nal) => _codec == MediaCodec.H264 ? nal[0] & 0x1f : (nal[0] >> 1) & 0x3f;

    // H.264 Table 7-1: 9 AUD; H.265 Table 7-1: 35 AUD_NUT.
    private bool IsAccessUnitDelimiter(int type) => _codec == MediaCodec.H264 ? type == 9 : type == 35;

    private bool IsParameterSet(int type) => _codec == MediaCodec.H264 ? type is 7 or 8 : type is 32 or 33 or 34;

    // H.264: 1..5 are slices. H.265: 0..31 are VCL NAL unit types.
    private bool IsVcl(int type) => _codec == MediaCodec.H264 ? type is >= 1 and <= 5 : type <= 31;

    // H.264: 5 IDR. H.265: 16..23 IRAP (BLA, IDR, CRA).
    private bool IsKeyframe(int type) => _codec == MediaCodec.H264 ? type == 5 : type is >= 16 and <= 23;

    private void StoreParameterSet(ReadOnlySpan<byte> nal)
    {
        if (nal.Length < HeaderLength + 1) throw new MediaFormatException($"{_codec} parameter set too short");
        if (nal.Length > 64 * 1024) throw new MediaFormatException($"{_codec} parameter set larger than 64 KiB");
        var type = NalType(nal);
        ref var slot = ref _pps;
        if (_codec == MediaCodec.H264 ? type == 7 : type == 33) slot = ref _sps;
        else if (_codec == MediaCodec.H265 && type == 32) slot = ref _vps;
        else if (!(_codec == MediaCodec.H264 ? type == 8 : type == 34)) return;
        if (slot is not null && nal.SequenceEqual(slot)) return;
        var copy = nal.ToArray();
        if (_codec == MediaCodec.H264 ? type == 7 : type == 33)
        {
            // Parse before accepting, so a malformed SPS never replaces a good one.
            // The reorder depth (B-frames) decides how far DTS trail PTS; a stream that does not say
            // is assumed to reorder up to 2 frames until a GOP without reordering proves otherwise.
            int? reorder;
            if (_codec == MediaCodec.H264) { var sps = H264Sps.Parse(copy); (_width, _height) = (sps.Width, sps.Height); reorder = sps.ReorderDepth; }
            else { var sps = H265Sps.Parse(copy); (_width, _height) = (sps.Width, sps.Height); reorder = sps.MaxNumReorderPics; }
            _dts.SetReorderDepth(reorder ?? UnknownReorderDepth, guessed: reorder is null);
        }
        slot = copy;
    }

    private void TryUpdateTrackInfo()
    {
        if (_sps is null || _pps is null || (_codec == MediaCodec.H265 && _vps is null)) return;
        if (_trackInfo is not null)
        {
            var current = _trackInfo.ParameterSets;
            var same = _codec == MediaCodec.H264
                ? current[0].Span.SequenceEqual(_sps) && current[1].Span.SequenceEqual(_pps)
                : current[0].Span.SequenceEqual(_vps) && current[1].Span.SequenceEqual(_sps) && current[2].Span.SequenceEqual(_pps);
            if (same) return;
        }
        _trackInfo = new TrackInfo
        {
            Codec = _codec,
            ClockRate = 90000,
            ParameterSets = _codec == MediaCodec.H264 ? [_sps, _pps] : [_vps!, _sps, _pps],
            Width = _width,
            Height = _height,
        };
    }
}
