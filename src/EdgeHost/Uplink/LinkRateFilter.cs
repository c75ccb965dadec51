namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// What the uplink itself can carry, from delivery-rate samples (bytes the relay acknowledged between
/// two acks over the time between them). Only samples of a busy link set it: bytes sent before the
/// previous ack were still not all delivered by this one. Otherwise the camera, not the link, set the
/// rate (a fast link carries what it is given), and believing it would drop frames a fast link would
/// carry. The estimate is all bytes over all time of the busy samples of the last <see cref="Window"/>
/// (long: while frames are dropped the link idles now and then; an average, because the best single
/// interval between acks, which ack timing jitter makes look fast, read the link at about twice its
/// real rate and the send queue then kept frames that arrived late), except that once the link has not been busy for
/// <see cref="IdleBeforeClear"/>, a sample of it delivering faster than that estimate clears it: the
/// link got faster (a shaper went away, the radio came back) and the old busy samples describe a link
/// that is gone. (One fast idle sample is not enough: a shaper's burst allowance lets a short sample
/// exceed the link's rate, and a slow link is busy again at every keyframe.) Not thread-safe.
/// </summary>
/// <param name="time">The clock the sample timestamps come from.</param>
/// <param name="window">How long a busy sample counts.</param>
internal sealed class LinkRateFilter(TimeProvider time, TimeSpan window)
{
    private readonly Queue<(long At, long Bytes, double Seconds)> _samples = new();
    private long _lastBusyAt;

    /// <summary>How long the link must have been idle before a faster idle sample clears the estimate.</summary>
    public static readonly TimeSpan IdleBeforeClear = TimeSpan.FromSeconds(2);

    /// <summary>How long a busy sample counts.</summary>
    public TimeSpan Window { get; } = window;

    /// <summary>The current estimate in bytes per second; 0 while unknown.</summary>
    public double BytesPerSecond { get; private set; }

    /// <summary>Adds a sample taken at <paramref name="at"/> (<see cref="TimeProvider.GetTimestamp"/>): <paramref name="bytes"/> delivered in <paramref name="seconds"/>; returns the new estimate.</summary>
    public double Add(long at, long bytes, double seconds, bool busy)
    {
        while (_samples.Count > 0 && time.GetElapsedTime(_samples.Peek().At, at) > Window) _samples.Dequeue();
        if (busy && seconds > 0)
        {
            _samples.Enqueue((at, bytes, seconds));
            _lastBusyAt = at;
        }
        var link = RateOf(_samples);
        if (!busy && link > 0 && seconds > 0 && bytes / seconds > link && time.GetElapsedTime(_lastBusyAt, at) >= IdleBeforeClear)
        {
            // Without this the stale estimate held for Window after a slow link recovered, and the
            // send queue dropped frames the link now carried easily (the slow-link bench's recovery).
            _samples.Clear();
            link = 0;
        }
        BytesPerSecond = link;
        return link;
    }

    /// <summary>All bytes over all time of <paramref name="samples"/>; 0 for none.</summary>
    internal static double RateOf(IEnumerable<(long At, long Bytes, double Seconds)> samples)
    {
        long bytes = 0;
        var seconds = 0.0;
        foreach (var (_, b, t) in samples)
        {
            bytes += b;
            seconds += t;
        }
        return seconds > 0 ? bytes / seconds : 0;
    }

    /// <summary>Forgets every sample (a new connection).</summary>
    public void Clear()
    {
        _samples.Clear();
        BytesPerSecond = 0;
    }
}
