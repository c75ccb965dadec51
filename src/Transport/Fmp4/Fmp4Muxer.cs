using Pinhole.Transport.Media;

namespace Pinhole.Transport.Fmp4;

/// <summary>
/// Fragmented MP4 (ISO/IEC 14496-12, CMAF-style) for live playback with Media Source Extensions:
/// one init segment (<c>ftyp</c> + <c>moov</c>) describing every track, then one
/// <c>moof</c> + <c>mdat</c> fragment per access unit. Pure: bytes in, bytes out, no I/O, no clock.
/// </summary>
/// <remarks>
/// <para><b>Latency over exact durations.</b> A fragment is produced the moment its access unit
/// arrives, so the duration of that sample cannot come from the next frame's DTS (which would hold
/// every frame back by one frame interval). Instead a sample lasts as long as the interval between
/// the two previous frames of its track (a default of 1/25 s for the first video frame; exactly
/// 1024 samples for AAC). Every fragment's <c>tfdt</c> carries the frame's true decode time, so an
/// estimate that is off by a little shows as a tiny gap or overlap that MSE absorbs, and errors
/// never accumulate.</para>
/// <para><b>Timeline.</b> Decode times are rebased so the first muxed frame is at 0. A track that
/// starts later is placed at the current position of the first track. A backward jump or a forward
/// jump of more than 10 s (a source that restarted its clock) is smoothed over: the timeline carries
/// on from where it was, because MSE cannot play a timeline that goes back.</para>
/// <para>Tracks that MSE cannot take in fMP4 (G.711) are left out; <see cref="IsMuxed"/> tells.
/// Not thread-safe: one muxer per viewer connection.</para>
/// </remarks>
public sealed class Fmp4Muxer
{
    // ISO/IEC 14496-12 §8.8.3.1 sample flags: sample_depends_on (2 bits at 24), sample_is_non_sync_sample (bit 16).
    private const uint SyncSampleFlags = 0x0200_0000;    // depends on no other sample
    private const uint NonSyncSampleFlags = 0x0101_0000; // depends on others, not a sync sample
    private const long MaxForwardJumpSeconds = 10;

    private readonly TrackState?[] _byInputIndex;
    private readonly List<TrackState> _tracks = [];
    private uint _sequenceNumber;
    private TrackState? _timelineReference;

    /// <summary>Creates a muxer for a stream's tracks.</summary>
    /// <param name="tracks">The stream's tracks, indexed as <see cref="AccessUnit.Track"/> indexes them.</param>
    /// <exception cref="NotSupportedException">None of the tracks can be carried in fMP4.</exception>
    public Fmp4Muxer(IReadOnlyList<TrackInfo> tracks)
    {
        ArgumentNullException.ThrowIfNull(tracks);
        _byInputIndex = new TrackState?[tracks.Count];
        for (var i = 0; i < tracks.Count; i++)
        {
            if (!CanMux(tracks[i])) continue;
            var state = new TrackState(tracks[i], (uint)(_tracks.Count + 1));
            _tracks.Add(state);
            _byInputIndex[i] = state;
        }
        if (_tracks.Count == 0) throw new NotSupportedException("no track can be carried in fMP4 (supported: H.264, H.265, AAC)");
        Codecs = string.Join(',', _tracks.Select(t => CodecStrings.For(t.Info)));
        HasVideo = _tracks.Any(t => t.Info.IsVideo);
    }

    /// <summary>
    /// True when a track can be muxed: H.264 with an SPS and a PPS, H.265 with a readable SPS, or AAC
    /// with an AudioSpecificConfig; a positive clock rate in every case.
    /// </summary>
    public static bool CanMux(TrackInfo track)
    {
        ArgumentNullException.ThrowIfNull(track);
        if (track.ClockRate <= 0) return false;
        return track.Codec switch
        {
            MediaCodec.H264 => CodecStrings.FindAvcSps(track) is { Length: >= 4 } && CodecStrings.FindAvcPps(track) is not null,
            MediaCodec.H265 => CodecStrings.For(track) is not null,
            MediaCodec.Aac => track.AudioSpecificConfig.Length >= 2 && track.SampleRate > 0,
            _ => false,
        };
    }

    /// <summary>The RFC 6381 codecs parameter, e.g. <c>avc1.64001f,mp4a.40.2</c>.</summary>
    public string Codecs { get; }

    /// <summary>True when a video track is muxed.</summary>
    public bool HasVideo { get; }

    /// <summary>The MIME type for <c>MediaSource.addSourceBuffer</c>, e.g. <c>video/mp4; codecs="avc1.64001f"</c>.</summary>
    public string MimeType => $"{(HasVideo ? "video" : "audio")}/mp4; codecs=\"{Codecs}\"";

