namespace Pinhole.Transport.Media;

/// <summary>
/// One whole frame of one track: a video picture or an audio frame.
/// </summary>
/// <remarks>
/// Video payload is AVCC/HVCC style: each NAL unit is preceded by its length as a 4-byte
/// big-endian integer, with no start codes (what fMP4 stores and what an RTP packetizer splits).
/// Audio payload is the raw codec frame (AAC without ADTS, G.711 samples).
/// Timestamps are in the track's <see cref="TrackInfo.ClockRate"/>, unwrapped to 64 bits and
/// starting wherever the source started.
/// </remarks>
/// <param name="Track">Index of the track within its stream.</param>
/// <param name="Pts">Presentation timestamp.</param>
/// <param name="Dts">Decoding timestamp (equal to <paramref name="Pts"/> when the stream has no B-frames).</param>
/// <param name="IsKeyframe">True for a random access point (IDR/IRAP, every audio frame).</param>
/// <param name="Data">The payload; the sender keeps it unchanged while a consumer may still hold it.</param>
public readonly record struct AccessUnit(int Track, long Pts, long Dts, bool IsKeyframe, ReadOnlyMemory<byte> Data);
