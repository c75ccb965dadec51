using Pinhole.Testing.Time;
using Pinhole.Transport.Security;

namespace Pinhole.Transport.Tests.Security;

// The one login throttle of the relay (web form, RTSP, device and API tokens) and of the edge page.
public class LoginThrottleTests
{
    [Fact]
    public void Lockouts_grow_per_address_are_capped_and_a_success_clears_them()
    {
        var clock = new ManualTimeProvider();
        var throttle = new LoginThrottle(new LoginThrottleOptions
        {
            FreeFailures = 2, FreeFailuresPerAccount = 100, FirstLockout = TimeSpan.FromSeconds(5), MaxLockout = TimeSpan.FromSeconds(30),
        }, clock);

        Assert.Equal(TimeSpan.Zero, throttle.Failed("10.0.0.5", "page"));
        Assert.Equal(TimeSpan.Zero, throttle.Failed("10.0.0.5", "page"));
        Assert.Equal(TimeSpan.FromSeconds(5), throttle.Failed("10.0.0.5", "page"));
        Assert.Equal(TimeSpan.FromSeconds(5), throttle.RetryAfter("10.0.0.5", "page"));
        Assert.Equal(TimeSpan.Zero, throttle.RetryAfter("10.0.0.6", "page")); // another address is not affected

        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(TimeSpan.Zero, throttle.RetryAfter("10.0.0.5", "page"));
        Assert.Equal(TimeSpan.FromSeconds(10), throttle.Failed("10.0.0.5", "page"));
        Assert.Equal(TimeSpan.FromSeconds(20), throttle.Failed("10.0.0.5", "page"));
        Assert.Equal(TimeSpan.FromSeconds(30), throttle.Failed("10.0.0.5", "page"));
        Assert.Equal(TimeSpan.FromSeconds(30), throttle.Failed("10.0.0.5", "page"));

        clock.Advance(TimeSpan.FromSeconds(12));
        Assert.Equal(TimeSpan.FromSeconds(18), throttle.RetryAfter("10.0.0.5", "page"));

        throttle.Succeeded("10.0.0.5", "page");
        Assert.Equal(TimeSpan.Zero, throttle.RetryAfter("10.0.0.5", "page"));
        Assert.Equal(TimeSpan.Zero, throttle.Failed("10.0.0.5", "page"));
    }

    [Fact]
    public void Guesses_at_an_account_from_many_addresses_lock_strangers_out_but_not_an_address_it_logged_in_from()
    {
        var clock = new ManualTimeProvider();
        var throttle = new LoginThrottle(new LoginThrottleOptions { FreeFailures = 2, FreeFailuresPerAccount = 9, FirstLockout = TimeSpan.FromMinutes(1) }, clock);
        throttle.Succeeded("10.0.0.3", "page");

        var locked = 0;
        for (var i = 10; i < 30; i++)
        {
            if (throttle.RetryAfter($"10.0.1.{i}", "page") > TimeSpan.Zero) { locked++; continue; }
            throttle.Failed($"10.0.1.{i}", "page");
        }
        Assert.Equal(10, locked); // nine free, the tenth locks the account for the remaining ten
        Assert.Equal(TimeSpan.FromMinutes(1), throttle.RetryAfter("10.0.2.1", "page"));
        Assert.Equal(TimeSpan.Zero, throttle.RetryAfter("10.0.0.3", "page")); // the owner's address
        Assert.Equal(TimeSpan.Zero, throttle.RetryAfter("10.0.2.1", "other"));
    }

    [Fact]
    public void Per_address_counting_names_no_account()
    {
        var clock = new ManualTimeProvider();
        var throttle = LoginThrottle.PerAddress(clock, freeFailures: 1, firstLockout: TimeSpan.FromSeconds(1), maxLockout: TimeSpan.FromSeconds(4));
        Assert.Equal(TimeSpan.Zero, throttle.Failed("10.0.0.1"));
        Assert.Equal(TimeSpan.FromSeconds(1), throttle.Failed("10.0.0.1"));
        Assert.Equal(TimeSpan.Zero, throttle.RetryAfter("10.0.0.2"));
        Assert.Equal(TimeSpan.FromSeconds(2), throttle.Failed("10.0.0.1"));
        Assert.Equal(TimeSpan.FromSeconds(4), throttle.Failed("10.0.0.1"));
        Assert.Equal(TimeSpan.FromSeconds(4), throttle.Failed("10.0.0.1"));
        throttle.Succeeded("10.0.0.1");
        Assert.Equal(TimeSpan.Zero, throttle.RetryAfter("10.0.0.1"));
    }

    [Fact]
    public void Memory_stays_bounded_under_a_flood_of_addresses_within_the_hour()
    {
        var clock = new ManualTimeProvider();
        var throttle = LoginThrottle.PerAddress(clock, freeFailures: 1);
        for (var i = 0; i < 60_000; i++)
        {
            throttle.Failed($"client-{i}");
            clock.Advance(TimeSpan.FromMilliseconds(1));
        }
        // The newest address is still remembered (its second miss locks it out)...
        Assert.Equal(TimeSpan.FromSeconds(1), throttle.Failed("client-59999"));
        // ...and the table did not grow without bound (two counts per address: address and its own account).
        var field = typeof(LoginThrottle).GetField("_entries", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
        var count = ((System.Collections.ICollection)field.GetValue(throttle)!).Count;
        Assert.InRange(count, 1, LoginThrottle.MaxEntries + 1);
    }

    [Fact]
    public void Nonsense_options_are_refused_with_a_reason()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new LoginThrottle(new LoginThrottleOptions { FirstLockout = TimeSpan.Zero }, TimeProvider.System));
        Assert.Contains("lockouts", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new LoginThrottle(new LoginThrottleOptions { FreeFailures = -1 }, TimeProvider.System));
    }
}
