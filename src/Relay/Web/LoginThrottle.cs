using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace Pinhole.Relay.Web;

/// <summary>
/// Slows password guessing, shared by every login of the relay (web form, RTSP Basic and Digest): failed
/// logins are counted per client address and per user name; after
/// <see cref="BrowserViewingOptions.FreeLoginFailures"/> failures each further one locks that key out
/// for a time that doubles, up to <see cref="BrowserViewingOptions.MaxLockout"/>. While locked, the
/// password is not even checked (callers ask <see cref="RetryAfter"/> before hashing anything).
/// </summary>
/// <remarks>
/// A per-user lockout alone would let anyone keep a named user out by guessing now and then. So a client
/// the user already proved itself from (an address the user logged in from before, or a browser holding
/// that user's device cookie — OWASP's "device cookies") is not held by the per-user count; it has a
/// count of its own, so guessing through it is slowed all the same. The per-address count always applies.
/// </remarks>
public sealed class LoginThrottle : Pinhole.Streaming.Rtsp.IRtspLoginThrottle
{
    private const int MaxEntries = 50_000;
    private static readonly TimeSpan Forget = TimeSpan.FromHours(1);
    private static readonly TimeSpan RememberKnown = TimeSpan.FromDays(30);
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _known = new(StringComparer.Ordinal);
    private readonly BrowserViewingOptions _options;
    private readonly TimeProvider _time;

    /// <summary>Creates the throttle.</summary>
    public LoginThrottle(IOptions<BrowserViewingOptions> options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _time = time;
    }

    TimeSpan Pinhole.Streaming.Rtsp.IRtspLoginThrottle.RetryAfter(string clientAddress, string user) => RetryAfter(clientAddress, user);
    void Pinhole.Streaming.Rtsp.IRtspLoginThrottle.Failed(string clientAddress, string user) => Failed(clientAddress, user);
    void Pinhole.Streaming.Rtsp.IRtspLoginThrottle.Succeeded(string clientAddress, string user) => Succeeded(clientAddress, user);

    /// <summary>How long the client or the user must still wait; zero when a login may be tried now.</summary>
    /// <param name="clientAddress">The client's address.</param>
    /// <param name="user">The user name tried.</param>
    /// <param name="trustedDevice">The id of a valid device cookie of <paramref name="user"/>, if the client sent one.</param>
    public TimeSpan RetryAfter(string clientAddress, string user, string? trustedDevice = null)
    {
        var now = _time.GetUtcNow();
        var wait = TimeSpan.Zero;
        foreach (var key in Keys(clientAddress, user, trustedDevice, now))
            if (_entries.TryGetValue(key, out var e) && e.LockedUntil > now && e.LockedUntil - now > wait) wait = e.LockedUntil - now;
        return wait;
    }

    /// <summary>Counts a failed login; returns the lockout it caused (zero while still within the free failures).</summary>
    public TimeSpan Failed(string clientAddress, string user, string? trustedDevice = null)
    {
        var now = _time.GetUtcNow();
        if (_entries.Count >= MaxEntries) Sweep(now);
        var lockout = TimeSpan.Zero;
        foreach (var key in Keys(clientAddress, user, trustedDevice, now))
        {
            var e = _entries.AddOrUpdate(key,
                _ => Next(new Entry(0, now, DateTimeOffset.MinValue), now),
                (_, old) => Next(now - old.LastFailure > Forget ? new Entry(0, now, DateTimeOffset.MinValue) : old, now));
            if (e.LockedUntil - now > lockout) lockout = e.LockedUntil - now;
        }
        return lockout;
    }

    /// <summary>Clears the counts after a successful login, and remembers the address as one the user logs in from.</summary>
    public void Succeeded(string clientAddress, string user, string? trustedDevice = null)
    {
        var now = _time.GetUtcNow();
        foreach (var key in Keys(clientAddress, user, trustedDevice, now)) _entries.TryRemove(key, out _);
        _entries.TryRemove("user:" + user, out _);
        if (_known.Count >= MaxEntries)
        {
            foreach (var (k, at) in _known)
                if (now - at > RememberKnown) _known.TryRemove(k, out _);
            if (_known.Count >= MaxEntries) _known.Clear();
        }
        _known[KnownKey(clientAddress, user)] = now;
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

    private string[] Keys(string clientAddress, string user, string? trustedDevice, DateTimeOffset now)
    {
        var ip = "ip:" + clientAddress;
        if (trustedDevice is not null) return [ip, "device:" + user + "\n" + trustedDevice];
        if (_known.TryGetValue(KnownKey(clientAddress, user), out var at) && now - at <= RememberKnown)
            return [ip, "known:" + KnownKey(clientAddress, user)];
        return [ip, "user:" + user];
    }

    private static string KnownKey(string clientAddress, string user) => user + "\n" + clientAddress;

    private sealed record Entry(int Failures, DateTimeOffset LastFailure, DateTimeOffset LockedUntil);
}
