using Npgsql;
using NpgsqlTypes;
using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Telemetry;

/// <summary>Where one sensor's alert stands: what <see cref="AlertEngine"/> keeps per device and sensor.</summary>
public sealed class AlertState
{
    /// <summary>Raised (true), cleared (false), or not settled yet (null).</summary>
    public bool? Active { get; set; }

    /// <summary>When the readings started to disagree with <see cref="Active"/>, or null while they agree.</summary>
    public DateTimeOffset? Since { get; set; }

    /// <summary>The newest reading judged; an older one arriving later does not rewrite the present.</summary>
    public DateTimeOffset Last { get; set; } = DateTimeOffset.MinValue;

    /// <summary>The reading that last changed <see cref="Active"/>.</summary>
    public double Value { get; set; }

    /// <summary>That reading's time.</summary>
    public DateTimeOffset At { get; set; }
}

/// <summary>
/// Alert state in the shared PostgreSQL database (docs/scale-out.md), for relays that split the readings between
/// them (<c>telemetry.sharedGroup</c>) or store each once (a reading the other relay stored first is not new here).
/// Each relay judges, after storing a batch, every sensor of that batch that has a rule: holding the sensor's row
/// of <c>telemetry_alerts</c> (<c>SELECT … FOR UPDATE</c>), it walks the readings of the shared history that are
/// newer than the last one judged — whichever relay stored them — through the same steps as the single-relay
/// engine, and writes the state back. A rule "above 80 for 30 s" thus sees every reading of the sensor.
/// </summary>
public sealed class SharedAlertStates : IDisposable
{
    // The same key as the telemetry schema: relays starting at once must not race on CREATE … IF NOT EXISTS.
    private const long SchemaLock = 7346001;
    // A sensor judged long ago (the relay was away) is caught up in steps this size, oldest first.
    private const int MaxReadings = 50_000;
    private readonly NpgsqlDataSource _source;

    /// <summary>Connects and creates the table when missing.</summary>
    public SharedAlertStates(DatabaseUrl database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _source = NpgsqlDataSource.Create(database.ToNpgsqlConnectionString());
        using var cmd = _source.CreateCommand($"""
            SELECT pg_advisory_lock({SchemaLock});
            CREATE TABLE IF NOT EXISTS telemetry_alerts (
                device TEXT NOT NULL, sensor TEXT NOT NULL,
                active BOOLEAN, since BIGINT, last BIGINT NOT NULL, value DOUBLE PRECISION NOT NULL, at BIGINT NOT NULL,
                PRIMARY KEY (device, sensor));
            SELECT pg_advisory_unlock({SchemaLock});
            """);
        cmd.ExecuteNonQuery();
    }

    /// <summary>
    /// Judges the sensor's readings stored since it was last judged (or, the first time, from <paramref name="firstNew"/>)
    /// with <paramref name="step"/>, in time order, under the sensor's row lock; returns the changes <paramref name="step"/> made.
    /// </summary>
    public IReadOnlyList<AlertChange> Evaluate(string device, string sensor, DateTimeOffset firstNew, Func<AlertState, DateTimeOffset, double, AlertChange?> step)
    {
        ArgumentNullException.ThrowIfNull(step);
        using var db = _source.OpenConnection();
        using var tx = db.BeginTransaction();
        using (var create = new NpgsqlCommand("""
            INSERT INTO telemetry_alerts (device, sensor, active, since, last, value, at) VALUES (@d, @s, NULL, NULL, @l, 0, 0)
            ON CONFLICT DO NOTHING
            """, db, tx))
        {
            // "Judged up to just before the first new reading": the first evaluation starts with this batch, as a relay that just started does.
            AddKey(create, device, sensor);
            create.Parameters.AddWithValue("l", firstNew.ToUnixTimeMilliseconds() - 1);
            create.ExecuteNonQuery();
        }
        var state = new AlertState();
        using (var read = new NpgsqlCommand("SELECT active, since, last, value, at FROM telemetry_alerts WHERE device = @d AND sensor = @s FOR UPDATE", db, tx))
        {
            AddKey(read, device, sensor);
            using var r = read.ExecuteReader();
            r.Read();
            state.Active = r.IsDBNull(0) ? null : r.GetBoolean(0);
            state.Since = r.IsDBNull(1) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(1));
            state.Last = DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2));
            state.Value = r.GetDouble(3);
            state.At = DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4));
        }
        var changes = new List<AlertChange>();
        var judged = false;
        using (var readings = new NpgsqlCommand("""
            SELECT ts, value FROM telemetry_readings WHERE device = @d AND sensor = @s AND ts > @l ORDER BY ts, seq LIMIT @n
            """, db, tx))
        {
            AddKey(readings, device, sensor);
            readings.Parameters.AddWithValue("l", state.Last.ToUnixTimeMilliseconds());
            readings.Parameters.AddWithValue("n", MaxReadings);
            using var r = readings.ExecuteReader();
            while (r.Read())
            {
                judged = true;
                if (step(state, DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(0)), r.GetDouble(1)) is { } change) changes.Add(change);
            }
        }
        if (judged)
        {
            using var write = new NpgsqlCommand("""
                UPDATE telemetry_alerts SET active = @active, since = @since, last = @l, value = @v, at = @at WHERE device = @d AND sensor = @s
                """, db, tx);
            AddKey(write, device, sensor);
            write.Parameters.Add(new NpgsqlParameter("active", NpgsqlDbType.Boolean) { Value = (object?)state.Active ?? DBNull.Value });
            write.Parameters.Add(new NpgsqlParameter("since", NpgsqlDbType.Bigint) { Value = (object?)state.Since?.ToUnixTimeMilliseconds() ?? DBNull.Value });
            write.Parameters.AddWithValue("l", state.Last.ToUnixTimeMilliseconds());
            write.Parameters.AddWithValue("v", state.Value);
            write.Parameters.AddWithValue("at", state.At.ToUnixTimeMilliseconds());
            write.ExecuteNonQuery();
        }
        tx.Commit();
        return changes;
    }

    /// <summary>The device's raised alerts: (sensor, value, time) of the reading that raised each.</summary>
    public IReadOnlyList<(string Sensor, double Value, DateTimeOffset At)> Raised(string device)
    {
        using var cmd = _source.CreateCommand("SELECT sensor, value, at FROM telemetry_alerts WHERE device = @d AND active ORDER BY sensor COLLATE \"C\"");
        cmd.Parameters.AddWithValue("d", device);
        using var r = cmd.ExecuteReader();
        var list = new List<(string, double, DateTimeOffset)>();
        while (r.Read()) list.Add((r.GetString(0), r.GetDouble(1), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2))));
        return list;
    }

    private static void AddKey(NpgsqlCommand cmd, string device, string sensor)
    {
        cmd.Parameters.AddWithValue("d", device);
        cmd.Parameters.AddWithValue("s", sensor);
    }

    /// <inheritdoc />
    public void Dispose() => _source.Dispose();
}
