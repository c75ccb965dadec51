namespace Pinhole.EdgeHost.Web;

/// <summary>Timing of the wrong-password throttle.</summary>
public sealed class LoginThrottleOptions
{
    /// <summary>Wrong passwords allowed from one client before it is locked out.</summary>
    public int FreeAttempts { get; set; } = 3;

    /// <summary>Wrong passwords allowed for the page's account from all clients together before clients that never
    /// logged in are locked out too (spreading guesses over addresses gains nothing then).</summary>
    public int FreeAttemptsPerAccount { get; set; } = 10;

    /// <summary>The first lockout; each further wrong password doubles it.</summary>
    public TimeSpan FirstLockout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest lockout.</summary>
    public TimeSpan MaxLockout { get; set; } = TimeSpan.FromMinutes(15);
}

/// <summary>
/// Per-client wrong-password counting with growing lockouts: after <see cref="LoginThrottleOptions.FreeAttempts"/>
/// misses a client is refused (even with the right password) for FirstLockout, doubling per further miss.
/// A success clears the client. Bounded in memory.
/// </summary>
public sealed class LoginThrottle(LoginThrottleOptions options, TimeProvider time)
{
    private const int MaxClients = 4096;
    private readonly Dictionary<string, Entry> _clients = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>How long <paramref name="client"/> must still wait, or zero.</summary>
    public TimeSpan LockedFor(string client)
    {
        lock (_lock)
        {
            if (!_clients.TryGetValue(client, out var e)) return TimeSpan.Zero;
            var left = e.LockedUntil - time.GetUtcNow();
            return left > TimeSpan.Zero ? left : TimeSpan.Zero;
        }
    }

    /// <summary>Records a wrong password; returns the lockout it caused (zero while attempts are still free).</summary>
    public TimeSpan Failed(string client)
    {
        lock (_lock)
        {
            var now = time.GetUtcNow();
            if (!_clients.TryGetValue(client, out var e))
            {
                if (_clients.Count >= MaxClients) Prune(now);
                e = new Entry();
                _clients[client] = e;
            }
            e.Failures++;
            e.LastFailure = now;
            if (e.Failures < options.FreeAttempts) return TimeSpan.Zero;
            var exponent = Math.Min(e.Failures - options.FreeAttempts, 20);
            var lockout = TimeSpan.FromTicks(Math.Min(options.FirstLockout.Ticks * (1L << exponent), options.MaxLockout.Ticks));
            e.LockedUntil = now + lockout;
            return lockout;
        }
    }

    /// <summary>Forgets the client's misses.</summary>
    public void Succeeded(string client)
    {
        lock (_lock) _clients.Remove(client);
    }

    private void Prune(DateTimeOffset now)
    {
        // Forget clients idle past the longest lockout first; if that is not enough, the oldest ones.
        foreach (var key in _clients.Where(kv => now - kv.Value.LastFailure > options.MaxLockout).Select(kv => kv.Key).ToList())
            _clients.Remove(key);
        if (_clients.Count < MaxClients) return;
        foreach (var key in _clients.OrderBy(kv => kv.Value.LastFailure).Take(MaxClients / 4).Select(kv => kv.Key).ToList())
            _clients.Remove(key);
    }

    private sealed class Entry
    {
        public int Failures;
        public DateTimeOffset LastFailure;
        public DateTimeOffset LockedUntil;
    }
}
