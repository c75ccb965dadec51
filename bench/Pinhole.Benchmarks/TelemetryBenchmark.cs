using System.Data;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Telemetry;
using Pinhole.Testing;

namespace Pinhole.Benchmarks;

/// <summary>
/// Telemetry history (issue 14). Ingest: readings per second through <see cref="ITelemetryStore.Store"/> in
/// batches of 1000 (dedup, raw row, 1-minute and 1-hour aggregates, latest value), beside the peer: a plain
/// prepared <c>INSERT</c> loop into a bare table, committing every 1000 rows, on the same database and settings.
/// On PostgreSQL a second peer sends each batch of 1000 as one <c>INSERT … SELECT FROM unnest(arrays)</c>
/// into the bare table, the way the store sends its raw rows, so the store's own cost can be told apart
/// from the saving of round trips.
/// Query: a year of one-a-minute readings loaded, then 1-day, 90-day and 1-year charts at 2000 points.
/// SQLite (WAL, synchronous=FULL, as the relay runs it) and PostgreSQL (started here with its default
/// durability), each on this machine.
/// </summary>
public sealed class TelemetryBenchmark : IBenchmark
{
    /// <summary>The figures this section replaced and why they moved (kept in the section when it is re-run).</summary>
    private const string PreviousRecord =
        "**Against the previous record** (2026-12-03 06:50 UTC, commit f958ea2, load 37.7 → 32.8): SQLite store 28,546 and plain loop 60,931 readings/s; PostgreSQL store 13,102, plain loop 5,734, batched 59,396; charts 18.1 / 14.7 / 18.0 ms on SQLite and 6.4 / 6.6 / 17.9 ms on PostgreSQL. Neither store has changed since (no commit after f958ea2 touches SqliteTelemetryStore.cs or PostgresTelemetryStore.cs), nor has what this benchmark measures. A run at a similar load (31 → 25, 2026-12-03 20:03 UTC) gave figures near the old ones (SQLite store 36,966, plain loop 51,708; PostgreSQL store 14,624, plain loop 2,324, batched 38,381); this run, on a quiet machine (load 3), is 2.5 to 9.5 times faster in every column. So the absolute rates are the machine's load. The ratios moved less: SQLite's store/plain 0.47 then, 0.71 and 0.60 today; on PostgreSQL the store gained on both peers in both of today's runs (store/plain 2.29 then, 6.29 and 4.73 today; store/batch 0.22, then 0.38 and 0.38) with unchanged code, which these runs do not explain.";

    private const int IngestReadings = 100_000;
    private const int Batch = 1000;
    private const int Rounds = 3;
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    public string Name => "telemetry";

