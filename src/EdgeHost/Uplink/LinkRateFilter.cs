namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// What the uplink itself can carry, from delivery-rate samples (bytes the relay acknowledged between
/// two acks over the time between them). Only samples of a busy link set it: bytes sent before the
/// previous ack were still not all delivered by this one. Otherwise the camera, not the link, set the
/// rate (a fast link carries what it is given), and believing it would drop frames a fast link would
/// carry. The estimate is the highest busy sample of the last <see cref="Window"/> (long: while frames
/// are dropped the link idles now and then), except that once the link has not been busy for
/// <see cref="IdleBeforeClear"/>, a sample of it delivering faster than that estimate clears it: the
/// link got faster (a shaper went away, the radio came back) and the old busy samples describe a link
/// that is gone. (One fast idle sample is not enough: a shaper's burst allowance lets a short sample
/// exceed the link's rate, and a slow link is busy again at every keyframe.) Not thread-safe.
/// </summary>
/// <param name="time">The clock the sample timestamps come from.</param>
/// <param name="window">How long a busy sample counts.</param>
internal sealed class LinkRateFilter(TimeProvider time, TimeSpan window)
{
    private readonly Queue<(long At, double BytesPerSecond)> _samples = new();
    private long _lastBusyAt;

    /// <summary>How long the link must have been idle before a faster idle sample clears the estimate.</summary>
    public static readonly TimeSpan IdleBeforeClear = TimeSpan.FromSeconds(2);

    /// <summary>How long a busy sample counts.</summary>
    public TimeSpan Window { get; } = window;

    /// <summary>The current estimate in bytes per second; 0 while unknown.</summary>
    public double BytesPerSecond { get; private set; }

    /// <summary>Adds a sample taken at <paramref name="at"/> (<see cref="TimeProvider.GetTimestamp"/>) and returns the new estimate.</summary>
    public double Add(long at, double bytesPerSecond, bool busy)
    {
        while (_samples.Count > 0 && time.GetElapsedTime(_samples.Peek().At, at) > Window) _samples.Dequeue();
        var link = 0.0;
        foreach (var sample in _samples) link = Math.Max(link, sample.BytesPerSecond);
        if (busy)
        {
            _samples.Enqueue((at, bytesPerSecond));
            _lastBusyAt = at;
            link = Math.Max(link, bytesPerSecond);
        }
        else if (link > 0 && bytesPerSecond > link && time.GetElapsedTime(_lastBusyAt, at) >= IdleBeforeClear)
        {
            // Without this the stale estimate held for Window after a slow link recovered, and the
            // send queue dropped frames the link now carried easily (the slow-link bench's recovery).
            _samples.Clear();
            link = 0;
        }
        BytesPerSecond = link;
        return link;
    }

    /// <summary>Forgets every sample (a new connection).</summary>
    public void Clear()
    {
        _samples.Clear();
        BytesPerSecond = 0;
    }
}