    /// <summary>True when access units of the stream's track <paramref name="inputTrack"/> go into the output.</summary>
    public bool IsMuxed(int inputTrack) => (uint)inputTrack < (uint)_byInputIndex.Length && _byInputIndex[inputTrack] is not null;

    /// <summary>Builds the init segment: <c>ftyp</c> and a <c>moov</c> with one <c>trak</c> per muxed track and <c>mvex</c>.</summary>
    public byte[] CreateInitSegment()
    {
        var w = new BoxWriter(1024);
        var ftyp = w.Begin("ftyp");
        w.FourCc("isom");
        w.U32(0x200); // minor_version
        foreach (var brand in (string[])["isom", "iso6", "iso2", "mp41", "cmfc"]) w.FourCc(brand);
        if (_tracks.Any(t => t.Info.Codec == MediaCodec.H264)) w.FourCc("avc1");
        w.End(ftyp);

        var moov = w.Begin("moov");
        WriteMvhd(w);
        foreach (var t in _tracks) WriteTrak(w, t);
        var mvex = w.Begin("mvex");
        foreach (var t in _tracks)
        {
            var trex = w.BeginFull("trex", 0, 0);
            w.U32(t.TrackId);
            w.U32(1); // default_sample_description_index
            w.U32(0); // default_sample_duration
            w.U32(0); // default_sample_size
            w.U32(0); // default_sample_flags
            w.End(trex);
        }
        w.End(mvex);
        w.End(moov);
        return w.ToArray();
    }

    /// <summary>
    /// Builds one fragment (<c>moof</c> + <c>mdat</c>) holding one access unit; null when the unit's
    /// track is not muxed. Video payloads must be length-prefixed NAL units (AVCC/HVCC, 4-byte lengths).
    /// </summary>
    public byte[]? CreateFragment(in AccessUnit unit) => CreateFragment([unit]);

    /// <summary>
    /// Builds one fragment holding consecutive access units of one track, in decode order; null when
    /// the track is not muxed or <paramref name="units"/> is empty. Durations inside the batch come from
    /// the DTS differences; the last one is estimated (see the class remarks).
    /// </summary>
    /// <exception cref="ArgumentException">The units belong to different tracks.</exception>
    public byte[]? CreateFragment(ReadOnlySpan<AccessUnit> units)
    {
        if (units.IsEmpty || !IsMuxed(units[0].Track)) return null;
        var track = _byInputIndex[units[0].Track]!;
        var samples = new Sample[units.Length];
        long payloadBytes = 0;
        for (var i = 0; i < units.Length; i++)
        {
            if (units[i].Track != units[0].Track) throw new ArgumentException("all units of a fragment belong to one track", nameof(units));
            samples[i] = track.Place(units[i], ReferenceSeconds(track));
            payloadBytes += units[i].Data.Length;
        }
        _timelineReference ??= track;
        // Each sample lasts until the next one in the batch; the last gets the estimate made in Place.
        for (var i = 0; i + 1 < samples.Length; i++)
        {
            var d = samples[i + 1].DecodeTime - samples[i].DecodeTime;
            if (d > 0) samples[i] = samples[i] with { Duration = (uint)d };
        }
        if (payloadBytes > int.MaxValue - 4096) throw new ArgumentException("fragment too large", nameof(units));

        var anyOffset = false;
        var negativeOffset = false;
        foreach (var s in samples)
        {
            anyOffset |= s.CompositionOffset != 0;
            negativeOffset |= s.CompositionOffset < 0;
        }
        // Exact size (moof 8, mfhd 16, traf 8, tfhd 16, tfdt 20, trun 20 + per sample, mdat 8), so
        // ToArray hands over the buffer instead of copying the whole payload once more per fragment.
        var w = new BoxWriter((int)payloadBytes + 96 + units.Length * (anyOffset ? 16 : 12));
        var moof = w.Begin("moof");
        var mfhd = w.BeginFull("mfhd", 0, 0);
        w.U32(++_sequenceNumber);
        w.End(mfhd);
        var traf = w.Begin("traf");
        var tfhd = w.BeginFull("tfhd", 0, 0x020000); // default-base-is-moof
        w.U32(track.TrackId);
        w.End(tfhd);
        var tfdt = w.BeginFull("tfdt", 1, 0);
        w.U64((ulong)samples[0].DecodeTime);
        w.End(tfdt);

        // data-offset, sample-duration, sample-size, sample-flags [, sample-composition-time-offset]
        var trunFlags = 0x000701u | (anyOffset ? 0x000800u : 0);
        // Version 1 makes the composition offsets signed (§8.8.8.3); needed only when PTS < DTS.
        var trun = w.BeginFull("trun", negativeOffset ? (byte)1 : (byte)0, trunFlags);
        w.U32((uint)samples.Length);
        var dataOffsetField = w.Length;
        w.U32(0); // data_offset, patched below
        for (var i = 0; i < samples.Length; i++)
        {
            w.U32(samples[i].Duration);
            w.U32((uint)units[i].Data.Length);
            w.U32(units[i].IsKeyframe || !track.Info.IsVideo ? SyncSampleFlags : NonSyncSampleFlags);
            if (anyOffset) w.I32(samples[i].CompositionOffset);
        }
        w.End(trun);
        w.End(traf);
        w.End(moof);
        // The first sample starts right after the mdat header; offsets count from the moof's first byte.
        w.PatchU32(dataOffsetField, (uint)(w.Length - moof + 8));

        var mdat = w.Begin("mdat");
        foreach (var u in units) w.Bytes(u.Data.Span);
        w.End(mdat);
        return w.ToArray();
    }

