using System.Diagnostics;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Telemetry;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Telemetry;

/// <summary>The history store's behaviour, run against SQLite and against a real PostgreSQL.</summary>
/// <remarks>The facts are declared in the subclasses, so the PostgreSQL ones can be skipped with a reason where it is missing.</remarks>
public abstract class TelemetryStoreTests(ITestOutputHelper output)
{
    protected static readonly DateTimeOffset Now = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    /// <summary>A fresh, empty store.</summary>
    protected abstract ITelemetryStore Open(TelemetryRetention retention);

    private static TelemetryReading R(long seq, DateTimeOffset ts, double value, string sensor = "t", string device = "gw1") => new(device, sensor, seq, ts, value, "°C");

    protected void A_reading_received_again_is_stored_once_and_counted_once_in_the_aggregates()
    {
        using var store = Open(TelemetryRetention.Default);
        var a = R(1, Now.AddMinutes(-10), 20);
        var b = R(2, Now.AddMinutes(-10).AddSeconds(1), 22);
        Assert.Equal(2, store.Store([a, b, a], Now).Count);
        Assert.Empty(store.Store([b, a], Now));
        // The outbox resends with the same seq and ts; another sensor with the same seq is a different reading.
        Assert.Single(store.Store([R(1, a.Timestamp, 20, sensor: "u"), a], Now));
        var raw = store.History("gw1", "t", Now.AddHours(-1), Now, null, Now)!;
        Assert.Equal([1L, 2], raw.Points.Select(p => p.Seq!.Value));
        var minute = store.History("gw1", "t", Now.AddDays(-6), Now, 2000, Now)!;
        Assert.Equal(HistoryTier.Minute, minute.Tier);
        var bucket = Assert.Single(minute.Points);
        Assert.Equal((2L, 20.0, 22.0, 21.0), (bucket.Count, bucket.Min, bucket.Max, bucket.Avg));
    }

    protected void Latest_value_is_the_newest_by_time_taken_not_by_arrival()
    {
        using var store = Open(TelemetryRetention.Default);
        store.Store([R(5, Now.AddSeconds(-5), 50)], Now);
        store.Store([R(3, Now.AddSeconds(-30), 30)], Now.AddSeconds(1)); // backfill from an outage arrives later
        var s = Assert.Single(store.Sensors("gw1"));
        Assert.Equal((50.0, 5L, "°C"), (s.Value, s.Seq, s.Unit));
        Assert.Equal(Now.AddSeconds(-5), s.Timestamp);
        Assert.Equal(Now.AddSeconds(1), s.LastSeen);
        Assert.Empty(store.Sensors("gw2"));
    }

    protected void Backfilled_readings_take_their_place_in_time_and_gaps_stay_gaps()
    {
        using var store = Open(TelemetryRetention.Default);
        var start = Now.AddMinutes(-30);
        // 0-9 min and 20-29 min, one a second; then minutes 12-13 arrive late (the outage's backlog).
        store.Store([.. Enumerable.Range(0, 600).Select(i => R(i + 1, start.AddSeconds(i), i))], Now);
        store.Store([.. Enumerable.Range(1200, 600).Select(i => R(i + 1, start.AddSeconds(i), i))], Now);
        store.Store([.. Enumerable.Range(720, 120).Select(i => R(i + 1, start.AddSeconds(i), i))], Now);
        var raw = store.History("gw1", "t", start, Now, null, Now)!;
        Assert.Equal(1320, raw.Points.Count);
        Assert.True(raw.Points.Zip(raw.Points.Skip(1)).All(p => p.First.Time < p.Second.Time && p.First.Seq < p.Second.Seq));
        var chart = store.History("gw1", "t", start, Now, 30, Now)!;
        Assert.Equal(HistoryTier.Minute, chart.Tier);
        Assert.Equal(TimeSpan.FromMinutes(2), chart.Bucket);
        // Buckets exist only where readings do: 0-9 (5), 12-13 (1), 20-29 (5).
        Assert.Equal(11, chart.Points.Count);
        Assert.Equal(1320, chart.Points.Sum(p => p.Count));
        Assert.DoesNotContain(chart.Points, p => p.Time >= start.AddMinutes(10) && p.Time < start.AddMinutes(12));
    }

