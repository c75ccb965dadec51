using System.Collections.Concurrent;

namespace Pinhole.Transport.Security;

/// <summary>Timing of the <see cref="LoginThrottle"/>.</summary>
public sealed class LoginThrottleOptions
{
    /// <summary>Failed logins allowed from one client address before lockouts start.</summary>
    public int FreeFailures { get; set; } = 3;

    /// <summary>Failed logins allowed for one account, from addresses it never logged in from, before those
    /// addresses are locked out of it too (so spreading guesses over many addresses gains nothing).</summary>
    public int FreeFailuresPerAccount { get; set; } = 3;

    /// <summary>The first lockout; each further failure doubles it.</summary>
    public TimeSpan FirstLockout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest lockout.</summary>
    public TimeSpan MaxLockout { get; set; } = TimeSpan.FromMinutes(15);
}

/// <summary>
/// Slows password guessing, for every login of an app (the relay's web form, RTSP Basic and Digest, device
/// and API tokens; the edge page's password). Failures are counted per client address and per account;
/// after the free failures each further one locks that key out for a time that doubles, up to
/// <see cref="LoginThrottleOptions.MaxLockout"/>. While locked, callers do not even check the password
/// (they ask <see cref="RetryAfter(string, string, string?)"/> before hashing anything). Bounded in memory.
/// </summary>
/// <remarks>
/// A per-account lockout alone would let anyone keep a named user out by guessing now and then. So a client
/// the account already proved itself from (an address it logged in from before, or a browser holding its
/// device cookie — OWASP's "device cookies") is not held by the per-account count; it has a count of its
/// own, so guessing through it is slowed all the same. The per-address count always applies.
/// </remarks>
public sealed class LoginThrottle
{
    /// <summary>Most counts kept (per address, per account); beyond it the oldest are forgotten.</summary>
    internal const int MaxEntries = 50_000;
    private static readonly TimeSpan Forget = TimeSpan.FromHours(1);
    private static readonly TimeSpan RememberKnown = TimeSpan.FromDays(30);
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _known = new(StringComparer.Ordinal);
    private readonly LoginThrottleOptions _options;
    private readonly TimeProvider _time;

    /// <summary>Creates the throttle.</summary>
    public LoginThrottle(LoginThrottleOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        if (options.FreeFailures < 0 || options.FreeFailuresPerAccount < 0)
            throw new ArgumentOutOfRangeException(nameof(options), "free failures must not be negative");
        if (options.FirstLockout <= TimeSpan.Zero || options.MaxLockout < options.FirstLockout)
            throw new ArgumentOutOfRangeException(nameof(options), "lockouts must be positive, the first no longer than the longest");
        _options = options;
        _time = time;
    }

    /// <summary>A throttle that counts per address only (<paramref name="freeFailures"/> misses, then lockouts from
    /// <paramref name="firstLockout"/> doubling to <paramref name="maxLockout"/>): for secrets that name no account a
    /// person could be locked out of (device tokens, API tokens). Use the methods that take no account.</summary>
    public static LoginThrottle PerAddress(TimeProvider time, int freeFailures = 5, TimeSpan? firstLockout = null, TimeSpan? maxLockout = null) =>
        new(new LoginThrottleOptions
        {
            FreeFailures = freeFailures,
            FreeFailuresPerAccount = freeFailures,
            FirstLockout = firstLockout ?? TimeSpan.FromSeconds(1),
            MaxLockout = maxLockout ?? TimeSpan.FromMinutes(5),
        }, time);

    /// <summary>How long the client or the account must still wait; zero when a login may be tried now.</summary>
    /// <param name="clientAddress">The client's address.</param>
    /// <param name="account">The account (user name) tried.</param>
    /// <param name="trustedDevice">The id of a valid device cookie of <paramref name="account"/>, if the client sent one.</param>
    public TimeSpan RetryAfter(string clientAddress, string account, string? trustedDevice = null)
    {
        var now = _time.GetUtcNow();
        var wait = TimeSpan.Zero;
        foreach (var (key, _) in Keys(clientAddress, account, trustedDevice, now))
            if (_entries.TryGetValue(key, out var e) && e.LockedUntil > now && e.LockedUntil - now > wait) wait = e.LockedUntil - now;
        return wait;
    }

