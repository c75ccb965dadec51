using Pinhole.EdgeHost.Uplink;
using Pinhole.Testing.Time;

namespace Pinhole.EdgeHost.Tests.Uplink;

public sealed class LinkRateFilterTests
{
    private readonly ManualTimeProvider _time = new();

    private double Add(LinkRateFilter filter, double rate, bool busy)
    {
        _time.Advance(TimeSpan.FromMilliseconds(100));
        return filter.Add(_time.GetTimestamp(), (long)(rate * 0.1), 0.1, busy);
    }

    [Fact]
    public void Only_a_busy_link_sets_the_rate_which_is_the_average_of_the_busy_samples_of_the_window()
    {
        var filter = new LinkRateFilter(_time, TimeSpan.FromSeconds(10));
        Assert.Equal(0, Add(filter, 90_000, busy: false)); // a camera's rate on an idle link says nothing about the link
        Assert.Equal(125_000, Add(filter, 125_000, busy: true));
        Assert.Equal(102_500, Add(filter, 80_000, busy: true), 6); // bytes over time of both, not the best interval
        Assert.Equal(102_500, Add(filter, 100_000, busy: false), 6); // slower than the link while idle: nothing new
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(0, Add(filter, 50_000, busy: false)); // the busy samples aged out
    }

    [Fact]
    public void A_link_idle_for_a_while_and_delivering_faster_than_the_estimate_clears_it()
    {
        // The slow-link bench's recovery: a 1 Mbit/s shaper goes away. Before, the stale 125 kB/s held
        // for the whole window and the send queue dropped frames the link now carried easily.
        var filter = new LinkRateFilter(_time, TimeSpan.FromSeconds(10));
        Add(filter, 125_000, busy: true);
        Add(filter, 120_000, busy: true);
        // A shaper's burst right after a busy spell is not news.
        Assert.Equal(122_500, Add(filter, 900_000, busy: false), 6);
        _time.Advance(LinkRateFilter.IdleBeforeClear);
        Assert.Equal(122_500, Add(filter, 110_000, busy: false), 6); // idle but not faster: still the link we knew
        Assert.Equal(0, Add(filter, 260_000, busy: false));
        Assert.Equal(0, filter.BytesPerSecond);
        Assert.Equal(2_000_000, Add(filter, 2_000_000, busy: true)); // busy again, at the new speed
    }
}