    protected void A_short_range_is_downsampled_from_raw_readings_with_min_max_avg_per_bucket()
    {
        using var store = Open(TelemetryRetention.Default);
        var start = Now.AddMinutes(-10);
        store.Store([.. Enumerable.Range(0, 600).Select(i => R(i + 1, start.AddSeconds(i), i % 10))], Now);
        var h = store.History("gw1", "t", start, Now, 61, Now)!;
        Assert.Equal(HistoryTier.Raw, h.Tier);
        Assert.Equal(TimeSpan.FromSeconds(10), h.Bucket);
        Assert.Equal(60, h.Points.Count);
        Assert.All(h.Points, p => Assert.Equal((0.0, 9.0, 4.5, 10L), (p.Min, p.Max, p.Avg, p.Count)));
    }

    protected void Readings_older_than_the_raw_retention_are_not_stored()
    {
        using var store = Open(TelemetryRetention.Default);
        Assert.Empty(store.Store([R(1, Now.AddDays(-8), 1)], Now));
        Assert.Empty(store.Sensors("gw1"));
    }

    protected void A_year_of_readings_charts_in_at_most_2000_points_within_a_second_and_pruning_keeps_the_aggregates()
    {
        // Loaded as a store that still keeps a year of raw readings; then the default retention is applied.
        using var store = Open(new TelemetryRetention(TimeSpan.FromDays(400), TimeSpan.FromDays(400), null));
        const int minutes = 365 * 24 * 60;
        var start = Now.AddMinutes(-minutes);
        var load = Stopwatch.StartNew();
        for (var i = 0; i < minutes; i += 10_000)
            store.Store([.. Enumerable.Range(i, Math.Min(10_000, minutes - i)).Select(m => R(m + 1, start.AddMinutes(m), Math.Sin(m / 1440.0 * Math.PI * 2) * 10 + 20))], Now);
        output.WriteLine($"loaded {minutes} readings in {load.Elapsed.TotalSeconds:0.0} s");

        var query = Stopwatch.StartNew();
        var year = store.History("gw1", "t", start, Now, 2000, Now)!;
        query.Stop();
        output.WriteLine($"1-year chart: {year.Points.Count} points from the {year.Tier} tier in {query.Elapsed.TotalMilliseconds:0} ms");
        Assert.True(year.Points.Count <= 2000, $"{year.Points.Count} points");
        Assert.True(year.Points.Count >= 1000, $"only {year.Points.Count} points for a full year");
        Assert.Equal(HistoryTier.Hour, year.Tier);
        Assert.Equal(minutes, year.Points.Sum(p => p.Count));
        Assert.True(query.Elapsed < TimeSpan.FromSeconds(1), $"the 1-year query took {query.Elapsed.TotalMilliseconds:0} ms");
        Assert.InRange(year.Points.Min(p => p.Min), 9.99, 10.01);
        Assert.InRange(year.Points.Max(p => p.Max), 29.99, 30.01);

        var pruned = store.Prune(Now, TelemetryRetention.Default);
        output.WriteLine($"pruned {pruned}");
        Assert.Equal(minutes - 7 * 24 * 60, pruned.Raw);
        Assert.Equal(0, pruned.Hour);
        Assert.Equal(minutes - 7 * 24 * 60, minutes - store.History("gw1", "t", Now.AddDays(-7), Now, null, Now, maxRaw: 20_000)!.Points.Count);
        Assert.Empty(store.History("gw1", "t", start, Now.AddDays(-8), null, Now)!.Points);
        var afterPrune = store.History("gw1", "t", start, Now, 2000, Now)!;
        Assert.Equal(minutes, afterPrune.Points.Sum(p => p.Count));
        var quarter = store.History("gw1", "t", Now.AddDays(-90), Now, 2000, Now)!;
        Assert.Equal(HistoryTier.Hour, quarter.Tier);
        var week = store.History("gw1", "t", Now.AddDays(-7), Now, 2000, Now)!;
        Assert.Equal(HistoryTier.Minute, week.Tier);
        Assert.Equal(7 * 24 * 60, week.Points.Sum(p => p.Count));
    }

    protected void Status_is_kept_per_device()
    {
        using var store = Open(TelemetryRetention.Default);
        Assert.Null(store.GetStatus("gw1"));
        store.SetStatus("gw1", "online", Now);
        store.SetStatus("gw1", "offline", Now.AddSeconds(1));
        Assert.Equal(new DeviceTelemetryStatus("offline", Now.AddSeconds(1)), store.GetStatus("gw1"));
    }
}

