using System.Data;
using System.Data.Common;

namespace Pinhole.Relay.Telemetry;

/// <summary>
/// The telemetry history in SQL that SQLite and PostgreSQL both speak (upserts with
/// <c>ON CONFLICT</c>, integer division for buckets). Times are stored as Unix milliseconds.
/// The subclasses supply connections and the few words that differ (<see cref="Least"/>, <see cref="Greatest"/>).
/// </summary>
/// <remarks>
/// Readings older than the raw retention are not stored: their raw rows may already have been
/// pruned, so a duplicate of one could no longer be recognised and would be counted twice in the
/// aggregates.
/// </remarks>
public abstract class SqlTelemetryStore : ITelemetryStore
{
    /// <summary>The schema; the same text runs on both databases.</summary>
    protected const string Schema = """
        CREATE TABLE IF NOT EXISTS telemetry_readings (
            device TEXT NOT NULL, sensor TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL, value DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (device, sensor, seq));
        CREATE INDEX IF NOT EXISTS telemetry_readings_time ON telemetry_readings (device, sensor, ts);
        CREATE INDEX IF NOT EXISTS telemetry_readings_prune ON telemetry_readings (ts);
        CREATE TABLE IF NOT EXISTS telemetry_minute (
            device TEXT NOT NULL, sensor TEXT NOT NULL, bucket BIGINT NOT NULL,
            vmin DOUBLE PRECISION NOT NULL, vmax DOUBLE PRECISION NOT NULL, vsum DOUBLE PRECISION NOT NULL, n BIGINT NOT NULL,
            PRIMARY KEY (device, sensor, bucket));
        CREATE INDEX IF NOT EXISTS telemetry_minute_prune ON telemetry_minute (bucket);
        CREATE TABLE IF NOT EXISTS telemetry_hour (
            device TEXT NOT NULL, sensor TEXT NOT NULL, bucket BIGINT NOT NULL,
            vmin DOUBLE PRECISION NOT NULL, vmax DOUBLE PRECISION NOT NULL, vsum DOUBLE PRECISION NOT NULL, n BIGINT NOT NULL,
            PRIMARY KEY (device, sensor, bucket));
        CREATE INDEX IF NOT EXISTS telemetry_hour_prune ON telemetry_hour (bucket);
        CREATE TABLE IF NOT EXISTS telemetry_sensors (
            device TEXT NOT NULL, sensor TEXT NOT NULL, unit TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,
            ts BIGINT NOT NULL, seq BIGINT NOT NULL, received BIGINT NOT NULL,
            PRIMARY KEY (device, sensor));
        CREATE TABLE IF NOT EXISTS telemetry_status (
            device TEXT PRIMARY KEY NOT NULL, status TEXT NOT NULL, at BIGINT NOT NULL);
        """;

    private const long MinuteMs = 60_000;
    private const long HourMs = 3_600_000;

    /// <summary>Creates a store that keeps <paramref name="retention"/>.</summary>
    protected SqlTelemetryStore(TelemetryRetention retention) => Retention = retention;

    /// <summary>What each tier keeps (also decides which tier can answer a query).</summary>
    public TelemetryRetention Retention { get; }

    /// <summary>The two-argument minimum (<c>min</c> in SQLite, <c>LEAST</c> in PostgreSQL).</summary>
    protected abstract string Least { get; }

    /// <summary>The two-argument maximum.</summary>
    protected abstract string Greatest { get; }

    /// <summary>Runs <paramref name="action"/> on a connection for writing (serialized by the subclass as its database needs).</summary>
    protected abstract T Write<T>(Func<DbConnection, T> action);

    /// <summary>Runs <paramref name="action"/> on a connection for reading.</summary>
    protected abstract T Read<T>(Func<DbConnection, T> action);

