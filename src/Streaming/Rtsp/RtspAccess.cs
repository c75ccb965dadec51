namespace Pinhole.Streaming.Rtsp;

/// <summary>Who may use an <see cref="RtspServer"/>: the relay's viewers, or the users of an edge's LAN server.</summary>
public interface IRtspUserDirectory
{
    /// <summary>True when at least one user is configured (otherwise the server is open only when
    /// <see cref="RtspServerOptions.AnonymousViewing"/> says so).</summary>
    bool Any { get; }

    /// <summary>True when <paramref name="password"/> is <paramref name="user"/>'s (Basic authentication).</summary>
    bool Verify(string user, string password);

    /// <summary>The Digest HA1 of a user for a realm and algorithm (RFC 7616 §3.4.2), or null for an unknown user.</summary>
    string? DigestHa1(string user, string realm, string algorithm);
}

/// <summary>Slows password guessing down, per client address and per user (shared with a web login where there is one).</summary>
public interface IRtspLoginThrottle
{
    /// <summary>How long the client must wait before its next attempt is looked at; zero or less: now.</summary>
    TimeSpan RetryAfter(string clientAddress, string user);

    /// <summary>Counts a failed attempt.</summary>
    void Failed(string clientAddress, string user);

    /// <summary>Forgets the failures of a client and user that just authenticated.</summary>
    void Succeeded(string clientAddress, string user);
}

/// <summary>Where the server reports what it refused (a limit, a deadline, a policy), for counting and logging.</summary>
public interface IRtspRefusals
{
    /// <summary>One refusal: a short cause token, the client's address, a sentence for the log.</summary>
    void Refused(string cause, string? address, string detail);
}

/// <summary>An <see cref="IRtspUserDirectory"/> of fixed names and passwords (an edge's <c>rtspServer.users</c>).</summary>
public sealed class RtspUserList : IRtspUserDirectory
{
    private readonly Dictionary<string, string> _passwords;

    /// <summary>Creates the list; later duplicates of a name replace earlier ones.</summary>
    public RtspUserList(IEnumerable<(string Name, string Password)> users)
    {
        ArgumentNullException.ThrowIfNull(users);
        _passwords = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, password) in users) _passwords[name] = password;
    }

    /// <inheritdoc />
    public bool Any => _passwords.Count > 0;

    /// <inheritdoc />
    public bool Verify(string user, string password) =>
        _passwords.TryGetValue(user, out var expected)
        && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(expected), System.Text.Encoding.UTF8.GetBytes(password));

    /// <inheritdoc />
    public string? DigestHa1(string user, string realm, string algorithm) =>
        _passwords.TryGetValue(user, out var password)
            ? Pinhole.Transport.Rtsp.DigestMath.Ha1(
                algorithm.Equals("SHA-256", StringComparison.OrdinalIgnoreCase) ? Pinhole.Transport.Rtsp.DigestAlgorithm.Sha256 : Pinhole.Transport.Rtsp.DigestAlgorithm.Md5,
                user, realm, password)
            : null;
}
