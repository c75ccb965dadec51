using System.Security.Cryptography;
using System.Text;
using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Viewers;

/// <summary>
/// The people allowed to watch, from relay.json <c>viewers</c>. Basic and form logins are checked
/// against a PBKDF2 hash (constant time, deliberately slow). The password itself also stays in
/// memory, as it is in relay.json: RTSP Digest (RFC 2617/7616) needs H(A1) = H(user:realm:password)
/// for each realm and algorithm a client asks for, derived on first use and cached.
/// </summary>
public sealed class ViewerDirectory : Pinhole.Streaming.Rtsp.IRtspUserDirectory
{
    private const int Iterations = 100_000;
    private readonly Dictionary<string, Entry> _viewers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _admins = new(StringComparer.Ordinal);
    private readonly HashSet<string> _publishers = new(StringComparer.Ordinal);

    /// <summary>Builds the directory from config.</summary>
    public ViewerDirectory(IEnumerable<ViewerConfig> viewers)
    {
        foreach (var v in viewers)
        {
            var salt = RandomNumberGenerator.GetBytes(16);
            var hash = Rfc2898DeriveBytes.Pbkdf2(v.Password, salt, Iterations, HashAlgorithmName.SHA256, 32);
            // Digest needs the password to derive H(A1) per (realm, algorithm); see the class remarks.
            _viewers[v.User] = new Entry(salt, hash, new Dictionary<(string, string), string>(), v.Password);
            if (v.Role == ViewerRoles.Admin) _admins.Add(v.User);
            if (v.Role == ViewerRoles.Admin || v.Publish) _publishers.Add(v.User);
        }
    }

    /// <summary>True when <paramref name="user"/> has <c>"role": "admin"</c>.</summary>
    public bool IsAdmin(string user) => _admins.Contains(user);

    /// <summary>True when <paramref name="user"/> may publish streams to devices: admins, and viewers with <c>"publish": true</c>.</summary>
    public bool MayPublish(string user) => _publishers.Contains(user);

    /// <summary>True when there is at least one viewer.</summary>
    public bool Any => _viewers.Count > 0;

    /// <summary>How long verified credentials are remembered, so a client that reconnects does not pay PBKDF2 again.</summary>
    public static readonly TimeSpan VerifiedLifetime = TimeSpan.FromMinutes(5);

    private const int MaxVerified = 4096;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _verified = new(StringComparer.Ordinal);
    private readonly byte[] _verifiedKey = RandomNumberGenerator.GetBytes(32);
    private readonly TimeProvider _time = TimeProvider.System;

    /// <summary>
    /// Checks a user name and password (Basic auth, login form). Constant time in the password. Callers
    /// ask the login throttle first: this is where the deliberately slow hashing happens, except for
    /// credentials verified within <see cref="VerifiedLifetime"/> (kept only as a keyed hash).
    /// </summary>
    public bool Verify(string user, string password)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(password);
        var key = Convert.ToHexString(HMACSHA256.HashData(_verifiedKey, Encoding.UTF8.GetBytes(user + "\0" + password)));
        if (_verified.TryGetValue(key, out var at) && _time.GetElapsedTime(at) < VerifiedLifetime) return true;
        if (!VerifySlowly(user, password)) return false;
        if (_verified.Count >= MaxVerified) _verified.Clear();
        _verified[key] = _time.GetTimestamp();
        return true;
    }

    private bool VerifySlowly(string user, string password)
    {
        if (!_viewers.TryGetValue(user, out var e))
        {
            // Spend the same time for unknown users so they cannot be told apart from bad passwords.
            Rfc2898DeriveBytes.Pbkdf2(password, new byte[16], Iterations, HashAlgorithmName.SHA256, 32);
            return false;
        }
        var candidate = Rfc2898DeriveBytes.Pbkdf2(password, e.Salt, Iterations, HashAlgorithmName.SHA256, 32);
        return CryptographicOperations.FixedTimeEquals(candidate, e.Hash);
    }

    /// <summary>
    /// H(A1) for HTTP Digest: lower-case hex of H(user ":" realm ":" password), with
    /// <paramref name="algorithm"/> "MD5" or "SHA-256". Null for an unknown user.
    /// </summary>
    public string? DigestHa1(string user, string realm, string algorithm)
    {
        if (!_viewers.TryGetValue(user, out var e)) return null;
        lock (e.Ha1)
        {
            if (!e.Ha1.TryGetValue((realm, algorithm), out var ha1))
            {
                var input = Encoding.UTF8.GetBytes($"{user}:{realm}:{e.PasswordForDigest}");
                var digest = algorithm.Equals("SHA-256", StringComparison.OrdinalIgnoreCase) ? SHA256.HashData(input) : MD5.HashData(input);
                e.Ha1[(realm, algorithm)] = ha1 = Convert.ToHexStringLower(digest);
            }
            return ha1;
        }
    }

    // The plaintext is needed to derive H(A1) for a realm chosen at run time; it never leaves this class.
    private sealed record Entry(byte[] Salt, byte[] Hash, Dictionary<(string Realm, string Algorithm), string> Ha1, string PasswordForDigest);
}