    /// <inheritdoc />
    public IReadOnlyList<TelemetryReading> Store(IReadOnlyList<TelemetryReading> readings, DateTimeOffset receivedAt)
    {
        ArgumentNullException.ThrowIfNull(readings);
        if (readings.Count == 0) return [];
        var oldest = (receivedAt - Retention.Raw).ToUnixTimeMilliseconds();
        return Write(db =>
        {
            using var tx = db.BeginTransaction();
            var fresh = InsertRaw(db, tx, [.. readings.Where(r => r.Timestamp.ToUnixTimeMilliseconds() >= oldest)]);
            if (fresh.Count > 0)
            {
                // Aggregate the batch in memory first: one upsert per bucket, not per reading.
                Aggregate(db, tx, "telemetry_minute", MinuteMs, fresh);
                Aggregate(db, tx, "telemetry_hour", HourMs, fresh);
                using var latest = Command(db, tx, """
                    INSERT INTO telemetry_sensors (device, sensor, unit, value, ts, seq, received) VALUES (@d, @s, @u, @v, @t, @q, @r)
                    ON CONFLICT (device, sensor) DO UPDATE SET
                      unit = CASE WHEN excluded.ts >= telemetry_sensors.ts THEN excluded.unit ELSE telemetry_sensors.unit END,
                      value = CASE WHEN excluded.ts >= telemetry_sensors.ts THEN excluded.value ELSE telemetry_sensors.value END,
                      seq = CASE WHEN excluded.ts >= telemetry_sensors.ts THEN excluded.seq ELSE telemetry_sensors.seq END,
                      ts = CASE WHEN excluded.ts >= telemetry_sensors.ts THEN excluded.ts ELSE telemetry_sensors.ts END,
                      received = excluded.received
                    """, ("d", DbType.String), ("s", DbType.String), ("u", DbType.String), ("v", DbType.Double), ("t", DbType.Int64), ("q", DbType.Int64), ("r", DbType.Int64));
                foreach (var last in fresh.GroupBy(r => (r.Device, r.Sensor)).Select(g => g.MaxBy(r => r.Timestamp)!))
                {
                    Set(latest, last.Device, last.Sensor, last.Unit, last.Value, last.Timestamp.ToUnixTimeMilliseconds(), last.Seq, receivedAt.ToUnixTimeMilliseconds());
                    latest.ExecuteNonQuery();
                }
            }
            tx.Commit();
            return (IReadOnlyList<TelemetryReading>)fresh;
        });
    }

    /// <summary>Inserts raw readings, skipping those already stored (and repeats within the batch); returns the new ones in input order.</summary>
    protected virtual List<TelemetryReading> InsertRaw(DbConnection db, DbTransaction tx, IReadOnlyList<TelemetryReading> readings)
    {
        ArgumentNullException.ThrowIfNull(readings);
        var fresh = new List<TelemetryReading>();
        using var insert = Command(db, tx, "INSERT INTO telemetry_readings (device, sensor, seq, ts, value) VALUES (@d, @s, @q, @t, @v) ON CONFLICT DO NOTHING",
            ("d", DbType.String), ("s", DbType.String), ("q", DbType.Int64), ("t", DbType.Int64), ("v", DbType.Double));
        foreach (var r in readings)
        {
            Set(insert, r.Device, r.Sensor, r.Seq, r.Timestamp.ToUnixTimeMilliseconds(), r.Value);
            if (insert.ExecuteNonQuery() == 1) fresh.Add(r);
        }
        return fresh;
    }

    /// <summary>One aggregate row to merge into a tier.</summary>
    protected readonly record struct BucketRow(string Device, string Sensor, long Bucket, double Min, double Max, double Sum, long Count);

    /// <summary>Merges aggregate rows (unique per device, sensor and bucket) into <paramref name="table"/>.</summary>
    protected virtual void UpsertBuckets(DbConnection db, DbTransaction tx, string table, IReadOnlyList<BucketRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        using var upsert = Command(db, tx, $"""
            INSERT INTO {table} (device, sensor, bucket, vmin, vmax, vsum, n) VALUES (@d, @s, @b, @lo, @hi, @sum, @n)
            {BucketConflict(table)}
            """, ("d", DbType.String), ("s", DbType.String), ("b", DbType.Int64), ("lo", DbType.Double), ("hi", DbType.Double), ("sum", DbType.Double), ("n", DbType.Int64));
        foreach (var r in rows)
        {
            Set(upsert, r.Device, r.Sensor, r.Bucket, r.Min, r.Max, r.Sum, r.Count);
            upsert.ExecuteNonQuery();
        }
    }

