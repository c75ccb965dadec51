using System.Diagnostics;
using System.Globalization;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Telemetry;

// The relay's telemetry history against the real thing: Mosquitto, the real edge (child process) with a
// file sensor at 10 readings/s, the real relay (child process) subscribed with "telemetry". What the
// history API returns is compared with what a persistent QoS 1 mosquitto_sub saw the edge publish.
[Collection(EndToEnd.EndToEnd.Collection)]
public sealed class TelemetryHistoryTests(ITestOutputHelper output)
{
    [RequiresFact(Needs.Mosquitto)]
    public Task History_holds_every_seq_once_with_the_published_values_and_timestamps() => EverySeqOnceAsync(database: null);

    [RequiresFact(Needs.Mosquitto)]
    public Task Broker_outage_and_edge_kill_9_leave_no_gap_no_duplicate_and_original_timestamps() => OutageAsync(database: null);

    [RequiresFact(Needs.Mosquitto | Needs.Postgres)]
    public async Task Postgres_history_holds_every_seq_once_with_the_published_values_and_timestamps()
    {
        await using var pg = await StartPostgresAsync();
        await EverySeqOnceAsync(pg.DatabaseUrl("pinhole"));
    }

    [RequiresFact(Needs.Mosquitto | Needs.Postgres)]
    public async Task Postgres_broker_outage_and_edge_kill_9_leave_no_gap_no_duplicate_and_original_timestamps()
    {
        await using var pg = await StartPostgresAsync();
        await OutageAsync(pg.DatabaseUrl("pinhole"));
    }

    private static async Task<PostgresServer> StartPostgresAsync()
    {
        var pg = await PostgresServer.StartAsync();
        await pg.CreateDatabaseAsync("pinhole");
        return pg;
    }

    private async Task EverySeqOnceAsync(string? database)
    {
        await using var stack = await TelemetryHistoryStack.StartAsync(output, database);
        await stack.StartEdgeAsync();
        var clock = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(30));
        await stack.KillEdgeAsync();
        stack.Log($"edge stopped after {clock.Elapsed.TotalSeconds:0.0} s");

        var (published, history) = await stack.WaitForHistoryToCatchUpAsync(TimeSpan.FromSeconds(60));
        stack.Log($"published {published.Count} readings (seq {published.Keys.DefaultIfEmpty().Min()}..{published.Keys.DefaultIfEmpty().Max()}), history holds {history.Count}");
        AssertSameAsPublished(published, history, stack);
        // 10 readings/s for 30 s; the machine is shared, so only half is required.
        Assert.True(published.Count >= 150, $"only {published.Count} readings published in 30 s\n{stack.Logs}");
    }

    private async Task OutageAsync(string? database)
    {
        await using var stack = await TelemetryHistoryStack.StartAsync(output, database);
        await stack.StartEdgeAsync();
        await Task.Delay(TimeSpan.FromSeconds(6));

        var outageStart = DateTimeOffset.UtcNow;
        await stack.Broker.StopAsync();
        stack.Log("broker stopped");
        await Task.Delay(TimeSpan.FromSeconds(3));
        await stack.KillEdgeAsync();
        stack.Log("edge killed with SIGKILL during the outage");
        await stack.StartEdgeAsync();
        stack.Log("edge started again (broker still down)");
        var left = outageStart + TimeSpan.FromSeconds(10) - DateTimeOffset.UtcNow;
        if (left > TimeSpan.Zero) await Task.Delay(left);
        var outageEnd = DateTimeOffset.UtcNow;
        await stack.Broker.StartAgainAsync();
        stack.Log($"broker started again after {(outageEnd - outageStart).TotalSeconds:0.0} s");
        await stack.EnsureSubscriberAsync();
        await Task.Delay(TimeSpan.FromSeconds(10));
        await stack.KillEdgeAsync();

        var (published, history) = await stack.WaitForHistoryToCatchUpAsync(TimeSpan.FromSeconds(90));
        stack.Log($"published {published.Count} readings, history holds {history.Count}");
        AssertSameAsPublished(published, history, stack);

        // Readings taken while the broker was down arrived after it came back, with the time they were taken.
        var during = history.Where(h => DateTimeOffset.Parse(h.Ts, CultureInfo.InvariantCulture) is var t && t > outageStart && t < outageEnd).ToList();
        stack.Log($"{during.Count} readings carry a time inside the outage");
        Assert.True(during.Count >= 20, $"only {during.Count} stored readings are timed inside the {(outageEnd - outageStart).TotalSeconds:0.0} s outage\n{stack.Logs}");
        // In the right place: ordered by time, the seqs count up.
        var byTime = history.OrderBy(h => h.Ts, StringComparer.Ordinal).ThenBy(h => h.Seq).Select(h => h.Seq).ToList();
        Assert.Equal(byTime.Order(), byTime);
    }

    private static void AssertSameAsPublished(Dictionary<long, PublishedReading> published, List<(long Seq, string Ts, double Value)> history, TelemetryHistoryStack stack)
    {
        Assert.NotEmpty(published);
        var seqs = history.Select(h => h.Seq).ToList();
        var duplicates = seqs.GroupBy(s => s).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(duplicates.Count == 0, $"history holds seqs more than once: {string.Join(",", duplicates.Take(20))}");
        var missing = published.Keys.Where(k => !seqs.Contains(k)).Order().ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} published seqs are not in the history: {string.Join(",", missing.Take(30))}\n{stack.Logs}");
        // Nothing lost on the way to the broker either: 1..max with no gap.
        var max = seqs.Max();
        Assert.Equal(Enumerable.Range(1, (int)max).Select(i => (long)i), seqs.Order());
        foreach (var h in history)
        {
            if (!published.TryGetValue(h.Seq, out var p)) continue;
            Assert.True(p.Ts == h.Ts && p.Value == h.Value, $"seq {h.Seq}: published {p.Value} at {p.Ts}, history has {h.Value} at {h.Ts}");
        }
    }
}
