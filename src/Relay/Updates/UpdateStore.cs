using System.Globalization;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Updates;

/// <summary>A rollout: which version goes to which devices, how far it is staged, and whether it still runs.</summary>
/// <param name="Id">Increasing number.</param>
/// <param name="Version">The release version.</param>
/// <param name="Devices">Target device ids, or null for every device.</param>
/// <param name="Percent">Share of the targets offered the release (1-100), the first by id.</param>
/// <param name="MaxFailurePercent">The rollout halts itself when more than this share of the offered devices failed.</param>
/// <param name="Force">Offer even to devices that run a newer version (a downgrade).</param>
/// <param name="State"><c>active</c>, <c>halted</c>, <c>done</c> or <c>replaced</c>.</param>
/// <param name="Detail">Why it halted.</param>
/// <param name="Created">When it started.</param>
/// <param name="Author">Who started it.</param>
public sealed record Rollout(long Id, string Version, IReadOnlyList<string>? Devices, int Percent, int MaxFailurePercent, bool Force, string State, string Detail, DateTimeOffset Created, string Author);

/// <summary>What a device last reported about updates.</summary>
/// <param name="Device">Device id.</param>
/// <param name="Running">The version it runs.</param>
/// <param name="Version">The version the state is about.</param>
/// <param name="State"><c>offered</c>, <c>downloading</c>, <c>installing</c>, <c>trial</c>, <c>committed</c>, <c>rolled-back</c>, <c>refused</c>, or <c>no-bundle</c> (not offered: the relay has the version, but not for the device's architecture).</param>
/// <param name="Percent">Download progress.</param>
/// <param name="Detail">Why (rolled back, refused, no bundle).</param>
/// <param name="Updated">When.</param>
public sealed record DeviceUpdate(string Device, string? Running, string? Version, string? State, int Percent, string Detail, DateTimeOffset Updated);

/// <summary>
/// Rollouts and per-device update state: in <c>dataDir/relay.db</c> (its own connection; WAL lets the CLI write
/// while the relay runs), or with relay.json <c>"database": "postgres://…"</c> in the shared PostgreSQL
/// database (tables <c>rollouts</c>, <c>device_updates</c>, created by the fleet store's migrations), so a
/// rollout started through any relay is seen by every relay. The SQL is the same for both.
/// </summary>
public sealed class UpdateStore : IDisposable
{
    // Serializes rollout starts across relays (PostgreSQL): two at once must not both stay active.
    private const long StartLock = 7346003;
    private readonly SqliteConnection? _db;
    private readonly NpgsqlDataSource? _source;
    private readonly Lock _lock = new();

    /// <summary>Opens (creating the tables when needed) <c>relay.db</c> in <paramref name="dataDir"/>.</summary>
    public UpdateStore(string dataDir)
    {
        _db = Fleet.RelayDatabase.Open(dataDir);
        Execute("""
            CREATE TABLE IF NOT EXISTS rollouts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                version TEXT NOT NULL,
                devices TEXT,
                percent INTEGER NOT NULL,
                max_failure_percent INTEGER NOT NULL,
                force INTEGER NOT NULL,
                state TEXT NOT NULL,
                detail TEXT NOT NULL,
                created_utc TEXT NOT NULL,
                author TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS device_updates (
                device TEXT PRIMARY KEY NOT NULL,
                running TEXT,
                version TEXT,
                state TEXT,
                percent INTEGER NOT NULL DEFAULT 0,
                detail TEXT NOT NULL DEFAULT '',
                updated_utc TEXT NOT NULL
            );
            """);
    }

    /// <summary>Uses the shared PostgreSQL database (migrating its schema like a relay does at start).</summary>
    public UpdateStore(DatabaseUrl database)
    {
        ArgumentNullException.ThrowIfNull(database);
        new Fleet.PostgresFleetStore(database).Dispose();
        _source = NpgsqlDataSource.Create(database.ToNpgsqlConnectionString());
    }

    /// <summary>Opens the store relay.json names: PostgreSQL when <c>database</c> is set, else SQLite in dataDir.</summary>
    public static UpdateStore Open(RelayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Database.Kind == DatabaseKind.Postgres ? new UpdateStore(config.Database) : new UpdateStore(config.DataDir);
    }

