using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Pinhole.Relay.Fleet;

/// <summary>
/// The fleet store in one SQLite file (<c>dataDir/relay.db</c>, WAL mode, so the CLI can write while
/// the relay runs). One connection, serialized by a lock: every statement is small and indexed, and
/// a relay's fleet API is not a hot path. The schema grows with <c>CREATE … IF NOT EXISTS</c> and
/// added columns, so a database from an older relay opens unchanged.
/// </summary>
public sealed class SqliteFleetStore : IFleetStore
{
    private readonly SqliteConnection _db;
    private readonly Lock _lock = new();

    /// <summary>Opens (creating when needed) <c>relay.db</c> in <paramref name="dataDir"/>.</summary>
    public SqliteFleetStore(string dataDir)
    {
        _db = RelayDatabase.Open(dataDir);
        Execute("""
            CREATE TABLE IF NOT EXISTS devices (
                id TEXT PRIMARY KEY NOT NULL,
                salt BLOB NOT NULL,
                token_hash BLOB NOT NULL,
                created_utc TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS api_tokens (
                name TEXT PRIMARY KEY NOT NULL,
                token_hash BLOB NOT NULL UNIQUE,
                created_utc TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS config_revisions (
                device TEXT NOT NULL,
                revision INTEGER NOT NULL,
                document TEXT NOT NULL,
                author TEXT NOT NULL,
                created_utc TEXT NOT NULL,
                outcome TEXT,
                detail TEXT,
                reported_utc TEXT,
                PRIMARY KEY (device, revision)
            );
            CREATE TABLE IF NOT EXISTS device_state (
                device TEXT PRIMARY KEY NOT NULL,
                last_seen_utc TEXT,
                remote TEXT,
                agent TEXT,
                reported_revision INTEGER,
                reported_outcome TEXT,
                reported_detail TEXT,
                reported_utc TEXT
            );
            CREATE TABLE IF NOT EXISTS audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at_utc TEXT NOT NULL,
                actor TEXT NOT NULL,
                source TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL,
                detail TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS audit_target ON audit(target, id);
            """);
        // Columns added after the first release of the devices table.
        var columns = new HashSet<string>(StringComparer.Ordinal);
        using (var cmd = Command("PRAGMA table_info(devices)"))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) columns.Add(r.GetString(1));
        if (!columns.Contains("revoked_utc")) Execute("ALTER TABLE devices ADD COLUMN revoked_utc TEXT");
        if (!columns.Contains("generation")) Execute("ALTER TABLE devices ADD COLUMN generation INTEGER NOT NULL DEFAULT 0");
        columns.Clear();
        using (var cmd = Command("PRAGMA table_info(device_state)"))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) columns.Add(r.GetString(1));
        if (!columns.Contains("link_rate")) Execute("ALTER TABLE device_state ADD COLUMN link_rate INTEGER");
        if (!columns.Contains("link_rate_utc")) Execute("ALTER TABLE device_state ADD COLUMN link_rate_utc TEXT");
    }

    /// <inheritdoc />
    public StoredDevice? GetDevice(string id)
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT id, salt, token_hash, created_utc, revoked_utc, generation FROM devices WHERE id = $id", ("$id", id));
            using var r = cmd.ExecuteReader();
            return r.Read() ? ReadDevice(r) : null;
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<StoredDevice> ListDevices()
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT id, salt, token_hash, created_utc, revoked_utc, generation FROM devices ORDER BY id");
            using var r = cmd.ExecuteReader();
            var list = new List<StoredDevice>();
            while (r.Read()) list.Add(ReadDevice(r));
            return list;
        }
    }

    /// <inheritdoc />
    public bool AddDevice(string id, byte[] salt, byte[] hash, DateTimeOffset now)
    {
        lock (_lock)
        {
            using var cmd = Command("INSERT OR IGNORE INTO devices(id, salt, token_hash, created_utc, generation) VALUES ($id, $salt, $hash, $now, 1)",
                ("$id", id), ("$salt", salt), ("$hash", hash), ("$now", Text(now)));
            return cmd.ExecuteNonQuery() > 0;
        }
    }

    /// <inheritdoc />
    public bool RemoveDevice(string id)
    {
        lock (_lock)
        {
            using var cmd = Command("DELETE FROM devices WHERE id = $id", ("$id", id));
            return cmd.ExecuteNonQuery() > 0;
        }
    }

    /// <inheritdoc />
    public void SetDeviceToken(string id, byte[] salt, byte[] hash, DateTimeOffset now)
    {
        lock (_lock)
        {
            using var cmd = Command("""
                INSERT INTO devices(id, salt, token_hash, created_utc, generation) VALUES ($id, $salt, $hash, $now, 1)
                ON CONFLICT(id) DO UPDATE SET salt = excluded.salt, token_hash = excluded.token_hash, revoked_utc = NULL, generation = generation + 1
                """, ("$id", id), ("$salt", salt), ("$hash", hash), ("$now", Text(now)));
            cmd.ExecuteNonQuery();
        }
    }

    /// <inheritdoc />
    public void RevokeDevice(string id, byte[] salt, byte[] hash, DateTimeOffset now)
    {
        lock (_lock)
        {
            using var cmd = Command("""
                INSERT INTO devices(id, salt, token_hash, created_utc, revoked_utc, generation) VALUES ($id, $salt, $hash, $now, $now, 1)
                ON CONFLICT(id) DO UPDATE SET revoked_utc = $now, generation = generation + 1
                """, ("$id", id), ("$salt", salt), ("$hash", hash), ("$now", Text(now)));
            cmd.ExecuteNonQuery();
        }
    }

    /// <inheritdoc />
    public bool AddApiToken(string name, byte[] hash, DateTimeOffset now)
    {
        lock (_lock)
        {
            using var cmd = Command("INSERT OR IGNORE INTO api_tokens(name, token_hash, created_utc) VALUES ($name, $hash, $now)",
                ("$name", name), ("$hash", hash), ("$now", Text(now)));
            return cmd.ExecuteNonQuery() > 0;
        }
    }

    /// <inheritdoc />
    public string? FindApiToken(byte[] hash)
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT name FROM api_tokens WHERE token_hash = $hash", ("$hash", hash));
            return cmd.ExecuteScalar() as string;
        }
    }

    /// <inheritdoc />
    public bool RemoveApiToken(string name)
    {
        lock (_lock)
        {
            using var cmd = Command("DELETE FROM api_tokens WHERE name = $name", ("$name", name));
            return cmd.ExecuteNonQuery() > 0;
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<(string Name, DateTimeOffset Created)> ListApiTokens()
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT name, created_utc FROM api_tokens ORDER BY name");
            using var r = cmd.ExecuteReader();
            var list = new List<(string, DateTimeOffset)>();
            while (r.Read()) list.Add((r.GetString(0), Time(r.GetString(1))));
            return list;
        }
    }

    /// <inheritdoc />
    public long AddConfigRevision(string device, string document, string author, DateTimeOffset now)
    {
        lock (_lock)
        {
            using var tx = _db.BeginTransaction();
            using var next = Command("SELECT COALESCE(MAX(revision), 0) + 1 FROM config_revisions WHERE device = $d", ("$d", device));
            next.Transaction = tx;
            var revision = (long)next.ExecuteScalar()!;
            using var insert = Command("INSERT INTO config_revisions(device, revision, document, author, created_utc) VALUES ($d, $r, $doc, $a, $now)",
                ("$d", device), ("$r", revision), ("$doc", document), ("$a", author), ("$now", Text(now)));
            insert.Transaction = tx;
            insert.ExecuteNonQuery();
            tx.Commit();
            return revision;
        }
    }

    /// <inheritdoc />
    public ConfigRevision? GetLatestConfig(string device) => ConfigHistory(device, 1) is [var latest] ? latest : null;

    /// <inheritdoc />
    public IReadOnlyList<ConfigRevision> ConfigHistory(string device, int limit)
    {
        lock (_lock)
        {
            using var cmd = Command("""
                SELECT device, revision, document, author, created_utc, outcome, detail, reported_utc
                FROM config_revisions WHERE device = $d ORDER BY revision DESC LIMIT $limit
                """, ("$d", device), ("$limit", limit));
            using var r = cmd.ExecuteReader();
            var list = new List<ConfigRevision>();
            while (r.Read())
            {
                list.Add(new ConfigRevision(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetString(3), Time(r.GetString(4)),
                    NullableString(r, 5), NullableString(r, 6), NullableTime(r, 7)));
            }
            return list;
        }
    }

    /// <inheritdoc />
    public IReadOnlyDictionary<string, long> LatestRevisions()
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT device, MAX(revision) FROM config_revisions GROUP BY device");
            using var r = cmd.ExecuteReader();
            var map = new Dictionary<string, long>(StringComparer.Ordinal);
            while (r.Read()) map[r.GetString(0)] = r.GetInt64(1);
            return map;
        }
    }

    /// <inheritdoc />
    public void SetReported(string device, long revision, string outcome, string detail, DateTimeOffset now)
    {
        lock (_lock)
        {
            using var tx = _db.BeginTransaction();
            using var rev = Command("UPDATE config_revisions SET outcome = $o, detail = $detail, reported_utc = $now WHERE device = $d AND revision = $r",
                ("$o", outcome), ("$detail", detail), ("$now", Text(now)), ("$d", device), ("$r", revision));
            rev.Transaction = tx;
            rev.ExecuteNonQuery();
            using var state = Command("""
                INSERT INTO device_state(device, reported_revision, reported_outcome, reported_detail, reported_utc) VALUES ($d, $r, $o, $detail, $now)
                ON CONFLICT(device) DO UPDATE SET reported_revision = $r, reported_outcome = $o, reported_detail = $detail, reported_utc = $now
                """, ("$o", outcome), ("$detail", detail), ("$now", Text(now)), ("$d", device), ("$r", revision));
            state.Transaction = tx;
            state.ExecuteNonQuery();
            tx.Commit();
        }
    }

    /// <inheritdoc />
    public void SetSeen(string device, DateTimeOffset at, string? remote, string? agent)
    {
        lock (_lock)
        {
            using var cmd = Command("""
                INSERT INTO device_state(device, last_seen_utc, remote, agent) VALUES ($d, $at, $remote, $agent)
                ON CONFLICT(device) DO UPDATE SET last_seen_utc = $at, remote = COALESCE($remote, remote), agent = COALESCE($agent, agent)
                """, ("$d", device), ("$at", Text(at)), ("$remote", (object?)remote ?? DBNull.Value), ("$agent", (object?)agent ?? DBNull.Value));
            cmd.ExecuteNonQuery();
        }
    }

    /// <inheritdoc />
    public void SetLinkRate(string device, long bytesPerSecond, DateTimeOffset at)
    {
        lock (_lock)
        {
            using var cmd = Command("""
                INSERT INTO device_state(device, link_rate, link_rate_utc) VALUES ($d, $rate, $at)
                ON CONFLICT(device) DO UPDATE SET link_rate = $rate, link_rate_utc = $at
                """, ("$d", device), ("$rate", bytesPerSecond), ("$at", Text(at)));
            cmd.ExecuteNonQuery();
        }
    }

    /// <inheritdoc />
    public DeviceRecord? GetDeviceRecord(string device)
    {
        lock (_lock)
        {
            using var cmd = Command("""
                SELECT device, last_seen_utc, remote, agent, reported_revision, reported_outcome, reported_detail, reported_utc, link_rate, link_rate_utc
                FROM device_state WHERE device = $d
                """, ("$d", device));
            using var r = cmd.ExecuteReader();
            if (!r.Read()) return null;
            return new DeviceRecord(r.GetString(0), NullableTime(r, 1), NullableString(r, 2), NullableString(r, 3),
                r.IsDBNull(4) ? null : r.GetInt64(4), NullableString(r, 5), NullableString(r, 6), NullableTime(r, 7))
            {
                LinkBytesPerSecond = r.IsDBNull(8) ? null : r.GetInt64(8),
                LinkRateAt = NullableTime(r, 9),
            };
        }
    }

    /// <inheritdoc />
    public void Audit(AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        lock (_lock)
        {
            using var cmd = Command("INSERT INTO audit(at_utc, actor, source, action, target, detail) VALUES ($at, $actor, $source, $action, $target, $detail)",
                ("$at", Text(entry.At)), ("$actor", entry.Actor), ("$source", entry.Source), ("$action", entry.Action),
                ("$target", entry.Target), ("$detail", entry.Detail));
            cmd.ExecuteNonQuery();
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<AuditEntry> ReadAudit(int limit, string? target = null)
    {
        lock (_lock)
        {
            using var cmd = target is null
                ? Command("SELECT id, at_utc, actor, source, action, target, detail FROM audit ORDER BY id DESC LIMIT $limit", ("$limit", limit))
                : Command("SELECT id, at_utc, actor, source, action, target, detail FROM audit WHERE target = $t ORDER BY id DESC LIMIT $limit",
                    ("$limit", limit), ("$t", target));
            using var r = cmd.ExecuteReader();
            var list = new List<AuditEntry>();
            while (r.Read())
                list.Add(new AuditEntry(Time(r.GetString(1)), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6)) { Id = r.GetInt64(0) });
            return list;
        }
    }

    /// <inheritdoc />
    public void Dispose() => _db.Dispose();

    private void Execute(string sql)
    {
        using var cmd = Command(sql);
        cmd.ExecuteNonQuery();
    }

    private SqliteCommand Command(string sql, params (string Name, object Value)[] parameters)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        return cmd;
    }

    private static StoredDevice ReadDevice(SqliteDataReader r) =>
        new(r.GetString(0), (byte[])r[1], (byte[])r[2], Time(r.GetString(3)), NullableTime(r, 4), r.GetInt64(5));

    private static string Text(DateTimeOffset t) => t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private static DateTimeOffset Time(string s) => DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    private static DateTimeOffset? NullableTime(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : Time(r.GetString(i));

    private static string? NullableString(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
}