    private double? ReferenceSeconds(TrackState track) =>
        _timelineReference is { } r && r != track && r.Started ? (double)r.LastDecodeEnd / r.Info.ClockRate : null;

    private static void WriteMvhd(BoxWriter w)
    {
        var mvhd = w.BeginFull("mvhd", 0, 0);
        w.U32(0); // creation_time
        w.U32(0); // modification_time
        w.U32(1000); // timescale
        w.U32(0); // duration: unknown, live
        w.U32(0x00010000); // rate 1.0
        w.U16(0x0100); // volume 1.0
        w.Zeros(10); // reserved
        w.UnityMatrix();
        w.Zeros(24); // pre_defined
        w.U32(0xFFFFFFFF); // next_track_ID: unknown, any id may be added
        w.End(mvhd);
    }

    private static void WriteTrak(BoxWriter w, TrackState t)
    {
        var info = t.Info;
        var trak = w.Begin("trak");
        var tkhd = w.BeginFull("tkhd", 0, 0x000003); // track_enabled | track_in_movie
        w.U32(0); // creation_time
        w.U32(0); // modification_time
        w.U32(t.TrackId);
        w.U32(0); // reserved
        w.U32(0); // duration
        w.Zeros(8); // reserved
        w.U16(0); // layer
        w.U16(0); // alternate_group
        w.U16(info.IsVideo ? (ushort)0 : (ushort)0x0100); // volume
        w.U16(0); // reserved
        w.UnityMatrix();
        w.U32(info.IsVideo ? (uint)Math.Clamp(info.Width, 0, 0xFFFF) << 16 : 0);
        w.U32(info.IsVideo ? (uint)Math.Clamp(info.Height, 0, 0xFFFF) << 16 : 0);
        w.End(tkhd);

        var mdia = w.Begin("mdia");
        var mdhd = w.BeginFull("mdhd", 0, 0);
        w.U32(0); // creation_time
        w.U32(0); // modification_time
        w.U32((uint)info.ClockRate); // timescale
        w.U32(0); // duration
        w.U16(0x55C4); // language "und", ISO-639-2/T packed in 5-bit letters
        w.U16(0); // pre_defined
        w.End(mdhd);

        var hdlr = w.BeginFull("hdlr", 0, 0);
        w.U32(0); // pre_defined
        w.FourCc(info.IsVideo ? "vide" : "soun");
        w.Zeros(12); // reserved
        w.Bytes(info.IsVideo ? "VideoHandler\0"u8 : "SoundHandler\0"u8);
        w.End(hdlr);

        var minf = w.Begin("minf");
        if (info.IsVideo)
        {
            var vmhd = w.BeginFull("vmhd", 0, 1);
            w.U16(0); // graphicsmode: copy
            w.Zeros(6); // opcolor
            w.End(vmhd);
        }
        else
        {
            var smhd = w.BeginFull("smhd", 0, 0);
            w.U16(0); // balance
            w.U16(0); // reserved
            w.End(smhd);
        }
        var dinf = w.Begin("dinf");
        var dref = w.BeginFull("dref", 0, 0);
        w.U32(1); // entry_count
        var url = w.BeginFull("url ", 0, 1); // self-contained: media is in this file
        w.End(url);
        w.End(dref);
        w.End(dinf);

        var stbl = w.Begin("stbl");
        var stsd = w.BeginFull("stsd", 0, 0);
        w.U32(1); // entry_count
        switch (info.Codec)
        {
            case MediaCodec.H264: WriteVisualSampleEntry(w, "avc1", info, () => WriteAvcC(w, info)); break;
            case MediaCodec.H265: WriteVisualSampleEntry(w, "hvc1", info, () => WriteHvcC(w, info)); break;
            default: WriteMp4a(w, info); break;
        }
        w.End(stsd);
        // A fragmented file's sample tables are empty; the samples are in the moofs (§8.8.1).
        var stts = w.BeginFull("stts", 0, 0); w.U32(0); w.End(stts);
        var stsc = w.BeginFull("stsc", 0, 0); w.U32(0); w.End(stsc);
        var stsz = w.BeginFull("stsz", 0, 0); w.U32(0); w.U32(0); w.End(stsz);
        var stco = w.BeginFull("stco", 0, 0); w.U32(0); w.End(stco);
        w.End(stbl);
        w.End(minf);
        w.End(mdia);
        w.End(trak);
    }

