namespace Pinhole.Transport.Media;

/// <summary>The codecs Pinhole carries end to end. Names follow FFmpeg's.</summary>
public enum MediaCodec
{
    /// <summary>H.264 / AVC video (RFC 6184 on RTP).</summary>
    H264,

    /// <summary>H.265 / HEVC video (RFC 7798 on RTP).</summary>
    H265,

    /// <summary>AAC audio, raw access units (RFC 3640 AAC-hbr on RTP).</summary>
    Aac,

    /// <summary>G.711 A-law audio (RTP payload type 8).</summary>
    PcmAlaw,

    /// <summary>G.711 µ-law audio (RTP payload type 0).</summary>
    PcmMulaw,
}

/// <summary>Helpers over <see cref="MediaCodec"/>.</summary>
internal static class MediaCodecExtensions
{
    /// <summary>True for video codecs.</summary>
    public static bool IsVideo(this MediaCodec codec) => codec is MediaCodec.H264 or MediaCodec.H265;
}
