using System.Globalization;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.Aac;

/// <summary>
/// RTP payload format for MPEG-4 audio, RFC 3640 (mpeg4-generic), in AAC-hbr style: an AU-header
/// section (§3.2.1) of sizelength/indexlength/indexdeltalength bit fields, then the access units.
/// Several AUs per packet get consecutive timestamps one frame apart; one AU may also be fragmented
/// across packets of the same timestamp (§3.2.3), ended by the marker bit.
/// </summary>
internal sealed class AacDepacketizer : RtpDepacketizer
{
    /// <summary>Largest AAC access unit accepted.</summary>
    public const int MaxAccessUnitBytes = 64 * 1024;

    private readonly int _sizeLength, _indexLength, _indexDeltaLength, _frameLength;
    private readonly byte[] _fragment = new byte[MaxAccessUnitBytes];
    private int _fragmentLength = -1;
    private int _fragmentExpected;
    private long _fragmentTimestamp;

    /// <summary>Creates a depacketizer from the SDP fmtp parameters (config, sizelength, indexlength, indexdeltalength).</summary>
    public AacDepacketizer(int track, int clockRate, IReadOnlyDictionary<string, string> fmtp) : base(track)
    {
        ArgumentNullException.ThrowIfNull(fmtp);
        if (!fmtp.TryGetValue("config", out var hex) || hex.Length == 0)
            throw new MediaFormatException("mpeg4-generic fmtp without config");
        byte[] config;
        try { config = Convert.FromHexString(hex); }
        catch (FormatException e) { throw new MediaFormatException("mpeg4-generic config is not hex", e); }
        var asc = AudioSpecificConfig.Parse(config);
        _sizeLength = Field(fmtp, "sizelength", 0);
        _indexLength = Field(fmtp, "indexlength", 0);
        _indexDeltaLength = Field(fmtp, "indexdeltalength", 0);
        if (_sizeLength is 0 or > 16) throw new MediaFormatException("mpeg4-generic sizelength must be 1..16 (AAC-hbr uses 13)");
        if (_indexLength > 8 || _indexDeltaLength > 8) throw new MediaFormatException("mpeg4-generic index lengths above 8 bits");
        foreach (var unsupported in new[] { "ctsdeltalength", "dtsdeltalength", "randomaccessindication", "streamstateindication", "auxiliarydatasizelength" })
            if (Field(fmtp, unsupported, 0) != 0) throw new MediaFormatException($"mpeg4-generic {unsupported} is not supported");
        _frameLength = Field(fmtp, "constantduration", asc.FrameLength);
        TrackInfo = new TrackInfo
        {
            Codec = MediaCodec.Aac,
            ClockRate = clockRate > 0 ? clockRate : asc.SampleRate,
            SampleRate = asc.SampleRate,
            Channels = asc.Channels,
            AudioSpecificConfig = config,
        };
    }

    /// <inheritdoc />
    public override TrackInfo? TrackInfo { get; }

    private static int Field(IReadOnlyDictionary<string, string> fmtp, string name, int fallback)
    {
        if (!fmtp.TryGetValue(name, out var v)) return fallback;
        if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n > 65535)
            throw new MediaFormatException($"mpeg4-generic {name} is not a number");
        return n;
    }

    /// <inheritdoc />
    protected override void Depacketize(RtpPacket packet, long timestamp, IAccessUnitOutput output)
    {
        var p = packet.Payload;
        if (p.Length < 2) throw new MediaFormatException("mpeg4-generic payload without AU-headers-length");
        var headerBits = (p.Span[0] << 8) | p.Span[1]; // §3.2.1 AU-headers-length, in bits
        var headerBytes = (headerBits + 7) / 8;
        if (2 + headerBytes > p.Length) throw new MediaFormatException("mpeg4-generic AU headers longer than the packet");
        var r = new BitReader(p.Span.Slice(2, headerBytes));
        var data = p[(2 + headerBytes)..];
        var first = true;
        var offset = 0;
        var index = 0L;
        var bitsUsed = 0;
        var perHeaderFirst = _sizeLength + _indexLength;
        var perHeader = _sizeLength + _indexDeltaLength;
        while (headerBits - bitsUsed >= (first ? perHeaderFirst : perHeader))
        {
            var size = (int)r.ReadBits(_sizeLength);
            var idx = (int)r.ReadBits(first ? _indexLength : _indexDeltaLength);
            bitsUsed += first ? perHeaderFirst : perHeader;
            if (!first) index += idx + 1; // §3.2.1.1 AU-Index-delta
            else index = 0;
            first = false;
            if (size > MaxAccessUnitBytes) throw new MediaFormatException($"AAC access unit of {size} bytes exceeds {MaxAccessUnitBytes}");
            if (size == 0)
            {
                // An AU-size of 0 (RFC 3640 §3.2.1) carries no AAC frame: nothing to decode, and an empty
                // access unit would become an empty fMP4 sample or uplink frame downstream (found by fuzzing).
                DroppedUnits++;
                continue;
            }
            var available = data.Length - offset;
            if (size > available)
            {
                // §3.2.3: a fragmented AU is alone in its packet; the header gives the whole AU size.
                if (bitsUsed != headerBits || offset != 0) throw new MediaFormatException("mpeg4-generic AU larger than its packet but not alone in it");
                AppendFragment(size, timestamp, data.Span, packet.Marker, output);
                return;
            }
            if (_fragmentLength >= 0)
            {
                if (_fragmentTimestamp == timestamp && bitsUsed == headerBits && offset == 0)
                {
                    AppendFragment(size, timestamp, data.Span, packet.Marker, output);
                    return;
                }
                _fragmentLength = -1; // an unfinished fragment followed by a whole AU: drop it
                DroppedUnits++;
            }
            var unit = data.Slice(offset, size).ToArray(); // the packet's memory is the caller's again after Push
            offset += size;
            output.OnAccessUnit(TrackInfo!, new AccessUnit(Track, timestamp + index * _frameLength, timestamp + index * _frameLength, true, unit));
        }
        if (bitsUsed == 0) throw new MediaFormatException("mpeg4-generic packet without any AU-header");
    }

    private void AppendFragment(int size, long timestamp, ReadOnlySpan<byte> data, bool marker, IAccessUnitOutput output)
    {
        if (_fragmentLength < 0 || _fragmentTimestamp != timestamp || _fragmentExpected != size)
        {
            if (_fragmentLength >= 0) DroppedUnits++;
            _fragmentLength = 0;
            _fragmentExpected = size;
            _fragmentTimestamp = timestamp;
        }
        if (_fragmentLength + data.Length > size) { _fragmentLength = -1; throw new MediaFormatException("AAC fragments longer than the AU size"); }
        data.CopyTo(_fragment.AsSpan(_fragmentLength));
        _fragmentLength += data.Length;
        if (_fragmentLength == size)
        {
            var unit = _fragment.AsSpan(0, size).ToArray();
            _fragmentLength = -1;
            output.OnAccessUnit(TrackInfo!, new AccessUnit(Track, timestamp, timestamp, true, unit));
        }
        else if (marker)
        {
            _fragmentLength = -1;
            throw new MediaFormatException("AAC fragment ended (marker) before the AU was complete");
        }
    }

    /// <inheritdoc />
    protected override void OnLoss()
    {
        if (_fragmentLength >= 0) DroppedUnits++;
        _fragmentLength = -1;
    }
}
