using Pinhole.Relay.Configuration;
using Pinhole.Relay.Tests.Telemetry;
using Pinhole.Relay.Updates;
using Pinhole.Testing;

namespace Pinhole.Relay.Tests.Updates;

/// <summary>Rollouts and update states in the shared PostgreSQL database: what one relay writes, every relay reads.</summary>
public sealed class SharedUpdateStoreTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    private static readonly DateTimeOffset Now = new(2026, 11, 21, 12, 0, 0, 123, TimeSpan.Zero);

    [RequiresFact(Needs.Postgres)]
    public async Task A_rollout_started_through_one_relay_is_seen_and_advanced_by_another()
    {
        var server = postgres.Server ?? throw new InvalidOperationException("PostgreSQL unavailable: " + PostgresServer.SkipReason);
        var name = "u" + Guid.NewGuid().ToString("N")[..12];
        await server.CreateDatabaseAsync(name);
        Assert.True(DatabaseUrl.TryParse(server.DatabaseUrl(name), out var url, out var error), error);
        using var relayA = new UpdateStore(url);
        using var relayB = new UpdateStore(url);

        var started = relayA.Start("1.4.0", ["gw1", "gw2"], 50, 20, false, "alice", Now);
        var seen = relayB.Latest()!;
        Assert.Equal((started.Id, "1.4.0", 50, 20, "active", Now, "alice"), (seen.Id, seen.Version, seen.Percent, seen.MaxFailurePercent, seen.State, seen.Created, seen.Author));
        Assert.Equal(["gw1", "gw2"], seen.Devices!);

        // The device is on relay B: its progress, written there, is what relay A reports.
        relayB.SetRunning("gw1", "1.3.0", Now);
        relayB.SetState("gw1", "1.4.0", "downloading", 40, "", Now.AddSeconds(5));
        var state = relayA.Get("gw1")!;
        Assert.Equal(("1.3.0", "1.4.0", "downloading", 40, Now.AddSeconds(5)), (state.Running, state.Version, state.State, state.Percent, state.Updated));

        // Two relays starting rollouts at the same moment: one ends active, the other replaced.
        await Task.WhenAll(Task.Run(() => relayA.Start("1.5.0", null, 100, 20, false, "a", Now)), Task.Run(() => relayB.Start("1.5.1", null, 100, 20, true, "b", Now)));
        var all = relayA.List();
        Assert.Single(all, r => r.State == "active");
        Assert.Equal(all.Max(r => r.Id), all.Single(r => r.State == "active").Id);
        relayB.SetRolloutState(all[0].Id, "halted", "too many failures");
        Assert.Equal(("halted", "too many failures"), (relayA.Latest()!.State, relayA.Latest()!.Detail));
    }
}
