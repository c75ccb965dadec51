namespace Pinhole.Relay.Fleet;

/// <summary>
/// Everything the relay keeps about its fleet: stored devices and their token hashes, API tokens
/// (hashed), desired configuration revisions with the outcome each device reported, the devices'
/// last known state, and the audit log. SQLite in <c>dataDir</c> today (<see cref="SqliteFleetStore"/>);
/// the interface is the seam for PostgreSQL when several relays share one fleet.
/// Implementations are thread-safe. Secrets never reach a store, only their hashes.
/// </summary>
public interface IFleetStore : IDisposable
{
    /// <summary>A stored device row, or null.</summary>
    StoredDevice? GetDevice(string id);

    /// <summary>Every stored device row, ordered by id.</summary>
    IReadOnlyList<StoredDevice> ListDevices();

    /// <summary>Inserts a device; false when the id is taken.</summary>
    bool AddDevice(string id, byte[] salt, byte[] hash, DateTimeOffset now);

    /// <summary>Deletes a device row; false when there was none.</summary>
    bool RemoveDevice(string id);

    /// <summary>Sets (inserting when needed) a device's token hash, clears a revocation and bumps its generation.</summary>
    void SetDeviceToken(string id, byte[] salt, byte[] hash, DateTimeOffset now);

    /// <summary>Marks a device revoked (inserting a row with <paramref name="salt"/>/<paramref name="hash"/> when there is none) and bumps its generation.</summary>
    void RevokeDevice(string id, byte[] salt, byte[] hash, DateTimeOffset now);

    /// <summary>Stores an API token's hash under a unique name; false when the name is taken.</summary>
    bool AddApiToken(string name, byte[] hash, DateTimeOffset now);

    /// <summary>The name of the API token with this hash, or null.</summary>
    string? FindApiToken(byte[] hash);

    /// <summary>Deletes an API token; false when there was none.</summary>
    bool RemoveApiToken(string name);

    /// <summary>API token names and creation times.</summary>
    IReadOnlyList<(string Name, DateTimeOffset Created)> ListApiTokens();

    /// <summary>Stores a new desired configuration for a device and returns its revision (one more than the last).</summary>
    long AddConfigRevision(string device, string document, string author, DateTimeOffset now);

    /// <summary>The latest desired configuration of a device, or null.</summary>
    ConfigRevision? GetLatestConfig(string device);

    /// <summary>Revisions of a device, newest first.</summary>
    IReadOnlyList<ConfigRevision> ConfigHistory(string device, int limit);

    /// <summary>The latest revision of every device that has one.</summary>
    IReadOnlyDictionary<string, long> LatestRevisions();

    /// <summary>Records what the device reported for a revision.</summary>
    void SetReported(string device, long revision, string outcome, string detail, DateTimeOffset now);

    /// <summary>Records that a device connected or left (last seen, remote address, agent).</summary>
    void SetSeen(string device, DateTimeOffset at, string? remote, string? agent);

    /// <summary>Records the uplink link rate a device measured (bytes per second) and when the relay heard it.</summary>
    void SetLinkRate(string device, long bytesPerSecond, DateTimeOffset at);

    /// <summary>The device's last known state, or null.</summary>
    DeviceRecord? GetDeviceRecord(string device);

    /// <summary>Appends to the audit log.</summary>
    void Audit(AuditEntry entry);

    /// <summary>Audit entries, newest first.</summary>
    IReadOnlyList<AuditEntry> ReadAudit(int limit, string? target = null);
}

/// <summary>A device stored in the database (added at run time, or overriding a relay.json entry after a rotation or revocation).</summary>
public sealed record StoredDevice(string Id, byte[] Salt, byte[] Hash, DateTimeOffset Created, DateTimeOffset? Revoked, long Generation);

/// <summary>One desired configuration revision and what the device made of it.</summary>
public sealed record ConfigRevision(string Device, long Revision, string Document, string Author, DateTimeOffset Created,
    string? Outcome, string? Detail, DateTimeOffset? Reported);

/// <summary>What the relay remembers of a device between its connections.</summary>
public sealed record DeviceRecord(string Device, DateTimeOffset? LastSeen, string? Remote, string? Agent,
    long? ReportedRevision, string? ReportedOutcome, string? ReportedDetail, DateTimeOffset? ReportedAt)
{
    /// <summary>The uplink link rate the device last reported, in bytes per second (0: not measured yet), or null when it never did.</summary>
    public long? LinkBytesPerSecond { get; init; }

    /// <summary>When the relay received <see cref="LinkBytesPerSecond"/>.</summary>
    public DateTimeOffset? LinkRateAt { get; init; }
}

/// <summary>One audited change: who, when, from where, what, to what.</summary>
public sealed record AuditEntry(DateTimeOffset At, string Actor, string Source, string Action, string Target, string Detail)
{
    /// <summary>Row id (0 before it is stored).</summary>
    public long Id { get; init; }
}