public sealed class SqliteTelemetryStoreTests(ITestOutputHelper output) : TelemetryStoreTests(output), IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("telemetry-store-");

    protected override ITelemetryStore Open(TelemetryRetention retention) =>
        new SqliteTelemetryStore(Path.Combine(_dir.FullName, Guid.NewGuid().ToString("N")), retention);

    public void Dispose() => _dir.Delete(true);

    [Fact]
    public void Sqlite_A_reading_received_again_is_stored_once_and_counted_once_in_the_aggregates() => A_reading_received_again_is_stored_once_and_counted_once_in_the_aggregates();

    [Fact]
    public void Sqlite_Latest_value_is_the_newest_by_time_taken_not_by_arrival() => Latest_value_is_the_newest_by_time_taken_not_by_arrival();

    [Fact]
    public void Sqlite_Backfilled_readings_take_their_place_in_time_and_gaps_stay_gaps() => Backfilled_readings_take_their_place_in_time_and_gaps_stay_gaps();

    [Fact]
    public void Sqlite_A_short_range_is_downsampled_from_raw_readings_with_min_max_avg_per_bucket() => A_short_range_is_downsampled_from_raw_readings_with_min_max_avg_per_bucket();

    [Fact]
    public void Sqlite_Readings_older_than_the_raw_retention_are_not_stored() => Readings_older_than_the_raw_retention_are_not_stored();

    [Fact]
    public void Sqlite_A_year_of_readings_charts_in_at_most_2000_points_within_a_second_and_pruning_keeps_the_aggregates() => A_year_of_readings_charts_in_at_most_2000_points_within_a_second_and_pruning_keeps_the_aggregates();

    [Fact]
    public void Sqlite_Status_is_kept_per_device() => Status_is_kept_per_device();

    [Fact]
    public void The_history_survives_reopening_the_file()
    {
        var dir = Path.Combine(_dir.FullName, "reopen");
        using (var store = new SqliteTelemetryStore(dir, TelemetryRetention.Default))
            store.Store([new TelemetryReading("gw1", "t", 1, Now.AddMinutes(-1), 1, "")], Now);
        using var again = new SqliteTelemetryStore(dir, TelemetryRetention.Default);
        Assert.Empty(again.Store([new TelemetryReading("gw1", "t", 1, Now.AddMinutes(-1), 1, "")], Now));
        Assert.Single(again.Sensors("gw1"));
    }
}

/// <summary>One PostgreSQL server for the class; each test gets a database of its own.</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    public PostgresServer? Server { get; private set; }

    public async Task InitializeAsync()
    {
        if (PostgresServer.SkipReason is null) Server = await PostgresServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (Server is not null) await Server.DisposeAsync();
    }
}

public sealed class PostgresTelemetryStoreTests(PostgresFixture postgres, ITestOutputHelper output) : TelemetryStoreTests(output), IClassFixture<PostgresFixture>
{
    protected override ITelemetryStore Open(TelemetryRetention retention)
    {
        var server = postgres.Server ?? throw new InvalidOperationException("PostgreSQL unavailable: " + PostgresServer.SkipReason);
        var name = "t" + Guid.NewGuid().ToString("N")[..12];
        server.CreateDatabaseAsync(name).GetAwaiter().GetResult();
        Assert.True(DatabaseUrl.TryParse(server.DatabaseUrl(name), out var url, out var error), error);
        return new PostgresTelemetryStore(url, retention);
    }

    [RequiresFact(Needs.Postgres)]
    public void Postgres_A_reading_received_again_is_stored_once_and_counted_once_in_the_aggregates() => A_reading_received_again_is_stored_once_and_counted_once_in_the_aggregates();

    [RequiresFact(Needs.Postgres)]
    public void Postgres_Latest_value_is_the_newest_by_time_taken_not_by_arrival() => Latest_value_is_the_newest_by_time_taken_not_by_arrival();

    [RequiresFact(Needs.Postgres)]
    public void Postgres_Backfilled_readings_take_their_place_in_time_and_gaps_stay_gaps() => Backfilled_readings_take_their_place_in_time_and_gaps_stay_gaps();

    [RequiresFact(Needs.Postgres)]
    public void Postgres_A_short_range_is_downsampled_from_raw_readings_with_min_max_avg_per_bucket() => A_short_range_is_downsampled_from_raw_readings_with_min_max_avg_per_bucket();

    [RequiresFact(Needs.Postgres)]
    public void Postgres_Readings_older_than_the_raw_retention_are_not_stored() => Readings_older_than_the_raw_retention_are_not_stored();

    [RequiresFact(Needs.Postgres)]
    public void Postgres_A_year_of_readings_charts_in_at_most_2000_points_within_a_second_and_pruning_keeps_the_aggregates() => A_year_of_readings_charts_in_at_most_2000_points_within_a_second_and_pruning_keeps_the_aggregates();

    [RequiresFact(Needs.Postgres)]
    public void Postgres_Status_is_kept_per_device() => Status_is_kept_per_device();
}
