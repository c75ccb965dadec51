using Pinhole.Transport.Media;

namespace Pinhole.Transport.Tests.Support;

/// <summary>An IMediaSink that records everything, thread-safe, with a way to wait for enough units.</summary>
internal sealed class RecordingSink : IMediaSink
{
    private readonly object _lock = new();
    public List<IReadOnlyList<TrackInfo>> TrackAnnouncements { get; } = [];
    public List<AccessUnit> Units { get; } = [];
    public List<string> Errors { get; } = [];
    private readonly TaskCompletionSource _enough = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Func<RecordingSink, bool> _condition = _ => false;

    public IReadOnlyList<TrackInfo> Tracks { get { lock (_lock) return TrackAnnouncements.Count == 0 ? [] : TrackAnnouncements[^1]; } }

    public Task WaitAsync(Func<RecordingSink, bool> condition)
    {
        lock (_lock)
        {
            _condition = condition;
            if (condition(this)) _enough.TrySetResult();
        }
        return _enough.Task;
    }

    public int Count(int track) { lock (_lock) return Units.Count(u => u.Track == track); }

    public void OnTracks(IReadOnlyList<TrackInfo> tracks)
    {
        lock (_lock) TrackAnnouncements.Add(tracks); // kept as given: a producer must not change it afterwards
    }

    public void OnAccessUnit(in AccessUnit unit)
    {
        lock (_lock)
        {
            if (TrackAnnouncements.Count == 0) Errors.Add("access unit before OnTracks");
            else if (unit.Track >= TrackAnnouncements[^1].Count) Errors.Add("track index out of range");
            Units.Add(unit);
            if (_condition(this)) _enough.TrySetResult();
        }
    }
}
