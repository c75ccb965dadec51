using System.Globalization;
using Microsoft.Data.Sqlite;

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

/// <summary>Rollouts and per-device update state in <c>dataDir/relay.db</c> (its own connection; WAL lets the CLI write while the relay runs).</summary>
public sealed class UpdateStore : IDisposable
{
    private readonly SqliteConnection _db;
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

    /// <summary>Starts a rollout; any active one is marked replaced.</summary>
    public Rollout Start(string version, IReadOnlyList<string>? devices, int percent, int maxFailurePercent, bool force, string author, DateTimeOffset now)
    {
        lock (_lock)
        {
            using var tx = _db.BeginTransaction();
            using (var cmd = Command("UPDATE rollouts SET state = 'replaced' WHERE state IN ('active', 'halted')", tx)) cmd.ExecuteNonQuery();
            using (var cmd = Command("""
                INSERT INTO rollouts (version, devices, percent, max_failure_percent, force, state, detail, created_utc, author)
                VALUES ($v, $d, $p, $m, $f, 'active', '', $c, $a)
                """, tx))
            {
                cmd.Parameters.AddWithValue("$v", version);
                cmd.Parameters.AddWithValue("$d", devices is null ? DBNull.Value : string.Join(',', devices));
                cmd.Parameters.AddWithValue("$p", percent);
                cmd.Parameters.AddWithValue("$m", maxFailurePercent);
                cmd.Parameters.AddWithValue("$f", force ? 1 : 0);
                cmd.Parameters.AddWithValue("$c", Time(now));
                cmd.Parameters.AddWithValue("$a", author);
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }
        return Latest()!;
    }

    /// <summary>The newest rollout, or null.</summary>
    public Rollout? Latest() => List(1).FirstOrDefault();

    /// <summary>Rollouts, newest first.</summary>
    public IReadOnlyList<Rollout> List(int limit = 50)
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT id, version, devices, percent, max_failure_percent, force, state, detail, created_utc, author FROM rollouts ORDER BY id DESC LIMIT $l");
            cmd.Parameters.AddWithValue("$l", limit);
            using var r = cmd.ExecuteReader();
            var list = new List<Rollout>();
            while (r.Read())
                list.Add(new Rollout(r.GetInt64(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2).Split(',', StringSplitOptions.RemoveEmptyEntries),
                    r.GetInt32(3), r.GetInt32(4), r.GetInt32(5) != 0, r.GetString(6), r.GetString(7), ParseTime(r.GetString(8)), r.GetString(9)));
            return list;
        }
    }

    /// <summary>Sets a rollout's state (halted with a reason, done).</summary>
    public void SetRolloutState(long id, string state, string detail)
    {
        lock (_lock)
        {
            using var cmd = Command("UPDATE rollouts SET state = $s, detail = $d WHERE id = $i");
            cmd.Parameters.AddWithValue("$s", state);
            cmd.Parameters.AddWithValue("$d", detail);
            cmd.Parameters.AddWithValue("$i", id);
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>A device's update state, or null when it never reported.</summary>
    public DeviceUpdate? Get(string device) => All().FirstOrDefault(d => d.Device == device);

    /// <summary>Every device's update state.</summary>
    public IReadOnlyList<DeviceUpdate> All()
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT device, running, version, state, percent, detail, updated_utc FROM device_updates ORDER BY device");
            using var r = cmd.ExecuteReader();
            var list = new List<DeviceUpdate>();
            while (r.Read())
                list.Add(new DeviceUpdate(r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2),
                    r.IsDBNull(3) ? null : r.GetString(3), r.GetInt32(4), r.GetString(5), ParseTime(r.GetString(6))));
            return list;
        }
    }

    /// <summary>Records the version a device runs.</summary>
    public void SetRunning(string device, string running, DateTimeOffset now)
    {
        lock (_lock)
        {
            using var cmd = Command("""
                INSERT INTO device_updates (device, running, updated_utc) VALUES ($d, $r, $t)
                ON CONFLICT(device) DO UPDATE SET running = $r, updated_utc = $t
                """);
            cmd.Parameters.AddWithValue("$d", device);
            cmd.Parameters.AddWithValue("$r", running);
            cmd.Parameters.AddWithValue("$t", Time(now));
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Records where a device is with <paramref name="version"/>.</summary>
    public void SetState(string device, string version, string state, int percent, string detail, DateTimeOffset now)
    {
        lock (_lock)
        {
            using var cmd = Command("""
                INSERT INTO device_updates (device, version, state, percent, detail, updated_utc) VALUES ($d, $v, $s, $p, $x, $t)
                ON CONFLICT(device) DO UPDATE SET version = $v, state = $s, percent = $p, detail = $x, updated_utc = $t
                """);
            cmd.Parameters.AddWithValue("$d", device);
            cmd.Parameters.AddWithValue("$v", version);
            cmd.Parameters.AddWithValue("$s", state);
            cmd.Parameters.AddWithValue("$p", percent);
            cmd.Parameters.AddWithValue("$x", detail);
            cmd.Parameters.AddWithValue("$t", Time(now));
            cmd.ExecuteNonQuery();
        }
    }

    private static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private static DateTimeOffset ParseTime(string s) => DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    private SqliteCommand Command(string sql, SqliteTransaction? tx = null)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        return cmd;
    }

    private void Execute(string sql)
    {
        using var cmd = Command(sql);
        cmd.ExecuteNonQuery();
    }

    /// <inheritdoc />
    public void Dispose() => _db.Dispose();
}
