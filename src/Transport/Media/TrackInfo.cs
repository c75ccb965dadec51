namespace Pinhole.Transport.Media;

/// <summary>
/// Everything a consumer needs to decode or re-package one elementary stream: the codec, its clock,
/// and its out-of-band configuration. Immutable; a change of configuration is a new instance.
/// </summary>
/// <remarks>
/// Video parameter sets are raw NAL units without start codes or length prefixes:
/// H.264 carries SPS then PPS; H.265 carries VPS, SPS, PPS. AAC carries its
/// AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) in <see cref="AudioSpecificConfig"/>.
/// </remarks>
public sealed record TrackInfo
{
    /// <summary>The codec of this track.</summary>
    public required MediaCodec Codec { get; init; }

    /// <summary>Clock rate of <see cref="AccessUnit.Pts"/> and <see cref="AccessUnit.Dts"/> (90 000 for video, the sample rate for audio).</summary>
    public required int ClockRate { get; init; }

    /// <summary>Video parameter sets (VPS/SPS/PPS) as raw NAL units; empty for audio.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> ParameterSets { get; init; } = [];

    /// <summary>Picture width in pixels, when known (0 otherwise).</summary>
    public int Width { get; init; }

    /// <summary>Picture height in pixels, when known (0 otherwise).</summary>
    public int Height { get; init; }

    /// <summary>Audio sample rate in Hz (0 for video).</summary>
    public int SampleRate { get; init; }

    /// <summary>Audio channel count (0 for video).</summary>
    public int Channels { get; init; }

    /// <summary>AAC AudioSpecificConfig bytes; empty for other codecs.</summary>
    public ReadOnlyMemory<byte> AudioSpecificConfig { get; init; }

    /// <summary>True when the track is video.</summary>
    public bool IsVideo => Codec.IsVideo();

    /// <summary>Value equality that compares the configuration bytes, not the buffer references.</summary>
    public bool Equals(TrackInfo? other) =>
        other is not null
        && Codec == other.Codec && ClockRate == other.ClockRate
        && Width == other.Width && Height == other.Height
        && SampleRate == other.SampleRate && Channels == other.Channels
        && AudioSpecificConfig.Span.SequenceEqual(other.AudioSpecificConfig.Span)
        && ParameterSets.Count == other.ParameterSets.Count
        && ParameterSets.Zip(other.ParameterSets).All(p => p.First.Span.SequenceEqual(p.Second.Span));

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Codec, ClockRate, Width, Height, SampleRate, Channels);
}
