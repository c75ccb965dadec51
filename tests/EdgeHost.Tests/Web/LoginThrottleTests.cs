using Pinhole.EdgeHost.Web;

namespace Pinhole.EdgeHost.Tests.Web;

public class LoginThrottleTests
{
    private sealed class ManualClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void Lockouts_grow_per_client_are_capped_and_a_success_clears_them()
    {
        var clock = new ManualClock();
        var throttle = new LoginThrottle(new LoginThrottleOptions { FreeAttempts = 3, FirstLockout = TimeSpan.FromSeconds(5), MaxLockout = TimeSpan.FromSeconds(30) }, clock);

        Assert.Equal(TimeSpan.Zero, throttle.Failed("10.0.0.5"));
        Assert.Equal(TimeSpan.Zero, throttle.Failed("10.0.0.5"));
        Assert.Equal(TimeSpan.FromSeconds(5), throttle.Failed("10.0.0.5"));
        Assert.Equal(TimeSpan.FromSeconds(5), throttle.LockedFor("10.0.0.5"));
        Assert.Equal(TimeSpan.Zero, throttle.LockedFor("10.0.0.6")); // another client is not affected

        clock.Now += TimeSpan.FromSeconds(5);
        Assert.Equal(TimeSpan.Zero, throttle.LockedFor("10.0.0.5"));
        Assert.Equal(TimeSpan.FromSeconds(10), throttle.Failed("10.0.0.5"));
        Assert.Equal(TimeSpan.FromSeconds(20), throttle.Failed("10.0.0.5"));
        Assert.Equal(TimeSpan.FromSeconds(30), throttle.Failed("10.0.0.5"));
        Assert.Equal(TimeSpan.FromSeconds(30), throttle.Failed("10.0.0.5"));

        clock.Now += TimeSpan.FromSeconds(12);
        Assert.Equal(TimeSpan.FromSeconds(18), throttle.LockedFor("10.0.0.5"));

        throttle.Succeeded("10.0.0.5");
        Assert.Equal(TimeSpan.Zero, throttle.LockedFor("10.0.0.5"));
        Assert.Equal(TimeSpan.Zero, throttle.Failed("10.0.0.5"));
    }

    [Fact]
    public void Memory_stays_bounded_under_many_clients()
    {
        var clock = new ManualClock();
        var throttle = new LoginThrottle(new LoginThrottleOptions(), clock);
        for (var i = 0; i < 20_000; i++)
        {
            throttle.Failed($"client-{i}");
            clock.Now += TimeSpan.FromMilliseconds(1);
        }
        // The newest client is still remembered (its third miss locks it out)...
        Assert.Equal(TimeSpan.Zero, throttle.Failed("client-19999"));
        Assert.Equal(TimeSpan.FromSeconds(5), throttle.Failed("client-19999"));
        // ...and the table did not grow without bound.
        var field = typeof(LoginThrottle).GetField("_clients", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
        var count = ((System.Collections.ICollection)field.GetValue(throttle)!).Count;
        Assert.InRange(count, 1, 4096);
    }
}
