namespace Pinhole.Transport.Media;

/// <summary>
/// Where a media producer (camera source, uplink receiver) delivers its output. Live media has no
/// backpressure: a sink that cannot keep up drops, it never blocks the producer.
/// </summary>
public interface IMediaSink
{
    /// <summary>The stream's tracks are known or changed. Always called before the first access unit
    /// and again whenever any track's configuration changes (for example new SPS/PPS).</summary>
    void OnTracks(IReadOnlyList<TrackInfo> tracks);

    /// <summary>One whole access unit. Its payload is never modified after delivery, so a sink may
    /// keep a reference to it (queue it, cache it in a GOP) without copying.</summary>
    void OnAccessUnit(in AccessUnit unit);
}