    /// <summary>How long <paramref name="clientAddress"/> must still wait (per-address counting only).</summary>
    public TimeSpan RetryAfter(string clientAddress) => RetryAfter(clientAddress, AddressAccount(clientAddress));

    /// <summary>Counts a failed login; returns the lockout it caused (zero while still within the free failures).</summary>
    public TimeSpan Failed(string clientAddress, string account, string? trustedDevice = null)
    {
        var now = _time.GetUtcNow();
        if (_entries.Count >= MaxEntries) Sweep(now);
        var lockout = TimeSpan.Zero;
        foreach (var (key, free) in Keys(clientAddress, account, trustedDevice, now))
        {
            var e = _entries.AddOrUpdate(key,
                _ => Next(new Entry(0, now, DateTimeOffset.MinValue), free, now),
                (_, old) => Next(now - old.LastFailure > Forget ? new Entry(0, now, DateTimeOffset.MinValue) : old, free, now));
            if (e.LockedUntil - now > lockout) lockout = e.LockedUntil - now;
        }
        return lockout;
    }

    /// <summary>Counts a failure of <paramref name="clientAddress"/> (per-address counting only); returns the lockout it caused.</summary>
    public TimeSpan Failed(string clientAddress) => Failed(clientAddress, AddressAccount(clientAddress));

    /// <summary>Clears the counts after a successful login, and remembers the address as one the account logs in from.</summary>
    public void Succeeded(string clientAddress, string account, string? trustedDevice = null)
    {
        var now = _time.GetUtcNow();
        foreach (var (key, _) in Keys(clientAddress, account, trustedDevice, now)) _entries.TryRemove(key, out _);
        _entries.TryRemove("account:" + account, out _);
        if (_known.Count >= MaxEntries)
        {
            foreach (var (k, at) in _known)
                if (now - at > RememberKnown) _known.TryRemove(k, out _);
            if (_known.Count >= MaxEntries) _known.Clear();
        }
        _known[KnownKey(clientAddress, account)] = now;
    }

    /// <summary>Forgets the failures of <paramref name="clientAddress"/> (per-address counting only).</summary>
    public void Succeeded(string clientAddress) => Succeeded(clientAddress, AddressAccount(clientAddress));

    private Entry Next(Entry e, int free, DateTimeOffset now)
    {
        var failures = e.Failures + 1;
        var over = failures - free;
        if (over <= 0) return new Entry(failures, now, DateTimeOffset.MinValue);
        var seconds = Math.Min(_options.FirstLockout.TotalSeconds * Math.Pow(2, Math.Min(over - 1, 30)), _options.MaxLockout.TotalSeconds);
        return new Entry(failures, now, now + TimeSpan.FromSeconds(seconds));
    }

    private void Sweep(DateTimeOffset now)
    {
        foreach (var (key, e) in _entries)
            if (now - e.LastFailure > Forget && e.LockedUntil <= now) _entries.TryRemove(key, out _);
        if (_entries.Count < MaxEntries) return;
        // Still full (a flood from many addresses within the hour): forget the quarter that failed longest ago,
        // so memory stays bounded; the newest failures, the ones that matter now, are kept.
        foreach (var (key, _) in _entries.OrderBy(kv => kv.Value.LastFailure).Take(MaxEntries / 4).ToList())
            _entries.TryRemove(key, out _);
    }

    // The keys a login is counted under, each with its free failures: always the address; then the account,
    // unless the client proved itself for that account before (then a count of that client and account).
    private (string Key, int Free)[] Keys(string clientAddress, string account, string? trustedDevice, DateTimeOffset now)
    {
        var ip = ("ip:" + clientAddress, _options.FreeFailures);
        if (trustedDevice is not null) return [ip, ("device:" + account + "\n" + trustedDevice, _options.FreeFailuresPerAccount)];
        if (_known.TryGetValue(KnownKey(clientAddress, account), out var at) && now - at <= RememberKnown)
            return [ip, ("known:" + KnownKey(clientAddress, account), _options.FreeFailuresPerAccount)];
        return [ip, ("account:" + account, _options.FreeFailuresPerAccount)];
    }

    private static string KnownKey(string clientAddress, string account) => account + "\n" + clientAddress;

    // Per-address counting: the address is its own account (a name no user can have).
    private static string AddressAccount(string clientAddress) => "\u0001address " + clientAddress;

    private sealed record Entry(int Failures, DateTimeOffset LastFailure, DateTimeOffset LockedUntil);
}