    /// <summary>The <c>ON CONFLICT</c> clause that merges a bucket row into an existing one.</summary>
    protected string BucketConflict(string table) => $"""
        ON CONFLICT (device, sensor, bucket) DO UPDATE SET
          vmin = {Least}({table}.vmin, excluded.vmin), vmax = {Greatest}({table}.vmax, excluded.vmax),
          vsum = {table}.vsum + excluded.vsum, n = {table}.n + excluded.n
        """;

    private void Aggregate(DbConnection db, DbTransaction tx, string table, long width, List<TelemetryReading> fresh)
    {
        var rows = new List<BucketRow>();
        foreach (var g in fresh.GroupBy(r => (r.Device, r.Sensor, Bucket: Floor(r.Timestamp.ToUnixTimeMilliseconds(), width))))
        {
            double lo = double.PositiveInfinity, hi = double.NegativeInfinity, sum = 0;
            long n = 0;
            foreach (var r in g)
            {
                lo = Math.Min(lo, r.Value);
                hi = Math.Max(hi, r.Value);
                sum += r.Value;
                n++;
            }
            rows.Add(new BucketRow(g.Key.Device, g.Key.Sensor, g.Key.Bucket, lo, hi, sum, n));
        }
        UpsertBuckets(db, tx, table, rows);
    }

    /// <inheritdoc />
    public void SetStatus(string device, string status, DateTimeOffset at) => Write(db =>
    {
        using var cmd = Command(db, null, "INSERT INTO telemetry_status (device, status, at) VALUES (@d, @st, @at) ON CONFLICT (device) DO UPDATE SET status = excluded.status, at = excluded.at",
            ("d", DbType.String), ("st", DbType.String), ("at", DbType.Int64));
        Set(cmd, device, status, at.ToUnixTimeMilliseconds());
        return cmd.ExecuteNonQuery();
    });

