namespace Pinhole.Relay.Web;

/// <summary>
/// Where <see cref="SessionTicketStore"/> keeps browser sessions when several relays serve one fleet (a shared
/// database): the cookie signing key is shared, and sessions are stored by the SHA-256 of their id, so a
/// login made on one relay is honoured by every other and the database never holds a usable cookie.
/// </summary>
public interface ISessionBackend
{
    /// <summary>The stored secret <paramref name="name"/>; stores <paramref name="candidate"/> first when there is none.</summary>
    byte[] GetOrCreateSecret(string name, byte[] candidate);

    /// <summary>Stores (or replaces) a session.</summary>
    void PutSession(byte[] idHash, string user, DateTimeOffset expires);

    /// <summary>A stored session's user and expiry, or null.</summary>
    (string User, DateTimeOffset Expires)? GetSession(byte[] idHash);

    /// <summary>Deletes a session.</summary>
    void RemoveSession(byte[] idHash);

    /// <summary>Deletes sessions that expired at or before <paramref name="now"/>; returns how many.</summary>
    int RemoveExpiredSessions(DateTimeOffset now);
}
