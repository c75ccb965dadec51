namespace Pinhole.EdgeHost.Uplink;

/// <summary>How long the uplink waits before the next round of connection attempts: capped exponential backoff with jitter.</summary>
internal static class UplinkBackoff
{
    /// <summary>The wait after <paramref name="failures"/> failed rounds: <paramref name="initial"/> doubled per failure,
    /// at most <paramref name="max"/>, of which the upper half is random.</summary>
    public static TimeSpan Delay(int failures, TimeSpan initial, TimeSpan max)
    {
        var ceiling = Math.Min(max.TotalMilliseconds, initial.TotalMilliseconds * Math.Pow(2, Math.Min(failures, 30)));
        // Equal jitter: half fixed, half random, so a fleet that lost its relay does not return in lockstep.
        return TimeSpan.FromMilliseconds(ceiling / 2 + Random.Shared.NextDouble() * ceiling / 2);
    }
}
