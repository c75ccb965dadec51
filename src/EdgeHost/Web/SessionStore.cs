using System.Security.Cryptography;

namespace Pinhole.EdgeHost.Web;

/// <summary>A logged-in browser: the cookie value maps to it; <see cref="CsrfToken"/> must accompany every change.</summary>
public sealed record Session(string Id, string CsrfToken)
{
    /// <summary>Expires after this much idleness.</summary>
    public DateTimeOffset ExpiresAt { get; set; }
}

/// <summary>In-memory sessions (a reboot logs everyone out, which suits a device page). Bounded.</summary>
public sealed class SessionStore(TimeProvider time)
{
    /// <summary>The session cookie name.</summary>
    public const string CookieName = "pinhole_session";

    private const int MaxSessions = 64;
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromHours(8);
    private readonly Dictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>Creates a session with fresh random id and CSRF token.</summary>
    public Session Create()
    {
        var session = new Session(NewToken(), NewToken()) { ExpiresAt = time.GetUtcNow() + IdleTimeout };
        lock (_lock)
        {
            if (_sessions.Count >= MaxSessions)
            {
                foreach (var old in _sessions.Values.OrderBy(s => s.ExpiresAt).Take(_sessions.Count - MaxSessions + 1).ToList())
                    _sessions.Remove(old.Id);
            }
            _sessions[session.Id] = session;
        }
        return session;
    }

    /// <summary>The live session for a cookie value, sliding its expiry; null when unknown or expired.</summary>
    public Session? Find(string? id)
    {
        if (string.IsNullOrEmpty(id)) return null;
        lock (_lock)
        {
            if (!_sessions.TryGetValue(id, out var session)) return null;
            var now = time.GetUtcNow();
            if (session.ExpiresAt <= now)
            {
                _sessions.Remove(id);
                return null;
            }
            session.ExpiresAt = now + IdleTimeout;
            return session;
        }
    }

    /// <summary>Logs a session out.</summary>
    public void Remove(string id)
    {
        lock (_lock) _sessions.Remove(id);
    }

    /// <summary>Constant-time check of a submitted CSRF token.</summary>
    public static bool CsrfMatches(Session session, string? submitted) =>
        submitted is not null &&
        CryptographicOperations.FixedTimeEquals(System.Text.Encoding.ASCII.GetBytes(session.CsrfToken), System.Text.Encoding.ASCII.GetBytes(submitted));

    private static string NewToken() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))
        .TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