    public string Description => "history ingest (readings/s) beside a plain INSERT loop, and 1 d / 90 d / 1 y chart queries, on SQLite and PostgreSQL";

    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        var run = RunRecord.Start(Name);
        var dir = Directory.CreateTempSubdirectory("pinhole-bench-telemetry-").FullName;
        var rows = new List<string>();
        var queries = new List<string>();
        try
        {
            var year = new TelemetryRetention(TimeSpan.FromDays(400), TimeSpan.FromDays(400), null);
            // SQLite. Each rate is the median of Rounds runs, the store and its peers taking turns on fresh
            // databases, so a burst of load from elsewhere hits them alike.
            {
                var ours = new List<double>();
                var peer = new List<double>();
                for (var round = 0; round < Rounds; round++)
                {
                    using (var store = new SqliteTelemetryStore(Path.Combine(dir, $"ingest{round}"), year)) ours.Add(Ingest(store));
                    peer.Add(SqlitePlainInserts(Path.Combine(dir, $"plain{round}.db")));
                }
                rows.Add(Row("SQLite", Median(ours), Median(peer), batched: null));
                using var big = new SqliteTelemetryStore(Path.Combine(dir, "year"), year);
                queries.Add(QueryRow("SQLite", big));
            }
            // PostgreSQL
            if (PostgresServer.SkipReason is { } reason)
            {
                rows.Add($"| PostgreSQL | skipped: {reason} | | | | |\n");
            }
            else
            {
                await using var pg = await PostgresServer.StartAsync(new PostgresOptions { Durable = true }, cancellationToken);
                var ours = new List<double>();
                var peer = new List<double>();
                var batched = new List<double>();
                for (var round = 0; round < Rounds; round++)
                {
                    foreach (var name in new[] { "ingest", "plain", "batched" })
                        await pg.CreateDatabaseAsync(name + round, cancellationToken);
                    DatabaseUrl.TryParse(pg.DatabaseUrl($"ingest{round}"), out var ingestUrl, out _);
                    using (var store = new PostgresTelemetryStore(ingestUrl, year)) ours.Add(Ingest(store));
                    peer.Add(PostgresPlainInserts(pg.ConnectionString($"plain{round}")));
                    batched.Add(PostgresBatchedInserts(pg.ConnectionString($"batched{round}")));
                }
                rows.Add(Row("PostgreSQL", Median(ours), Median(peer), Median(batched)));
                await pg.CreateDatabaseAsync("year", cancellationToken);
                DatabaseUrl.TryParse(pg.DatabaseUrl("year"), out var yearUrl, out _);
                using var big = new PostgresTelemetryStore(yearUrl, year);
                queries.Add(QueryRow("PostgreSQL", big));
            }
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
        var sb = new StringBuilder();
        sb.Append("## telemetry — history ingest and chart queries\n\n");
        sb.Append(run.Line(SqliteVersion(), RunRecord.Tool("PostgreSQL", "psql", "--version")));
        sb.Append(CultureInfo.InvariantCulture, $"Ingest: {IngestReadings:N0} readings (4 sensors, 100 per second of sensor time) written through the relay's store (`ITelemetryStore.Store`, in process, no MQTT or HTTP) in batches of {Batch}, one transaction each (median of {Rounds} runs, each on a fresh database, the store and its peers taking turns): dedup by device/sensor/seq, the raw row, the 1-minute and 1-hour aggregates, the latest value. SQLite runs WAL + synchronous=FULL as the relay does; PostgreSQL keeps its defaults (fsync on), over TCP on loopback.\n\n");
        sb.Append("| database | store (readings/s) | plain INSERT loop (readings/s) | store / plain | one INSERT per batch (readings/s) | store / batch |\n|---|---|---|---|---|---|\n");
        foreach (var r in rows) sb.Append(r);
        sb.Append('\n');
        sb.Append(CultureInfo.InvariantCulture, $"- *store*: the relay's history store, all of the work above.\n");
        sb.Append(CultureInfo.InvariantCulture, $"- *plain INSERT loop* (the peer): the same rows into a bare table (device, sensor, seq, ts, value; primary key only, no aggregates, no dedup), one prepared `INSERT` executed per row, a commit every {Batch} rows, same database and settings.\n");
        sb.Append(CultureInfo.InvariantCulture, $"- *one INSERT per batch* (PostgreSQL only): the same bare table, each {Batch} rows sent as arrays in one `INSERT … SELECT FROM unnest(…)`, which is how the store sends its raw rows to PostgreSQL. On SQLite there is no round trip to save (the database is in process), so the plain loop is already its fast form.\n");
        sb.Append("- *store / …*: the store's rate divided by the peer's; above 1 the store is faster. On PostgreSQL the store beats the plain loop because it makes a handful of round trips per batch instead of one per row; beside the batched peer it shows its real cost (aggregates, latest value, dedup).\n\n");
        sb.Append("Queries: a year of one sensor's readings, one a minute (525,600), stored through the same `Store` in batches of 10,000, then `History(points: 2000)` (what `GET /api/devices/ID/sensors/NAME/history?points=2000` runs, timed in process without HTTP) over the last 1 day, 90 days and 1 year; median of 9 runs each. The store keeps 400 days of every tier here so the whole year can be loaded (the relay's default keeps raw readings 7 days and would refuse older ones).\n\n");
        sb.Append("| database | load a year (readings/s) | 1 day chart | 90 days chart | 1 year chart |\n|---|---|---|---|---|\n");
        foreach (var q in queries) sb.Append(q);
        sb.Append('\n');
        sb.Append("Each chart cell: median time of one query, then in brackets the tier that answered (`raw`, `1m` or `1h` aggregates: the coarsest whose resolution still fits the 2000 points) and how many points came back.\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"Measured on {Environment.ProcessorCount} cores shared with other engineers' builds and tests (load average above), so absolute figures are low and vary from run to run (the medians and the interleaving damp that, they do not remove it): compare within a row.\n");
        sb.Append('\n').Append(PreviousRecord).Append('\n');
        return sb.ToString();
    }

    private static IEnumerable<TelemetryReading> Readings(int count)
    {
        var start = Now.AddHours(-2);
        for (var i = 0; i < count; i++)
            yield return new TelemetryReading("gw1", "s" + (i % 4).ToString(CultureInfo.InvariantCulture), i / 4 + 1, start.AddMilliseconds(i * 10), 20 + i % 100 / 10.0, "°C");
    }

    private static double Ingest(ITelemetryStore store)
    {
        var all = Readings(IngestReadings).ToList();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < all.Count; i += Batch) store.Store(all.GetRange(i, Math.Min(Batch, all.Count - i)), Now);
        return all.Count / clock.Elapsed.TotalSeconds;
    }

    private static double SqlitePlainInserts(string path)
    {
        using var db = new SqliteConnection($"Data Source={path};Pooling=False");
        db.Open();
        using (var setup = db.CreateCommand())
        {
            setup.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE r (device TEXT, sensor TEXT, seq BIGINT, ts BIGINT, value DOUBLE PRECISION, PRIMARY KEY (device, sensor, seq));";
            setup.ExecuteNonQuery();
        }
        return PlainInserts(db);
    }

    private static double PostgresPlainInserts(string connectionString)
    {
        using var db = new NpgsqlConnection(connectionString);
        db.Open();
        using (var setup = db.CreateCommand())
        {
            setup.CommandText = "CREATE TABLE r (device TEXT, sensor TEXT, seq BIGINT, ts BIGINT, value DOUBLE PRECISION, PRIMARY KEY (device, sensor, seq));";
            setup.ExecuteNonQuery();
        }
        return PlainInserts(db);
    }