    // VisualSampleEntry, ISO/IEC 14496-12 §12.1.3.
    private static void WriteVisualSampleEntry(BoxWriter w, string type, TrackInfo info, Action writeConfig)
    {
        var entry = w.Begin(type);
        w.Zeros(6); // reserved
        w.U16(1); // data_reference_index
        w.U16(0); // pre_defined
        w.U16(0); // reserved
        w.Zeros(12); // pre_defined
        w.U16((ushort)Math.Clamp(info.Width, 0, 0xFFFF));
        w.U16((ushort)Math.Clamp(info.Height, 0, 0xFFFF));
        w.U32(0x00480000); // horizresolution 72 dpi
        w.U32(0x00480000); // vertresolution 72 dpi
        w.U32(0); // reserved
        w.U16(1); // frame_count
        w.Zeros(32); // compressorname
        w.U16(0x0018); // depth
        w.U16(0xFFFF); // pre_defined = -1
        writeConfig();
        w.End(entry);
    }

    // AVCDecoderConfigurationRecord, ISO/IEC 14496-15 §5.3.3.1.
    private static void WriteAvcC(BoxWriter w, TrackInfo info)
    {
        var sps = info.ParameterSets.Where(p => p.Length >= 4 && (p.Span[0] & 0x1F) == 7).ToList();
        var pps = info.ParameterSets.Where(p => p.Length > 0 && (p.Span[0] & 0x1F) == 8).ToList();
        var s = sps[0].Span; // CanMux made sure there is one
        var avcC = w.Begin("avcC");
        w.U8(1); // configurationVersion
        w.U8(s[1]); // AVCProfileIndication
        w.U8(s[2]); // profile_compatibility
        w.U8(s[3]); // AVCLevelIndication
        w.U8(0xFF); // reserved(6) + lengthSizeMinusOne = 3
        w.U8((byte)(0xE0 | Math.Min(sps.Count, 31))); // reserved(3) + numOfSequenceParameterSets
        foreach (var p in sps.Take(31)) { w.U16((ushort)p.Length); w.Bytes(p.Span); }
        w.U8((byte)Math.Min(pps.Count, 255));
        foreach (var p in pps.Take(255)) { w.U16((ushort)p.Length); w.Bytes(p.Span); }
        w.End(avcC);
    }

    // HEVCDecoderConfigurationRecord, ISO/IEC 14496-15 §8.3.3.1. Chroma format and bit depth are not
    // parsed from the SPS: 4:2:0, and 10 bits for the Main 10 profile, 8 otherwise (what cameras send).
    private static void WriteHvcC(BoxWriter w, TrackInfo info)
    {
        var ptl = HevcProfileTierLevel.FromSps(CodecStrings.FindHevcSps(info)!.Value.Span);
        var bitDepthMinus8 = ptl.ProfileIdc == 2 ? 2 : 0;
        var hvcC = w.Begin("hvcC");
        w.U8(1); // configurationVersion
        w.U8((byte)(ptl.ProfileSpace << 6 | (ptl.TierFlag ? 0x20 : 0) | ptl.ProfileIdc));
        w.U32(ptl.CompatibilityFlags);
        w.Bytes(ptl.ConstraintFlags);
        w.U8(ptl.LevelIdc);
        w.U16(0xF000); // reserved + min_spatial_segmentation_idc = 0
        w.U8(0xFC); // reserved + parallelismType = 0 (unknown)
        w.U8(0xFD); // reserved + chromaFormat = 1 (4:2:0)
        w.U8((byte)(0xF8 | bitDepthMinus8)); // bitDepthLumaMinus8
        w.U8((byte)(0xF8 | bitDepthMinus8)); // bitDepthChromaMinus8
        w.U16(0); // avgFrameRate: unknown
        // constantFrameRate(2)=0, numTemporalLayers(3), temporalIdNested(1), lengthSizeMinusOne(2)=3
        w.U8((byte)(((ptl.MaxSubLayersMinus1 + 1) & 7) << 3 | (ptl.TemporalIdNesting ? 4 : 0) | 3));
        var groups = info.ParameterSets.Where(p => p.Length >= 2 && ((p.Span[0] >> 1) & 0x3F) is >= 32 and <= 34).GroupBy(p => (p.Span[0] >> 1) & 0x3F).OrderBy(g => g.Key).ToList();
        w.U8((byte)groups.Count); // numOfArrays
        foreach (var g in groups)
        {
            w.U8((byte)(0x80 | g.Key)); // array_completeness = 1, NAL_unit_type
            w.U16((ushort)g.Count());
            foreach (var p in g) { w.U16((ushort)p.Length); w.Bytes(p.Span); }
        }
        w.End(hvcC);
    }

