using System.Data.Common;
using Npgsql;
using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Telemetry;

/// <summary>
/// The telemetry history in PostgreSQL (relay.json <c>"database": "postgres://…"</c>): the same tables
/// and SQL as SQLite, pooled connections (Npgsql), so queries and the ingest run side by side.
/// The schema is created on open when missing.
/// </summary>
public sealed class PostgresTelemetryStore : SqlTelemetryStore
{
    private readonly NpgsqlDataSource _source;

    /// <summary>Connects (throws <see cref="NpgsqlException"/> with the server's reason when it cannot) and creates the tables when missing.</summary>
    public PostgresTelemetryStore(DatabaseUrl url, TelemetryRetention retention) : base(retention)
    {
        ArgumentNullException.ThrowIfNull(url);
        _source = NpgsqlDataSource.Create(url.ToNpgsqlConnectionString());
        using var db = _source.OpenConnection();
        using var cmd = db.CreateCommand();
        // Two relays starting at once must not race on CREATE … IF NOT EXISTS.
        cmd.CommandText = "SELECT pg_advisory_lock(7346001); " + Schema + " SELECT pg_advisory_unlock(7346001);";
        cmd.ExecuteNonQuery();
    }

    /// <inheritdoc />
    protected override string Least => "LEAST";

    /// <inheritdoc />
    protected override string Greatest => "GREATEST";

    // One statement per batch instead of one round trip per reading: the batch goes over as arrays and
    // unnest() turns them back into rows. RETURNING says which were new (ON CONFLICT DO NOTHING also
    // skips a repeat inside the same batch).
    /// <inheritdoc />
    protected override List<TelemetryReading> InsertRaw(DbConnection db, DbTransaction tx, IReadOnlyList<TelemetryReading> readings)
    {
        ArgumentNullException.ThrowIfNull(readings);
        if (readings.Count == 0) return [];
        using var cmd = new NpgsqlCommand("""
            INSERT INTO telemetry_readings (device, sensor, seq, ts, value)
            SELECT * FROM unnest(@d::text[], @s::text[], @q::bigint[], @t::bigint[], @v::double precision[])
            ON CONFLICT DO NOTHING RETURNING device, sensor, seq
            """, (NpgsqlConnection)db, (NpgsqlTransaction)tx);
        cmd.Parameters.AddWithValue("d", readings.Select(r => r.Device).ToArray());
        cmd.Parameters.AddWithValue("s", readings.Select(r => r.Sensor).ToArray());
        cmd.Parameters.AddWithValue("q", readings.Select(r => r.Seq).ToArray());
        cmd.Parameters.AddWithValue("t", readings.Select(r => r.Timestamp.ToUnixTimeMilliseconds()).ToArray());
        cmd.Parameters.AddWithValue("v", readings.Select(r => r.Value).ToArray());
        var inserted = new HashSet<(string, string, long)>();
        using (var r = cmd.ExecuteReader())
            while (r.Read()) inserted.Add((r.GetString(0), r.GetString(1), r.GetInt64(2)));
        var fresh = new List<TelemetryReading>(inserted.Count);
        foreach (var reading in readings)
            if (inserted.Remove((reading.Device, reading.Sensor, reading.Seq))) fresh.Add(reading);
        return fresh;
    }

    /// <inheritdoc />
    protected override void UpsertBuckets(DbConnection db, DbTransaction tx, string table, IReadOnlyList<BucketRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0) return;
        using var cmd = new NpgsqlCommand($"""
            INSERT INTO {table} (device, sensor, bucket, vmin, vmax, vsum, n)
            SELECT * FROM unnest(@d::text[], @s::text[], @b::bigint[], @lo::double precision[], @hi::double precision[], @sum::double precision[], @n::bigint[])
            {BucketConflict(table)}
            """, (NpgsqlConnection)db, (NpgsqlTransaction)tx);
        cmd.Parameters.AddWithValue("d", rows.Select(r => r.Device).ToArray());
        cmd.Parameters.AddWithValue("s", rows.Select(r => r.Sensor).ToArray());
        cmd.Parameters.AddWithValue("b", rows.Select(r => r.Bucket).ToArray());
        cmd.Parameters.AddWithValue("lo", rows.Select(r => r.Min).ToArray());
        cmd.Parameters.AddWithValue("hi", rows.Select(r => r.Max).ToArray());
        cmd.Parameters.AddWithValue("sum", rows.Select(r => r.Sum).ToArray());
        cmd.Parameters.AddWithValue("n", rows.Select(r => r.Count).ToArray());
        cmd.ExecuteNonQuery();
    }

    /// <inheritdoc />
    protected override T Write<T>(Func<DbConnection, T> action)
    {
        using var db = _source.OpenConnection();
        return action(db);
    }

    /// <inheritdoc />
    protected override T Read<T>(Func<DbConnection, T> action)
    {
        using var db = _source.OpenConnection();
        return action(db);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _source.Dispose();
    }
}