    /// <inheritdoc />
    public DeviceTelemetryStatus? GetStatus(string device) => Read(db =>
    {
        using var cmd = Command(db, null, "SELECT status, at FROM telemetry_status WHERE device = @d", ("d", DbType.String));
        Set(cmd, device);
        using var r = cmd.ExecuteReader();
        return r.Read() ? new DeviceTelemetryStatus(r.GetString(0), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(1))) : null;
    });

    /// <inheritdoc />
    public IReadOnlyList<SensorSummary> Sensors(string device) => Read(db =>
    {
        using var cmd = Command(db, null, "SELECT sensor, value, unit, ts, seq, received FROM telemetry_sensors WHERE device = @d ORDER BY sensor", ("d", DbType.String));
        Set(cmd, device);
        using var r = cmd.ExecuteReader();
        var list = new List<SensorSummary>();
        while (r.Read())
            list.Add(new SensorSummary(r.GetString(0), r.GetDouble(1), r.GetString(2), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(3)), r.GetInt64(4), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(5))));
        return (IReadOnlyList<SensorSummary>)list;
    });

    /// <inheritdoc />
    public HistoryResult? History(string device, string sensor, DateTimeOffset from, DateTimeOffset to, int? points, DateTimeOffset now, int maxRaw = 100_000)
    {
        var f = from.ToUnixTimeMilliseconds();
        var t = to.ToUnixTimeMilliseconds();
        if (t <= f) return new HistoryResult(HistoryTier.Raw, TimeSpan.Zero, []);
        if (points is null)
        {
            return Read(db =>
            {
                using var cmd = Command(db, null, "SELECT ts, value, seq FROM telemetry_readings WHERE device = @d AND sensor = @s AND ts >= @f AND ts < @t ORDER BY ts, seq LIMIT @lim",
                    ("d", DbType.String), ("s", DbType.String), ("f", DbType.Int64), ("t", DbType.Int64), ("lim", DbType.Int64));
                Set(cmd, device, sensor, f, t, (long)maxRaw + 1);
                using var r = cmd.ExecuteReader();
                var list = new List<HistoryPoint>();
                while (r.Read())
                {
                    var v = r.GetDouble(1);
                    list.Add(new HistoryPoint(DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(0)), v, v, v, 1, r.GetInt64(2)));
                }
                return list.Count > maxRaw ? null : new HistoryResult(HistoryTier.Raw, TimeSpan.Zero, list);
            });
        }
        var n = Math.Max(points.Value, 2);
        // Buckets are aligned to multiples of their width, so [f, t) can touch one more than span/width:
        // dividing by n - 1 keeps the answer at n points or fewer.
        var width = Math.Max(1, (t - f + n - 2) / (n - 1));
        var nowMs = now.ToUnixTimeMilliseconds();
        HistoryTier tier;
        if (width < MinuteMs && f >= nowMs - (long)Retention.Raw.TotalMilliseconds) tier = HistoryTier.Raw;
        else if (width < HourMs && f >= nowMs - (long)Retention.Minute.TotalMilliseconds) tier = HistoryTier.Minute;
        else tier = HistoryTier.Hour;
        var unit = tier switch { HistoryTier.Raw => 1, HistoryTier.Minute => MinuteMs, _ => HourMs };
        width = (width + unit - 1) / unit * unit;
        var sql = tier == HistoryTier.Raw
            ? "SELECT (ts / @w) * @w, MIN(value), MAX(value), SUM(value), COUNT(*) FROM telemetry_readings WHERE device = @d AND sensor = @s AND ts >= @f AND ts < @t GROUP BY 1 ORDER BY 1"
            : $"SELECT (bucket / @w) * @w, MIN(vmin), MAX(vmax), SUM(vsum), SUM(n) FROM {(tier == HistoryTier.Minute ? "telemetry_minute" : "telemetry_hour")} WHERE device = @d AND sensor = @s AND bucket >= @f AND bucket < @t GROUP BY 1 ORDER BY 1";
        // Aggregate rows start at their bucket: include the one that holds f.
        var fromBucket = tier == HistoryTier.Raw ? f : Floor(f, unit);
        return Read(db =>
        {
            using var cmd = Command(db, null, sql, ("w", DbType.Int64), ("d", DbType.String), ("s", DbType.String), ("f", DbType.Int64), ("t", DbType.Int64));
            Set(cmd, width, device, sensor, fromBucket, t);
            using var r = cmd.ExecuteReader();
            var list = new List<HistoryPoint>();
            while (r.Read())
            {
                var count = Convert.ToInt64(r.GetValue(4), System.Globalization.CultureInfo.InvariantCulture);
                var sum = Convert.ToDouble(r.GetValue(3), System.Globalization.CultureInfo.InvariantCulture);
                list.Add(new HistoryPoint(DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(r.GetValue(0), System.Globalization.CultureInfo.InvariantCulture)),
                    r.GetDouble(1), r.GetDouble(2), count == 0 ? 0 : sum / count, count));
            }
            return new HistoryResult(tier, TimeSpan.FromMilliseconds(width), list);
        });
    }

    /// <inheritdoc />
    public PruneResult Prune(DateTimeOffset now, TelemetryRetention retention)
    {
        ArgumentNullException.ThrowIfNull(retention);
        var nowMs = now.ToUnixTimeMilliseconds();
        long Delete(string table, string column, TimeSpan keep) => Write(db =>
        {
            using var cmd = Command(db, null, $"DELETE FROM {table} WHERE {column} < @cut", ("cut", DbType.Int64));
            Set(cmd, nowMs - (long)keep.TotalMilliseconds);
            return (long)cmd.ExecuteNonQuery();
        });
        var raw = Delete("telemetry_readings", "ts", retention.Raw);
        // A minute bucket is dropped only once it is wholly past the limit.
        var minute = Delete("telemetry_minute", "bucket", retention.Minute + TimeSpan.FromMinutes(1));
        var hour = retention.Hour is { } h ? Delete("telemetry_hour", "bucket", h + TimeSpan.FromHours(1)) : 0;
        return new PruneResult(raw, minute, hour);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases connections.</summary>
    protected abstract void Dispose(bool disposing);

    private static long Floor(long ms, long width) => ms >= 0 ? ms / width * width : (ms - width + 1) / width * width;

    private static DbCommand Command(DbConnection db, DbTransaction? tx, string sql, params (string Name, DbType Type)[] parameters)
    {
        var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        foreach (var (name, type) in parameters)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = "@" + name;
            p.DbType = type;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    private static void Set(DbCommand cmd, params object[] values)
    {
        for (var i = 0; i < values.Length; i++) cmd.Parameters[i].Value = values[i];
    }
}