    // AudioSampleEntry (ISO/IEC 14496-12 §12.2.3) with an ES descriptor box (ISO/IEC 14496-14 §5.6).
    private static void WriteMp4a(BoxWriter w, TrackInfo info)
    {
        var mp4a = w.Begin("mp4a");
        w.Zeros(6); // reserved
        w.U16(1); // data_reference_index
        w.Zeros(8); // reserved
        w.U16((ushort)Math.Clamp(info.Channels, 1, 0xFFFF)); // channelcount
        w.U16(16); // samplesize
        w.U16(0); // pre_defined
        w.U16(0); // reserved
        w.U32((uint)Math.Min(info.SampleRate, 0xFFFF) << 16); // samplerate, 16.16
        var esds = w.BeginFull("esds", 0, 0);
        var asc = info.AudioSpecificConfig.Span;
        // ES_Descriptor (ISO/IEC 14496-1 §7.2.6.5), sizes in the one-byte form (all < 128 bytes).
        w.U8(0x03); w.U8((byte)(3 + 2 + 13 + 2 + asc.Length + 3));
        w.U16(0); // ES_ID
        w.U8(0); // no dependsOn, URL or OCR stream
        w.U8(0x04); w.U8((byte)(13 + 2 + asc.Length)); // DecoderConfigDescriptor
        w.U8(0x40); // objectTypeIndication: Audio ISO/IEC 14496-3
        w.U8(0x15); // streamType audio (5) << 2 | reserved 1
        w.U24(0); // bufferSizeDB
        w.U32(0); // maxBitrate
        w.U32(0); // avgBitrate
        w.U8(0x05); w.U8((byte)asc.Length); w.Bytes(asc); // DecoderSpecificInfo
        w.U8(0x06); w.U8(1); w.U8(0x02); // SLConfigDescriptor, predefined = 2 (MP4)
        w.End(esds);
        w.End(mp4a);
    }

    private readonly record struct Sample(long DecodeTime, uint Duration, int CompositionOffset);

    private sealed class TrackState(TrackInfo info, uint trackId)
    {
        private long _origin;
        private long _lastDts;
        private long _lastDecodeTime;
        private readonly long _defaultDuration = info.Codec == MediaCodec.Aac
            ? Math.Max(1, 1024L * info.ClockRate / Math.Max(1, info.SampleRate))
            : Math.Max(1, info.ClockRate / 25);
        private long _duration;

        public TrackInfo Info { get; } = info;
        public uint TrackId { get; } = trackId;
        public bool Started { get; private set; }
        public long LastDecodeEnd => _lastDecodeTime + _duration;

        public Sample Place(in AccessUnit unit, double? referenceSeconds)
        {
            if (!Started)
            {
                Started = true;
                _duration = _defaultDuration;
                var start = referenceSeconds is { } s ? (long)Math.Round(s * Info.ClockRate) : 0;
                _origin = unit.Dts - start;
            }
            else
            {
                var delta = unit.Dts - _lastDts;
                if (delta <= 0 || delta > MaxForwardJumpSeconds * Info.ClockRate)
                {
                    // The source's clock jumped: carry the timeline on one sample later.
                    _origin = unit.Dts - (_lastDecodeTime + _duration);
                }
                else if (Info.Codec != MediaCodec.Aac && delta <= Info.ClockRate)
                {
                    _duration = delta; // the latest interval predicts the next one
                }
            }
            _lastDts = unit.Dts;
            _lastDecodeTime = unit.Dts - _origin;
            var cto = unit.Pts - unit.Dts;
            return new Sample(_lastDecodeTime, (uint)_duration, (int)Math.Clamp(cto, int.MinValue, int.MaxValue));
        }
    }
}