    /// <summary>Starts a rollout; any active one is marked replaced.</summary>
    public Rollout Start(string version, IReadOnlyList<string>? devices, int percent, int maxFailurePercent, bool force, string author, DateTimeOffset now)
    {
        Use(db =>
        {
            using var tx = db.BeginTransaction();
            if (_source is not null)
                using (var cmd = Command(db, $"SELECT pg_advisory_xact_lock({StartLock})", tx)) cmd.ExecuteNonQuery();
            using (var cmd = Command(db, "UPDATE rollouts SET state = 'replaced' WHERE state IN ('active', 'halted')", tx)) cmd.ExecuteNonQuery();
            using (var cmd = Command(db, """
                INSERT INTO rollouts (version, devices, percent, max_failure_percent, force, state, detail, created_utc, author)
                VALUES (@v, @d, @p, @m, @f, 'active', '', @c, @a)
                """, tx))
            {
                Add(cmd, "v", version);
                Add(cmd, "d", devices is null ? DBNull.Value : string.Join(',', devices));
                Add(cmd, "p", percent);
                Add(cmd, "m", maxFailurePercent);
                Add(cmd, "f", force ? 1 : 0);
                Add(cmd, "c", Time(now));
                Add(cmd, "a", author);
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
            return 0;
        });
        return Latest()!;
    }

    /// <summary>The newest rollout, or null.</summary>
    public Rollout? Latest() => List(1).FirstOrDefault();

    /// <summary>Rollouts, newest first.</summary>
    public IReadOnlyList<Rollout> List(int limit = 50) => Use(db =>
    {
        using var cmd = Command(db, "SELECT id, version, devices, percent, max_failure_percent, force, state, detail, created_utc, author FROM rollouts ORDER BY id DESC LIMIT @l");
        Add(cmd, "l", limit);
        using var r = cmd.ExecuteReader();
        var list = new List<Rollout>();
        while (r.Read())
            list.Add(new Rollout(r.GetInt64(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2).Split(',', StringSplitOptions.RemoveEmptyEntries),
                r.GetInt32(3), r.GetInt32(4), r.GetInt32(5) != 0, r.GetString(6), r.GetString(7), ReadTime(r, 8), r.GetString(9)));
        return list;
    });

    /// <summary>Sets a rollout's state (halted with a reason, done).</summary>
    public void SetRolloutState(long id, string state, string detail) => Use(db =>
    {
        using var cmd = Command(db, "UPDATE rollouts SET state = @s, detail = @d WHERE id = @i");
        Add(cmd, "s", state);
        Add(cmd, "d", detail);
        Add(cmd, "i", id);
        return cmd.ExecuteNonQuery();
    });

    /// <summary>A device's update state, or null when it never reported.</summary>
    public DeviceUpdate? Get(string device) => All().FirstOrDefault(d => d.Device == device);

    /// <summary>Every device's update state.</summary>
    public IReadOnlyList<DeviceUpdate> All() => Use(db =>
    {
        using var cmd = Command(db, "SELECT device, running, version, state, percent, detail, updated_utc FROM device_updates ORDER BY device");
        using var r = cmd.ExecuteReader();
        var list = new List<DeviceUpdate>();
        while (r.Read())
            list.Add(new DeviceUpdate(r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2),
                r.IsDBNull(3) ? null : r.GetString(3), r.GetInt32(4), r.GetString(5), ReadTime(r, 6)));
        return list;
    });

    /// <summary>Records the version a device runs.</summary>
    public void SetRunning(string device, string running, DateTimeOffset now) => Use(db =>
    {
        using var cmd = Command(db, """
            INSERT INTO device_updates (device, running, updated_utc) VALUES (@d, @r, @t)
            ON CONFLICT(device) DO UPDATE SET running = @r, updated_utc = @t
            """);
        Add(cmd, "d", device);
        Add(cmd, "r", running);
        Add(cmd, "t", Time(now));
        return cmd.ExecuteNonQuery();
    });

    /// <summary>Records where a device is with <paramref name="version"/>.</summary>
    public void SetState(string device, string version, string state, int percent, string detail, DateTimeOffset now) => Use(db =>
    {
        using var cmd = Command(db, """
            INSERT INTO device_updates (device, version, state, percent, detail, updated_utc) VALUES (@d, @v, @s, @p, @x, @t)
            ON CONFLICT(device) DO UPDATE SET version = @v, state = @s, percent = @p, detail = @x, updated_utc = @t
            """);
        Add(cmd, "d", device);
        Add(cmd, "v", version);
        Add(cmd, "s", state);
        Add(cmd, "p", percent);
        Add(cmd, "x", detail);
        Add(cmd, "t", Time(now));
        return cmd.ExecuteNonQuery();
    });

    // SQLite keeps ISO-8601 text, PostgreSQL TIMESTAMPTZ (the column keeps its SQLite name on both).
    private object Time(DateTimeOffset t) => _source is not null ? t.UtcDateTime : t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private DateTimeOffset ReadTime(DbDataReader r, int i) => _source is not null
        ? r.GetFieldValue<DateTimeOffset>(i)
        : DateTimeOffset.Parse(r.GetString(i), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    // SQLite: the one connection, under the lock. PostgreSQL: a pooled connection per call.
    private T Use<T>(Func<DbConnection, T> action)
    {
        if (_db is not null)
            lock (_lock) return action(_db);
        using var db = _source!.OpenConnection();
        return action(db);
    }

    private static DbCommand Command(DbConnection db, string sql, DbTransaction? tx = null)
    {
        var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        return cmd;
    }

    private static void Add(DbCommand cmd, string name, object value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        cmd.Parameters.Add(p);
    }

    private void Execute(string sql)
    {
        using var cmd = Command(_db!, sql);
        cmd.ExecuteNonQuery();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _db?.Dispose();
        _source?.Dispose();
    }
}
