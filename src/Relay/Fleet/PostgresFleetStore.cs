using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Npgsql;
using NpgsqlTypes;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Web;

namespace Pinhole.Relay.Fleet;

/// <summary>
/// The fleet store in PostgreSQL (relay.json <c>"database": "postgres://…"</c>), shared by every relay of a
/// fleet: devices and token hashes, API tokens, desired/reported configs, last known state, the audit log,
/// plus what only matters with several relays — browser sessions (<see cref="ISessionBackend"/>) and which
/// relay holds each device's uplink (<see cref="IDeviceOwnership"/>). Pooled connections (Npgsql), one per
/// call. The schema is migrated at open, numbered steps under a transaction-scoped advisory lock, so relays
/// starting at the same moment against an empty database run each step exactly once.
/// </summary>
public sealed class PostgresFleetStore : IFleetStore, ISessionBackend, IDeviceOwnership, IXmlRepository
{
    /// <summary>The advisory lock key the migrations hold (any relay's, whichever version).</summary>
    public const long MigrationLock = 7346002;

    /// <summary>The advisory lock held while the first data-protection key is created (<see cref="WithKeyRingLock"/>).</summary>
    public const long KeyRingLock = 7346004;

    // Append only: a step, once released, never changes; a relay runs the ones its database lacks.
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE devices (
            id TEXT PRIMARY KEY,
            salt BYTEA NOT NULL,
            token_hash BYTEA NOT NULL,
            created TIMESTAMPTZ NOT NULL,
            revoked TIMESTAMPTZ,
            generation BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE api_tokens (
            name TEXT PRIMARY KEY,
            token_hash BYTEA NOT NULL UNIQUE,
            created TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE config_revisions (
            device TEXT NOT NULL,
            revision BIGINT NOT NULL,
            document TEXT NOT NULL,
            author TEXT NOT NULL,
            created TIMESTAMPTZ NOT NULL,
            outcome TEXT,
            detail TEXT,
            reported TIMESTAMPTZ,
            PRIMARY KEY (device, revision)
        );
        CREATE TABLE device_state (
            device TEXT PRIMARY KEY,
            last_seen TIMESTAMPTZ,
            remote TEXT,
            agent TEXT,
            reported_revision BIGINT,
            reported_outcome TEXT,
            reported_detail TEXT,
            reported TIMESTAMPTZ,
            link_rate BIGINT,
            link_rate_at TIMESTAMPTZ
        );
        CREATE TABLE audit (
            id BIGSERIAL PRIMARY KEY,
            at TIMESTAMPTZ NOT NULL,
            actor TEXT NOT NULL,
            source TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        CREATE INDEX audit_target ON audit(target, id);
        """,
        """
        CREATE TABLE web_sessions (
            id_hash BYTEA PRIMARY KEY,
            username TEXT NOT NULL,
            expires TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX web_sessions_expires ON web_sessions(expires);
        CREATE TABLE relay_secrets (
            name TEXT PRIMARY KEY,
            value BYTEA NOT NULL
        );
        CREATE TABLE device_owners (
            device TEXT PRIMARY KEY,
            relay_id TEXT NOT NULL,
            public_url TEXT,
            public_rtsp TEXT,
            lease_until TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX device_owners_relay ON device_owners(relay_id);
        """,
        // Rollouts and each device's update state (Updates/UpdateStore.cs: the same SQL as SQLite, so the
        // time columns keep their SQLite names).
        """
        CREATE TABLE rollouts (
            id BIGSERIAL PRIMARY KEY,
            version TEXT NOT NULL,
            devices TEXT,
            percent INT NOT NULL,
            max_failure_percent INT NOT NULL,
            force INT NOT NULL,
            state TEXT NOT NULL,
            detail TEXT NOT NULL,
            created_utc TIMESTAMPTZ NOT NULL,
            author TEXT NOT NULL
        );
        CREATE TABLE device_updates (
            device TEXT PRIMARY KEY,
            running TEXT,
            version TEXT,
            state TEXT,
            percent INT NOT NULL DEFAULT 0,
            detail TEXT NOT NULL DEFAULT '',
            updated_utc TIMESTAMPTZ NOT NULL
        );
        """,
        // Release bundles, so `releases add` on one relay serves devices on every relay (Updates/SharedReleaseBundles.cs):
        // one row per version and architecture, the bytes in 1 MiB chunks; each relay caches them in its dataDir.
        """
        CREATE TABLE release_bundles (
            version TEXT NOT NULL,
            architecture TEXT NOT NULL,
            size BIGINT NOT NULL,
            sha256 BYTEA NOT NULL,
            added TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (version, architecture)
        );
        CREATE TABLE release_chunks (
            version TEXT NOT NULL,
            architecture TEXT NOT NULL,
            part INT NOT NULL,
            bytes BYTEA NOT NULL,
            PRIMARY KEY (version, architecture, part),
            FOREIGN KEY (version, architecture) REFERENCES release_bundles ON DELETE CASCADE
        );
        """,
        // The ASP.NET Core data-protection key ring (antiforgery tokens), shared so a token one relay issued is
        // accepted by every other (Web/RelaySignIn.cs): one row per key, its XML as data protection writes it.
        """
        CREATE TABLE data_protection_keys (
            name TEXT PRIMARY KEY,
            xml TEXT NOT NULL,
            added TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        """,
    ];

    private readonly NpgsqlDataSource _source;

    /// <summary>Connects (throws <see cref="NpgsqlException"/> with the server's reason when it cannot) and migrates the schema.</summary>
    public PostgresFleetStore(DatabaseUrl url)
    {
        ArgumentNullException.ThrowIfNull(url);
        _source = NpgsqlDataSource.Create(url.ToNpgsqlConnectionString());
        try
        {
            Migrate();
        }
        catch
        {
            _source.Dispose();
            throw;
        }
    }

    /// <summary>How many migration steps the database has run.</summary>
    public int SchemaVersion => Scalar<int>("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");

    private void Migrate()
    {
        using var db = _source.OpenConnection();
        using var tx = db.BeginTransaction();
        // The xact lock is released by COMMIT/ROLLBACK, so a relay that dies mid-migration frees it too.
        using (var lockCmd = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({MigrationLock})", db, tx)) lockCmd.ExecuteNonQuery();
        using (var create = new NpgsqlCommand("CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())", db, tx))
            create.ExecuteNonQuery();
        int current;
        using (var version = new NpgsqlCommand("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", db, tx)) current = (int)version.ExecuteScalar()!;
        for (var step = current; step < Migrations.Length; step++)
        {
            using var run = new NpgsqlCommand(Migrations[step], db, tx);
            run.ExecuteNonQuery();
            using var record = new NpgsqlCommand("INSERT INTO schema_migrations(version) VALUES (@v)", db, tx);
            record.Parameters.AddWithValue("v", step + 1);
            record.ExecuteNonQuery();
        }
        tx.Commit();
    }

    // ------------------------------------------------------------------ devices

    /// <inheritdoc />
    public StoredDevice? GetDevice(string id) =>
        Query("SELECT id, salt, token_hash, created, revoked, generation FROM devices WHERE id = @id", ReadDevice, ("id", id)) is [var d] ? d : null;

    /// <inheritdoc />
    public IReadOnlyList<StoredDevice> ListDevices() =>
        Query("SELECT id, salt, token_hash, created, revoked, generation FROM devices ORDER BY id COLLATE \"C\"", ReadDevice);

    /// <inheritdoc />
    public bool AddDevice(string id, byte[] salt, byte[] hash, DateTimeOffset now) =>
        Execute("INSERT INTO devices(id, salt, token_hash, created, generation) VALUES (@id, @salt, @hash, @now, 1) ON CONFLICT DO NOTHING",
            ("id", id), ("salt", salt), ("hash", hash), ("now", now)) > 0;

    /// <inheritdoc />
    public bool RemoveDevice(string id) => Execute("DELETE FROM devices WHERE id = @id", ("id", id)) > 0;

    /// <inheritdoc />
    public void SetDeviceToken(string id, byte[] salt, byte[] hash, DateTimeOffset now) => Execute("""
        INSERT INTO devices(id, salt, token_hash, created, generation) VALUES (@id, @salt, @hash, @now, 1)
        ON CONFLICT (id) DO UPDATE SET salt = excluded.salt, token_hash = excluded.token_hash, revoked = NULL, generation = devices.generation + 1
        """, ("id", id), ("salt", salt), ("hash", hash), ("now", now));

    /// <inheritdoc />
    public void RevokeDevice(string id, byte[] salt, byte[] hash, DateTimeOffset now) => Execute("""
        INSERT INTO devices(id, salt, token_hash, created, revoked, generation) VALUES (@id, @salt, @hash, @now, @now, 1)
        ON CONFLICT (id) DO UPDATE SET revoked = @now, generation = devices.generation + 1
        """, ("id", id), ("salt", salt), ("hash", hash), ("now", now));

    // ------------------------------------------------------------------ API tokens

    /// <inheritdoc />
    public bool AddApiToken(string name, byte[] hash, DateTimeOffset now) =>
        Execute("INSERT INTO api_tokens(name, token_hash, created) VALUES (@name, @hash, @now) ON CONFLICT DO NOTHING",
            ("name", name), ("hash", hash), ("now", now)) > 0;

    /// <inheritdoc />
    public string? FindApiToken(byte[] hash) =>
        Query("SELECT name FROM api_tokens WHERE token_hash = @hash", r => r.GetString(0), ("hash", hash)) is [var name] ? name : null;

    /// <inheritdoc />
    public bool RemoveApiToken(string name) => Execute("DELETE FROM api_tokens WHERE name = @name", ("name", name)) > 0;

    /// <inheritdoc />
    public IReadOnlyList<(string Name, DateTimeOffset Created)> ListApiTokens() =>
        Query("SELECT name, created FROM api_tokens ORDER BY name COLLATE \"C\"", r => (r.GetString(0), Time(r, 1)));

    // ------------------------------------------------------------------ configs

    /// <inheritdoc />
    public long AddConfigRevision(string device, string document, string author, DateTimeOffset now)
    {
        using var db = _source.OpenConnection();
        using var tx = db.BeginTransaction();
        // Two relays storing a revision for one device at once must not both pick the same number.
        using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(7346003, hashtext(@d))", db, tx))
        {
            lockCmd.Parameters.AddWithValue("d", device);
            lockCmd.ExecuteNonQuery();
        }
        using var insert = new NpgsqlCommand("""
            INSERT INTO config_revisions(device, revision, document, author, created)
            SELECT @d, COALESCE(MAX(revision), 0) + 1, @doc, @a, @now FROM config_revisions WHERE device = @d
            RETURNING revision
            """, db, tx);
        insert.Parameters.AddWithValue("d", device);
        insert.Parameters.AddWithValue("doc", document);
        insert.Parameters.AddWithValue("a", author);
        insert.Parameters.AddWithValue("now", now.UtcDateTime);
        var revision = (long)insert.ExecuteScalar()!;
        tx.Commit();
        return revision;
    }

    /// <inheritdoc />
    public ConfigRevision? GetLatestConfig(string device) => ConfigHistory(device, 1) is [var latest] ? latest : null;

    /// <inheritdoc />
    public IReadOnlyList<ConfigRevision> ConfigHistory(string device, int limit) => Query("""
        SELECT device, revision, document, author, created, outcome, detail, reported
        FROM config_revisions WHERE device = @d ORDER BY revision DESC LIMIT @limit
        """, r => new ConfigRevision(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetString(3), Time(r, 4),
            NullableString(r, 5), NullableString(r, 6), NullableTime(r, 7)), ("d", device), ("limit", limit));

    /// <inheritdoc />
    public IReadOnlyDictionary<string, long> LatestRevisions() =>
        Query("SELECT device, MAX(revision) FROM config_revisions GROUP BY device", r => (r.GetString(0), r.GetInt64(1)))
            .ToDictionary(x => x.Item1, x => x.Item2, StringComparer.Ordinal);

    /// <inheritdoc />
    public void SetReported(string device, long revision, string outcome, string detail, DateTimeOffset now)
    {
        using var db = _source.OpenConnection();
        using var tx = db.BeginTransaction();
        using (var rev = new NpgsqlCommand("UPDATE config_revisions SET outcome = @o, detail = @detail, reported = @now WHERE device = @d AND revision = @r", db, tx))
        {
            AddParameters(rev, ("o", outcome), ("detail", detail), ("now", now), ("d", device), ("r", revision));
            rev.ExecuteNonQuery();
        }
        using (var state = new NpgsqlCommand("""
            INSERT INTO device_state(device, reported_revision, reported_outcome, reported_detail, reported) VALUES (@d, @r, @o, @detail, @now)
            ON CONFLICT (device) DO UPDATE SET reported_revision = @r, reported_outcome = @o, reported_detail = @detail, reported = @now
            """, db, tx))
        {
            AddParameters(state, ("o", outcome), ("detail", detail), ("now", now), ("d", device), ("r", revision));
            state.ExecuteNonQuery();
        }
        tx.Commit();
    }

    // ------------------------------------------------------------------ device state

    /// <inheritdoc />
    public void SetSeen(string device, DateTimeOffset at, string? remote, string? agent) => Execute("""
        INSERT INTO device_state(device, last_seen, remote, agent) VALUES (@d, @at, @remote, @agent)
        ON CONFLICT (device) DO UPDATE SET last_seen = @at, remote = COALESCE(@remote, device_state.remote), agent = COALESCE(@agent, device_state.agent)
        """, ("d", device), ("at", at), ("remote", Text(remote)), ("agent", Text(agent)));

    /// <inheritdoc />
    public void SetLinkRate(string device, long bytesPerSecond, DateTimeOffset at) => Execute("""
        INSERT INTO device_state(device, link_rate, link_rate_at) VALUES (@d, @rate, @at)
        ON CONFLICT (device) DO UPDATE SET link_rate = @rate, link_rate_at = @at
        """, ("d", device), ("rate", bytesPerSecond), ("at", at));

    /// <inheritdoc />
    public DeviceRecord? GetDeviceRecord(string device) => Query("""
        SELECT device, last_seen, remote, agent, reported_revision, reported_outcome, reported_detail, reported, link_rate, link_rate_at
        FROM device_state WHERE device = @d
        """, r => new DeviceRecord(r.GetString(0), NullableTime(r, 1), NullableString(r, 2), NullableString(r, 3),
            r.IsDBNull(4) ? null : r.GetInt64(4), NullableString(r, 5), NullableString(r, 6), NullableTime(r, 7))
        {
            LinkBytesPerSecond = r.IsDBNull(8) ? null : r.GetInt64(8),
            LinkRateAt = NullableTime(r, 9),
        }, ("d", device)) is [var record] ? record : null;

    // ------------------------------------------------------------------ audit

    /// <inheritdoc />
    public void Audit(AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        Execute("INSERT INTO audit(at, actor, source, action, target, detail) VALUES (@at, @actor, @source, @action, @target, @detail)",
            ("at", entry.At), ("actor", entry.Actor), ("source", entry.Source), ("action", entry.Action), ("target", entry.Target), ("detail", entry.Detail));
    }

    /// <inheritdoc />
    public IReadOnlyList<AuditEntry> ReadAudit(int limit, string? target = null) => target is null
        ? Query("SELECT id, at, actor, source, action, target, detail FROM audit ORDER BY id DESC LIMIT @limit", ReadAuditRow, ("limit", limit))
        : Query("SELECT id, at, actor, source, action, target, detail FROM audit WHERE target = @t ORDER BY id DESC LIMIT @limit", ReadAuditRow,
            ("limit", limit), ("t", target));

    // ------------------------------------------------------------------ browser sessions (ISessionBackend)

    /// <inheritdoc />
    public byte[] GetOrCreateSecret(string name, byte[] candidate)
    {
        // The first relay to ask stores its candidate; everyone (that relay included) gets the stored value.
        Execute("INSERT INTO relay_secrets(name, value) VALUES (@n, @v) ON CONFLICT DO NOTHING", ("n", name), ("v", candidate));
        return Query("SELECT value FROM relay_secrets WHERE name = @n", r => (byte[])r[0], ("n", name))[0];
    }

    /// <inheritdoc />
    public void PutSession(byte[] idHash, string user, DateTimeOffset expires) =>
        Execute("INSERT INTO web_sessions(id_hash, username, expires) VALUES (@h, @u, @e) ON CONFLICT (id_hash) DO UPDATE SET username = @u, expires = @e",
            ("h", idHash), ("u", user), ("e", expires));

    /// <inheritdoc />
    public (string User, DateTimeOffset Expires)? GetSession(byte[] idHash) =>
        Query("SELECT username, expires FROM web_sessions WHERE id_hash = @h", r => (r.GetString(0), Time(r, 1)), ("h", idHash)) is [var s] ? s : null;

    /// <inheritdoc />
    public void RemoveSession(byte[] idHash) => Execute("DELETE FROM web_sessions WHERE id_hash = @h", ("h", idHash));

    /// <inheritdoc />
    public int RemoveExpiredSessions(DateTimeOffset now) => Execute("DELETE FROM web_sessions WHERE expires <= @now", ("now", now));

    // ------------------------------------------------------------------ data-protection key ring (IXmlRepository)

    /// <inheritdoc />
    public IReadOnlyCollection<XElement> GetAllElements() =>
        Query("SELECT xml FROM data_protection_keys ORDER BY added, name", r => XElement.Parse(r.GetString(0)));

    /// <inheritdoc />
    public void StoreElement(XElement element, string friendlyName)
    {
        ArgumentNullException.ThrowIfNull(element);
        // friendlyName is the key's id (key-GUID); a name already stored is the same key, written again.
        Execute("INSERT INTO data_protection_keys(name, xml) VALUES (@n, @x) ON CONFLICT (name) DO NOTHING",
            ("n", string.IsNullOrEmpty(friendlyName) ? Guid.NewGuid().ToString() : friendlyName), ("x", element.ToString(SaveOptions.DisableFormatting)));
    }

    /// <summary>
    /// Runs <paramref name="action"/> while holding a database-wide lock, so relays starting together create
    /// the first data-protection key once rather than one each (each would then refuse the others' tokens until
    /// its key ring is refreshed).
    /// </summary>
    public void WithKeyRingLock(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        using var db = _source.OpenConnection();
        using var tx = db.BeginTransaction();
        using (var lockCmd = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({KeyRingLock})", db, tx)) lockCmd.ExecuteNonQuery();
        action();
        tx.Commit();
    }

    // ------------------------------------------------------------------ device ownership (IDeviceOwnership)

    /// <inheritdoc />
    public void Claim(string device, RelayIdentity relay, DateTimeOffset leaseUntil)
    {
        ArgumentNullException.ThrowIfNull(relay);
        // The newest uplink wins: a device that reconnected through the balancer to another relay moves there.
        Execute("""
            INSERT INTO device_owners(device, relay_id, public_url, public_rtsp, lease_until) VALUES (@d, @r, @u, @p, @l)
            ON CONFLICT (device) DO UPDATE SET relay_id = @r, public_url = @u, public_rtsp = @p, lease_until = @l
            """, ("d", device), ("r", relay.Id), ("u", Text(relay.PublicUrl)), ("p", Text(relay.PublicRtsp)), ("l", leaseUntil));
    }

    /// <inheritdoc />
    public int Renew(string relayId, IReadOnlyCollection<string> devices, DateTimeOffset leaseUntil)
    {
        ArgumentNullException.ThrowIfNull(devices);
        if (devices.Count == 0) return 0;
        return Execute("UPDATE device_owners SET lease_until = @l WHERE relay_id = @r AND device = ANY(@d)",
            ("l", leaseUntil), ("r", relayId), ("d", devices.ToArray()));
    }

    /// <inheritdoc />
    public void Release(string device, string relayId) =>
        Execute("DELETE FROM device_owners WHERE device = @d AND relay_id = @r", ("d", device), ("r", relayId));

    /// <inheritdoc />
    public DeviceOwner? GetOwner(string device, DateTimeOffset now) => Query("""
        SELECT device, relay_id, public_url, public_rtsp, lease_until FROM device_owners WHERE device = @d AND lease_until > @now
        """, r => new DeviceOwner(r.GetString(0), r.GetString(1), NullableString(r, 2), NullableString(r, 3), Time(r, 4)),
        ("d", device), ("now", now)) is [var owner] ? owner : null;

    /// <inheritdoc />
    public IReadOnlyList<DeviceOwner> ListOwners(DateTimeOffset now) => Query("""
        SELECT device, relay_id, public_url, public_rtsp, lease_until FROM device_owners WHERE lease_until > @now
        """, r => new DeviceOwner(r.GetString(0), r.GetString(1), NullableString(r, 2), NullableString(r, 3), Time(r, 4)), ("now", now));

    /// <inheritdoc />
    public void Dispose() => _source.Dispose();

    // ------------------------------------------------------------------ plumbing

    private int Execute(string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = _source.CreateCommand(sql);
        AddParameters(cmd, parameters);
        return cmd.ExecuteNonQuery();
    }

    private List<T> Query<T>(string sql, Func<NpgsqlDataReader, T> read, params (string Name, object? Value)[] parameters)
    {
        using var cmd = _source.CreateCommand(sql);
        AddParameters(cmd, parameters);
        using var r = cmd.ExecuteReader();
        var list = new List<T>();
        while (r.Read()) list.Add(read(r));
        return list;
    }

    private T Scalar<T>(string sql)
    {
        using var cmd = _source.CreateCommand(sql);
        return (T)Convert.ChangeType(cmd.ExecuteScalar()!, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void AddParameters(NpgsqlCommand cmd, params (string Name, object? Value)[] parameters)
    {
        foreach (var (name, value) in parameters)
        {
            switch (value)
            {
                // timestamptz takes UTC DateTime; a DateTimeOffset with an offset would be refused.
                case DateTimeOffset t: cmd.Parameters.Add(new NpgsqlParameter(name, NpgsqlDbType.TimestampTz) { Value = t.UtcDateTime }); break;
                case DBNull: cmd.Parameters.Add(new NpgsqlParameter(name, NpgsqlDbType.Text) { Value = DBNull.Value }); break;
                default: cmd.Parameters.AddWithValue(name, value ?? DBNull.Value); break;
            }
        }
    }

    private static object Text(string? s) => (object?)s ?? DBNull.Value;

    private static StoredDevice ReadDevice(NpgsqlDataReader r) =>
        new(r.GetString(0), (byte[])r[1], (byte[])r[2], Time(r, 3), NullableTime(r, 4), r.GetInt64(5));

    private static AuditEntry ReadAuditRow(NpgsqlDataReader r) =>
        new(Time(r, 1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6)) { Id = r.GetInt64(0) };

    private static DateTimeOffset Time(NpgsqlDataReader r, int i) => new(DateTime.SpecifyKind(r.GetDateTime(i), DateTimeKind.Utc));

    private static DateTimeOffset? NullableTime(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : Time(r, i);

    private static string? NullableString(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
}
