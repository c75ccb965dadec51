using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace Pinhole.Relay.Web;

/// <summary>
/// Slows password guessing: failed logins are counted per client address and per user name; after
/// <see cref="BrowserViewingOptions.FreeLoginFailures"/> failures each further one locks that key out
/// for a time that doubles, up to <see cref="BrowserViewingOptions.MaxLockout"/>. While locked, the
/// password is not even checked. A success clears the user's and the address's count.
/// </summary>
public sealed class LoginThrottle
{
    private const int MaxEntries = 50_000;
    private static readonly TimeSpan Forget = TimeSpan.FromHours(1);
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly BrowserViewingOptions _options;
    private readonly TimeProvider _time;

    /// <summary>Creates the throttle.</summary>
    public LoginThrottle(IOptions<BrowserViewingOptions> options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _time = time;
    }

    /// <summary>How long the client or the user must still wait; zero when a login may be tried now.</summary>
    public TimeSpan RetryAfter(string clientAddress, string user)
    {
        var now = _time.GetUtcNow();
        var wait = TimeSpan.Zero;
        foreach (var key in Keys(clientAddress, user))
            if (_entries.TryGetValue(key, out var e) && e.LockedUntil > now && e.LockedUntil - now > wait) wait = e.LockedUntil - now;
        return wait;
    }

    /// <summary>Counts a failed login; returns the lockout it caused (zero while still within the free failures).</summary>
    public TimeSpan Failed(string clientAddress, string user)
    {
        var now = _time.GetUtcNow();
        if (_entries.Count >= MaxEntries) Sweep(now);
        var lockout = TimeSpan.Zero;
        foreach (var key in Keys(clientAddress, user))
        {
            var e = _entries.AddOrUpdate(key,
                _ => Next(new Entry(0, now, DateTimeOffset.MinValue), now),
                (_, old) => Next(now - old.LastFailure > Forget ? new Entry(0, now, DateTimeOffset.MinValue) : old, now));
            if (e.LockedUntil - now > lockout) lockout = e.LockedUntil - now;
        }
        return lockout;
    }

    /// <summary>Clears the counts after a successful login.</summary>
    public void Succeeded(string clientAddress, string user)
    {
        foreach (var key in Keys(clientAddress, user)) _entries.TryRemove(key, out _);
    }

    private Entry Next(Entry e, DateTimeOffset now)
    {
        var failures = e.Failures + 1;
        var over = failures - _options.FreeLoginFailures;
        if (over <= 0) return new Entry(failures, now, DateTimeOffset.MinValue);
        var seconds = Math.Min(_options.FirstLockout.TotalSeconds * Math.Pow(2, Math.Min(over - 1, 30)), _options.MaxLockout.TotalSeconds);
        return new Entry(failures, now, now + TimeSpan.FromSeconds(seconds));
    }

    private void Sweep(DateTimeOffset now)
    {
        foreach (var (key, e) in _entries)
            if (now - e.LastFailure > Forget && e.LockedUntil <= now) _entries.TryRemove(key, out _);
    }

    private static string[] Keys(string clientAddress, string user) => ["ip:" + clientAddress, "user:" + user];

    private sealed record Entry(int Failures, DateTimeOffset LastFailure, DateTimeOffset LockedUntil);
}
