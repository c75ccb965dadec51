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
/// Query: a year of one-a-minute readings loaded, then 1-day, 90-day and 1-year charts at 2000 points.
/// SQLite (WAL, synchronous=FULL, as the relay runs it) and PostgreSQL (started here with its default
/// durability), each on this machine.
/// </summary>
public sealed class TelemetryBenchmark : IBenchmark
{
    private const int IngestReadings = 100_000;
    private const int Batch = 1000;
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    public string Name => "telemetry";

    public string Description => "history ingest (readings/s) beside a plain INSERT loop, and 1 d / 90 d / 1 y chart queries, on SQLite and PostgreSQL";

    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-bench-telemetry-").FullName;
        var rows = new List<string>();
        var queries = new List<string>();
        try
        {
            var year = new TelemetryRetention(TimeSpan.FromDays(400), TimeSpan.FromDays(400), null);
            // SQLite
            {
                using var store = new SqliteTelemetryStore(Path.Combine(dir, "ingest"), year);
                var ours = Ingest(store);
                var peer = SqlitePlainInserts(Path.Combine(dir, "plain.db"));
                rows.Add(Row("SQLite", ours, peer));
                using var big = new SqliteTelemetryStore(Path.Combine(dir, "year"), year);
                queries.Add(QueryRow("SQLite", big));
            }
            // PostgreSQL
            if (PostgresServer.SkipReason is { } reason)
            {
                rows.Add($"| PostgreSQL | skipped: {reason} | | |\n");
            }
            else
            {
                await using var pg = await PostgresServer.StartAsync(new PostgresOptions { Durable = true }, cancellationToken);
                await pg.CreateDatabaseAsync("ingest", cancellationToken);
                await pg.CreateDatabaseAsync("plain", cancellationToken);
                await pg.CreateDatabaseAsync("year", cancellationToken);
                DatabaseUrl.TryParse(pg.DatabaseUrl("ingest"), out var ingestUrl, out _);
                DatabaseUrl.TryParse(pg.DatabaseUrl("year"), out var yearUrl, out _);
                using var store = new PostgresTelemetryStore(ingestUrl, year);
                var ours = Ingest(store);
                var peer = PostgresPlainInserts(pg.ConnectionString("plain"));
                rows.Add(Row("PostgreSQL", ours, peer));
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
        sb.Append(CultureInfo.InvariantCulture, $"Ingest: {IngestReadings:N0} readings (4 sensors) through the relay's store in batches of {Batch} (one transaction each: dedup by device/sensor/seq, raw row, 1-minute and 1-hour aggregates, latest value). Peer: a prepared `INSERT` of the same rows into a bare table (no index beyond its primary key), committing every {Batch} rows, on the same database with the same settings (SQLite WAL + synchronous=FULL; PostgreSQL defaults, fsync on).\n\n");
        sb.Append("| database | store (readings/s) | plain INSERT loop (readings/s) | store / plain |\n|---|---|---|---|\n");
        foreach (var r in rows) sb.Append(r);
        sb.Append('\n');
        sb.Append("Queries: a year of one-a-minute readings of one sensor loaded (525,600), then charts at `points=2000`, median of 9 runs each (the tier used in brackets).\n\n");
        sb.Append("| database | load a year (readings/s) | 1 day | 90 days | 1 year |\n|---|---|---|---|---|\n");
        foreach (var q in queries) sb.Append(q);
        sb.Append('\n');
        sb.Append(CultureInfo.InvariantCulture, $"Measured on {Environment.ProcessorCount} cores shared with other engineers' builds and tests (load average {LoadAverage()}), so absolute figures are low; the ratios are the point.\n");
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
        for (var i = 0; i < all.Count; i += Batch)
        {
            using var tx = db.BeginTransaction();
            using var cmd = db.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO r (device, sensor, seq, ts, value) VALUES (@d, @s, @q, @t, @v)";
            var p = new[] { "@d", "@s", "@q", "@t", "@v" }.Select(n => { var x = cmd.CreateParameter(); x.ParameterName = n; cmd.Parameters.Add(x); return x; }).ToArray();
            foreach (var r in all.Skip(i).Take(Batch))
            {
                p[0].Value = r.Device; p[1].Value = r.Sensor; p[2].Value = r.Seq; p[3].Value = r.Timestamp.ToUnixTimeMilliseconds(); p[4].Value = r.Value;
                cmd.ExecuteNonQuery();
            }
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
            HistoryTier tier = default;
            for (var i = 0; i < 9; i++)
            {
                var c = Stopwatch.StartNew();
                tier = store.History("gw1", "t", Now - range, Now, 2000, Now)!.Tier;
                times.Add(c.Elapsed.TotalMilliseconds);
            }
            times.Sort();
            return string.Create(CultureInfo.InvariantCulture, $"{times[4]:0.0} ms ({tier})");
        }
        return string.Create(CultureInfo.InvariantCulture, $"| {name} | {load:N0} | {Time(TimeSpan.FromDays(1))} | {Time(TimeSpan.FromDays(90))} | {Time(TimeSpan.FromDays(365))} |\n");
    }

    private static string Row(string name, double ours, double peer) =>
        string.Create(CultureInfo.InvariantCulture, $"| {name} | {ours:N0} | {peer:N0} | {ours / peer:0.00} |\n");

    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "unknown"; }
    }
}
