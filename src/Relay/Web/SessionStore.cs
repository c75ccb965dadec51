using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Pinhole.Relay.Web;

/// <summary>
/// Logged-in browser sessions, in memory with an absolute expiry. The cookie holds a random session id
/// and an HMAC-SHA256 of it under a key from <see cref="BrowserViewingOptions.DataDir"/> (or random per
/// start), so a cookie that was not issued here is refused before any lookup. With an
/// <see cref="ISessionBackend"/> (a shared database) the key and the sessions live there instead, so every
/// relay of a fleet honours a login made on any of them.
/// </summary>
public sealed class SessionStore
{
    /// <summary>Name of the session cookie.</summary>
    public const string CookieName = "pinhole_session";

    private const int MaxSessions = 100_000;
    private readonly ConcurrentDictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private readonly byte[] _key;
    private readonly TimeProvider _time;
    private readonly TimeSpan _lifetime;
    private readonly ISessionBackend? _backend;
    private long _nextSweep;

    /// <summary>Creates the store, loading or creating the signing key (in the shared backend when there is one).</summary>
    public SessionStore(IOptions<BrowserViewingOptions> options, TimeProvider time, ISessionBackend? backend = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _time = time;
        _lifetime = options.Value.SessionLifetime;
        _backend = backend;
        _key = backend is not null
            ? backend.GetOrCreateSecret("browser-session-key", RandomNumberGenerator.GetBytes(32))
            : LoadKey(options.Value.DataDir);
    }

    /// <summary>Sessions now held in memory (always 0 with a shared backend).</summary>
    public int Count => _sessions.Count;

    /// <summary>Starts a session for a user; returns the cookie value and when it expires.</summary>
    public (string CookieValue, DateTimeOffset Expires) Create(string user)
    {
        Sweep();
        if (_sessions.Count >= MaxSessions) throw new InvalidOperationException("too many sessions");
        var id = Base64Url(RandomNumberGenerator.GetBytes(32));
        var expires = _time.GetUtcNow() + _lifetime;
        if (_backend is not null) _backend.PutSession(Hash(id), user, expires);
        else _sessions[id] = new Session(user, expires);
        return ($"{id}.{Sign(id)}", expires);
    }

    /// <summary>The user of a valid, unexpired session cookie; null otherwise.</summary>
    public string? Validate(string? cookieValue)
    {
        if (!TryGetId(cookieValue, out var id)) return null;
        if (_backend is not null)
        {
            var stored = _backend.GetSession(Hash(id));
            return stored is { } found && found.Expires > _time.GetUtcNow() ? found.User : null;
        }
        if (!_sessions.TryGetValue(id, out var s)) return null;
        if (s.Expires <= _time.GetUtcNow())
        {
            _sessions.TryRemove(id, out _);
            return null;
        }
        return s.User;
    }

    /// <summary>Name of the device cookie: proof that this browser logged in as a user before (see <see cref="LoginThrottle"/>).</summary>
    public const string DeviceCookieName = "pinhole_device";

    /// <summary>How long a device cookie is honoured.</summary>
    public static readonly TimeSpan DeviceCookieLifetime = TimeSpan.FromDays(90);

    /// <summary>A signed device cookie for <paramref name="user"/> (issued after a successful login).</summary>
    public (string CookieValue, DateTimeOffset Expires) CreateDeviceCookie(string user)
    {
        var expires = _time.GetUtcNow() + DeviceCookieLifetime;
        var body = $"{Base64Url(Encoding.UTF8.GetBytes(user))}.{Base64Url(RandomNumberGenerator.GetBytes(16))}.{expires.ToUnixTimeSeconds()}";
        return ($"{body}.{Sign("device:" + body)}", expires);
    }

    /// <summary>The device id of a valid, unexpired device cookie issued to <paramref name="user"/>; null otherwise.</summary>
    public string? DeviceOf(string? cookieValue, string user)
    {
        if (string.IsNullOrEmpty(cookieValue) || cookieValue.Length > 600) return null;
        var parts = cookieValue.Split('.');
        if (parts.Length != 4) return null;
        var body = $"{parts[0]}.{parts[1]}.{parts[2]}";
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Sign("device:" + body)), Encoding.ASCII.GetBytes(parts[3]))) return null;
        if (!long.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var expires)
            || expires <= _time.GetUtcNow().ToUnixTimeSeconds()) return null;
        return parts[0] == Base64Url(Encoding.UTF8.GetBytes(user)) ? parts[1] : null;
    }

    /// <summary>Ends the session of a cookie, if it is one.</summary>
    public void Remove(string? cookieValue)
    {
        if (!TryGetId(cookieValue, out var id)) return;
        if (_backend is not null) _backend.RemoveSession(Hash(id));
        else _sessions.TryRemove(id, out _);
    }

    private static byte[] Hash(string id) => SHA256.HashData(Encoding.ASCII.GetBytes(id));

    private bool TryGetId(string? cookieValue, out string id)
    {
        id = "";
        if (string.IsNullOrEmpty(cookieValue) || cookieValue.Length > 200) return false;
        var dot = cookieValue.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0) return false;
        id = cookieValue[..dot];
        var expected = Encoding.ASCII.GetBytes(Sign(id));
        var given = Encoding.ASCII.GetBytes(cookieValue[(dot + 1)..]);
        return CryptographicOperations.FixedTimeEquals(expected, given);
    }

    private string Sign(string id) => Base64Url(HMACSHA256.HashData(_key, Encoding.ASCII.GetBytes(id)));

    private void Sweep()
    {
        var now = _time.GetUtcNow();
        if (now.UtcTicks < Interlocked.Read(ref _nextSweep)) return;
        Interlocked.Exchange(ref _nextSweep, (now + TimeSpan.FromMinutes(1)).UtcTicks);
        if (_backend is not null)
        {
            _backend.RemoveExpiredSessions(now);
            return;
        }
        foreach (var (id, s) in _sessions)
            if (s.Expires <= now) _sessions.TryRemove(id, out _);
    }

    private static byte[] LoadKey(string? dataDir)
    {
        if (string.IsNullOrEmpty(dataDir)) return RandomNumberGenerator.GetBytes(32);
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, "browser-session.key");
        if (File.Exists(path))
        {
            var existing = File.ReadAllBytes(path);
            if (existing.Length >= 32) return existing;
        }
        var key = RandomNumberGenerator.GetBytes(32);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var f = new FileStream(path, options)) f.Write(key);
        return key;
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private sealed record Session(string User, DateTimeOffset Expires);
}