    private static double PlainInserts(DbConnection db)
    {
        var all = Readings(IngestReadings).ToList();
        var clock = Stopwatch.StartNew();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "INSERT INTO r (device, sensor, seq, ts, value) VALUES (@d, @s, @q, @t, @v)";
        var p = new[] { ("@d", DbType.String), ("@s", DbType.String), ("@q", DbType.Int64), ("@t", DbType.Int64), ("@v", DbType.Double) }
            .Select(n => { var x = cmd.CreateParameter(); x.ParameterName = n.Item1; x.DbType = n.Item2; cmd.Parameters.Add(x); return x; }).ToArray();
        cmd.Prepare();
        for (var i = 0; i < all.Count; i += Batch)
        {
            using var tx = db.BeginTransaction();
            cmd.Transaction = tx;
            for (var j = i; j < Math.Min(i + Batch, all.Count); j++)
            {
                var r = all[j];
                p[0].Value = r.Device; p[1].Value = r.Sensor; p[2].Value = r.Seq; p[3].Value = r.Timestamp.ToUnixTimeMilliseconds(); p[4].Value = r.Value;
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }
        return all.Count / clock.Elapsed.TotalSeconds;
    }

    private static double PostgresBatchedInserts(string connectionString)
    {
        using var db = new NpgsqlConnection(connectionString);
        db.Open();
        using (var setup = db.CreateCommand())
        {
            setup.CommandText = "CREATE TABLE r (device TEXT, sensor TEXT, seq BIGINT, ts BIGINT, value DOUBLE PRECISION, PRIMARY KEY (device, sensor, seq));";
            setup.ExecuteNonQuery();
        }
        var all = Readings(IngestReadings).ToList();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < all.Count; i += Batch)
        {
            var batch = all.GetRange(i, Math.Min(Batch, all.Count - i));
            using var tx = db.BeginTransaction();
            using var cmd = new NpgsqlCommand("INSERT INTO r (device, sensor, seq, ts, value) SELECT * FROM unnest(@d::text[], @s::text[], @q::bigint[], @t::bigint[], @v::double precision[])", db, tx);
            cmd.Parameters.AddWithValue("d", batch.Select(r => r.Device).ToArray());
            cmd.Parameters.AddWithValue("s", batch.Select(r => r.Sensor).ToArray());
            cmd.Parameters.AddWithValue("q", batch.Select(r => r.Seq).ToArray());
            cmd.Parameters.AddWithValue("t", batch.Select(r => r.Timestamp.ToUnixTimeMilliseconds()).ToArray());
            cmd.Parameters.AddWithValue("v", batch.Select(r => r.Value).ToArray());
            cmd.ExecuteNonQuery();
            tx.Commit();
        }
        return all.Count / clock.Elapsed.TotalSeconds;
    }

    private static string QueryRow(string name, ITelemetryStore store)
    {
        const int minutes = 365 * 24 * 60;
        var start = Now.AddMinutes(-minutes);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < minutes; i += 10_000)
            store.Store([.. Enumerable.Range(i, Math.Min(10_000, minutes - i)).Select(m => new TelemetryReading("gw1", "t", m + 1, start.AddMinutes(m), Math.Sin(m / 1440.0 * Math.PI * 2) * 10 + 20, "°C"))], Now);
        var load = minutes / clock.Elapsed.TotalSeconds;
        string Time(TimeSpan range)
        {
            var times = new List<double>();
            HistoryResult? result = null;
            for (var i = 0; i < 9; i++)
            {
                var c = Stopwatch.StartNew();
                result = store.History("gw1", "t", Now - range, Now, 2000, Now)!;
                times.Add(c.Elapsed.TotalMilliseconds);
            }
            times.Sort();
            var tier = result!.Tier switch { HistoryTier.Raw => "raw", HistoryTier.Minute => "1m", _ => "1h" };
            return string.Create(CultureInfo.InvariantCulture, $"{times[4]:0.0} ms ({tier}, {result.Points.Count} points)");
        }
        return string.Create(CultureInfo.InvariantCulture, $"| {name} | {load:N0} | {Time(TimeSpan.FromDays(1))} | {Time(TimeSpan.FromDays(90))} | {Time(TimeSpan.FromDays(365))} |\n");
    }

    private static string Row(string name, double ours, double peer, double? batched) => batched is { } b
        ? string.Create(CultureInfo.InvariantCulture, $"| {name} | {ours:N0} | {peer:N0} | {ours / peer:0.00} | {b:N0} | {ours / b:0.00} |\n")
        : string.Create(CultureInfo.InvariantCulture, $"| {name} | {ours:N0} | {peer:N0} | {ours / peer:0.00} | — | — |\n");

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    /// <summary>The SQLite library the relay's store runs on (the one Microsoft.Data.Sqlite loads).</summary>
    private static string SqliteVersion()
    {
        using var connection = new SqliteConnection("Data Source=:memory:");
        connection.Open();
        return "SQLite " + connection.ServerVersion;
    }
}
