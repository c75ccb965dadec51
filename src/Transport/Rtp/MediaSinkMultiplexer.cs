using Pinhole.Transport.Media;

namespace Pinhole.Transport.Rtp;

/// <summary>
/// Joins the outputs of several tracks into one <see cref="IMediaSink"/> stream: calls
/// <see cref="IMediaSink.OnTracks"/> before the first access unit and whenever a track's
/// configuration changes. Units arriving before every track's configuration is known are dropped
/// (a video track without parameter sets yet holds back the others, so a sink always sees a
/// complete track list).
/// </summary>
public sealed class MediaSinkMultiplexer : IAccessUnitOutput
{
    private readonly IMediaSink _sink;
    private readonly TrackInfo?[] _tracks;
    private bool _announced;

    /// <summary>Creates the multiplexer for <paramref name="trackCount"/> tracks; <paramref name="initial"/> are configurations known up front.</summary>
    public MediaSinkMultiplexer(IMediaSink sink, int trackCount, IEnumerable<TrackInfo?>? initial = null)
    {
        ArgumentNullException.ThrowIfNull(sink);
        _sink = sink;
        _tracks = new TrackInfo?[trackCount];
        if (initial is not null)
        {
            var i = 0;
            foreach (var t in initial.Take(trackCount)) _tracks[i++] = t;
        }
    }

    /// <summary>Units dropped because some track's configuration was still unknown.</summary>
    public long DroppedBeforeTracks { get; private set; }

    /// <summary>Access units delivered.</summary>
    public long Delivered { get; private set; }

    /// <inheritdoc />
    public void OnAccessUnit(TrackInfo track, in AccessUnit unit)
    {
        ArgumentNullException.ThrowIfNull(track);
        var index = unit.Track;
        var changed = !ReferenceEquals(_tracks[index], track) && !track.Equals(_tracks[index]);
        _tracks[index] = track;
        if (Array.Exists(_tracks, t => t is null))
        {
            DroppedBeforeTracks++;
            return;
        }
        if (!_announced || changed)
        {
            _announced = true;
            // A snapshot: the sink may keep the list, and the next change must not rewrite what it holds.
            _sink.OnTracks(Array.ConvertAll(_tracks, t => t!));
        }
        Delivered++;
        _sink.OnAccessUnit(unit);
    }
}
