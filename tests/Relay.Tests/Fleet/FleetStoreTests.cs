using Microsoft.Extensions.Options;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Tests.Telemetry;
using Pinhole.Relay.Web;
using Pinhole.Testing;
using Pinhole.Testing.Time;

namespace Pinhole.Relay.Tests.Fleet;

/// <summary>The fleet store's behaviour, run against SQLite and against a real PostgreSQL (the facts are declared in the subclasses).</summary>
public abstract class FleetStoreTests
{
    // Whole milliseconds: PostgreSQL keeps microseconds, SQLite's text keeps ticks; both keep these exactly.
    protected static readonly DateTimeOffset Now = new(2026, 11, 21, 12, 0, 0, 123, TimeSpan.Zero);

    /// <summary>A fresh, empty store.</summary>
    protected abstract IFleetStore Open();

    protected void Devices_are_added_once_rotated_revoked_and_removed_with_a_generation_that_moves_on_every_change()
    {
        using var store = Open();
        Assert.True(store.AddDevice("gw2", [1, 2], [3, 4], Now));
        Assert.False(store.AddDevice("gw2", [9], [9], Now));
        Assert.True(store.AddDevice("gw1", [5], [6], Now.AddMinutes(1)));
        Assert.Equal(["gw1", "gw2"], store.ListDevices().Select(d => d.Id));
        var d = store.GetDevice("gw2")!;
        Assert.Equal([1, 2], d.Salt);
        Assert.Equal([3, 4], d.Hash);
        Assert.Equal(Now, d.Created);
        Assert.Null(d.Revoked);
        Assert.Equal(1, d.Generation);

        store.SetDeviceToken("gw2", [7], [8], Now.AddMinutes(2));
        d = store.GetDevice("gw2")!;
        Assert.Equal([8], d.Hash);
        Assert.Equal(2, d.Generation);
        store.RevokeDevice("gw2", [0], [0], Now.AddMinutes(3));
        d = store.GetDevice("gw2")!;
        Assert.Equal(Now.AddMinutes(3), d.Revoked);
        Assert.Equal(3, d.Generation);
        Assert.Equal([8], d.Hash); // revoking keeps the hash; the revocation is what refuses it
        store.SetDeviceToken("gw2", [7], [9], Now.AddMinutes(4));
        Assert.Null(store.GetDevice("gw2")!.Revoked);

        Assert.True(store.RemoveDevice("gw2"));
        Assert.False(store.RemoveDevice("gw2"));
        Assert.Null(store.GetDevice("gw2"));
        Assert.Equal(["gw1"], store.ListDevices().Select(x => x.Id));
    }

    protected void Api_tokens_are_found_by_hash_and_names_are_unique()
    {
        using var store = Open();
        Assert.True(store.AddApiToken("ci", [1, 1], Now));
        Assert.False(store.AddApiToken("ci", [2, 2], Now));
        Assert.True(store.AddApiToken("backup", [2, 2], Now.AddSeconds(1)));
        Assert.Equal("ci", store.FindApiToken([1, 1]));
        Assert.Null(store.FindApiToken([3, 3]));
        Assert.Equal([("backup", Now.AddSeconds(1)), ("ci", Now)], store.ListApiTokens());
        Assert.True(store.RemoveApiToken("ci"));
        Assert.Null(store.FindApiToken([1, 1]));
    }

    protected void Config_revisions_count_up_per_device_and_carry_what_the_device_reported()
    {
        using var store = Open();
        Assert.Equal(1, store.AddConfigRevision("gw1", "{\"a\":1}", "alice", Now));
        Assert.Equal(2, store.AddConfigRevision("gw1", "{\"a\":2}", "bob", Now.AddSeconds(1)));
        Assert.Equal(1, store.AddConfigRevision("gw2", "{}", "alice", Now));
        store.SetReported("gw1", 2, "applied", "ok", Now.AddSeconds(5));
        var latest = store.GetLatestConfig("gw1")!;
        Assert.Equal((2L, "{\"a\":2}", "bob", "applied", "ok", Now.AddSeconds(5)),
            (latest.Revision, latest.Document, latest.Author, latest.Outcome, latest.Detail, latest.Reported));
        Assert.Equal([2L, 1], store.ConfigHistory("gw1", 10).Select(r => r.Revision));
        Assert.Null(store.ConfigHistory("gw1", 10)[1].Outcome);
        Assert.Equal(new Dictionary<string, long> { ["gw1"] = 2, ["gw2"] = 1 }, store.LatestRevisions());
        Assert.Null(store.GetLatestConfig("nobody"));
        var record = store.GetDeviceRecord("gw1")!;
        Assert.Equal((2L, "applied", "ok"), (record.ReportedRevision!.Value, record.ReportedOutcome, record.ReportedDetail));
    }

    protected void Device_state_keeps_the_last_address_when_a_disconnect_reports_none()
    {
        using var store = Open();
        Assert.Null(store.GetDeviceRecord("gw1"));
        store.SetSeen("gw1", Now, "192.0.2.7", "pinhole-edge/1.2");
        store.SetSeen("gw1", Now.AddMinutes(1), null, null);
        store.SetLinkRate("gw1", 250_000, Now.AddMinutes(2));
        var r = store.GetDeviceRecord("gw1")!;
        Assert.Equal((Now.AddMinutes(1), "192.0.2.7", "pinhole-edge/1.2", 250_000L, Now.AddMinutes(2)),
            (r.LastSeen!.Value, r.Remote, r.Agent, r.LinkBytesPerSecond!.Value, r.LinkRateAt!.Value));
        Assert.Null(r.ReportedRevision);
    }

    protected void The_audit_log_reads_newest_first_and_by_target()
    {
        using var store = Open();
        store.Audit(new AuditEntry(Now, "alice", "203.0.113.1", "device.add", "gw1", "{}"));
        store.Audit(new AuditEntry(Now.AddSeconds(1), "bob", "local", "config.set", "gw2", "rev 1"));
        store.Audit(new AuditEntry(Now.AddSeconds(2), "alice", "local", "device.revoke", "gw1", ""));
        var all = store.ReadAudit(10);
        Assert.Equal(["device.revoke", "config.set", "device.add"], all.Select(a => a.Action));
        Assert.True(all[0].Id > all[1].Id && all[1].Id > all[2].Id);
        Assert.Equal(Now.AddSeconds(2), all[0].At);
        Assert.Equal(["device.revoke", "device.add"], store.ReadAudit(10, "gw1").Select(a => a.Action));
        Assert.Single(store.ReadAudit(1));
    }

    protected async Task The_device_registry_authenticates_rotates_and_revokes_through_the_store()
    {
        using var store = Open();
        var registry = new DeviceRegistry(store, [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }]);
        var token = registry.Add("cam-7");
        Assert.True(await registry.AuthenticateAsync("cam-7", token, default));
        Assert.False(await registry.AuthenticateAsync("cam-7", token + "x", default));
        Assert.True(await registry.AuthenticateAsync("gw1", "a-long-random-secret", default));
        var rotated = registry.RotateToken("gw1");
        Assert.False(await registry.AuthenticateAsync("gw1", "a-long-random-secret", default));
        Assert.True(await registry.AuthenticateAsync("gw1", rotated, default));
        registry.Revoke("cam-7");
        Assert.False(await registry.AuthenticateAsync("cam-7", token, default));
        Assert.Equal([("cam-7", "stored", true), ("gw1", "relay.json+stored", false)],
            registry.Describe().Select(d => (d.Id, d.Source, d.Revoked is not null)));
    }
}

public sealed class SqliteFleetStoreTests : FleetStoreTests, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-fleet-").FullName;

    protected override IFleetStore Open() => new SqliteFleetStore(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Sqlite_Devices_are_added_once_rotated_revoked_and_removed_with_a_generation_that_moves_on_every_change() => Devices_are_added_once_rotated_revoked_and_removed_with_a_generation_that_moves_on_every_change();

    [Fact]
    public void Sqlite_Api_tokens_are_found_by_hash_and_names_are_unique() => Api_tokens_are_found_by_hash_and_names_are_unique();

    [Fact]
    public void Sqlite_Config_revisions_count_up_per_device_and_carry_what_the_device_reported() => Config_revisions_count_up_per_device_and_carry_what_the_device_reported();

    [Fact]
    public void Sqlite_Device_state_keeps_the_last_address_when_a_disconnect_reports_none() => Device_state_keeps_the_last_address_when_a_disconnect_reports_none();

    [Fact]
    public void Sqlite_The_audit_log_reads_newest_first_and_by_target() => The_audit_log_reads_newest_first_and_by_target();

    [Fact]
    public Task Sqlite_The_device_registry_authenticates_rotates_and_revokes_through_the_store() => The_device_registry_authenticates_rotates_and_revokes_through_the_store();
}

public sealed class PostgresFleetStoreTests(PostgresFixture postgres) : FleetStoreTests, IClassFixture<PostgresFixture>
{
    private PostgresServer Server => postgres.Server ?? throw new InvalidOperationException("PostgreSQL unavailable: " + PostgresServer.SkipReason);

    private DatabaseUrl NewDatabase()
    {
        var name = "f" + Guid.NewGuid().ToString("N")[..12];
        Server.CreateDatabaseAsync(name).GetAwaiter().GetResult();
        Assert.True(DatabaseUrl.TryParse(Server.DatabaseUrl(name), out var url, out var error), error);
        return url;
    }

    protected override IFleetStore Open() => new PostgresFleetStore(NewDatabase());

    [RequiresFact(Needs.Postgres)]
    public void Postgres_Devices_are_added_once_rotated_revoked_and_removed_with_a_generation_that_moves_on_every_change() => Devices_are_added_once_rotated_revoked_and_removed_with_a_generation_that_moves_on_every_change();

    [RequiresFact(Needs.Postgres)]
    public void Postgres_Api_tokens_are_found_by_hash_and_names_are_unique() => Api_tokens_are_found_by_hash_and_names_are_unique();

    [RequiresFact(Needs.Postgres)]
    public void Postgres_Config_revisions_count_up_per_device_and_carry_what_the_device_reported() => Config_revisions_count_up_per_device_and_carry_what_the_device_reported();

    [RequiresFact(Needs.Postgres)]
    public void Postgres_Device_state_keeps_the_last_address_when_a_disconnect_reports_none() => Device_state_keeps_the_last_address_when_a_disconnect_reports_none();

    [RequiresFact(Needs.Postgres)]
    public void Postgres_The_audit_log_reads_newest_first_and_by_target() => The_audit_log_reads_newest_first_and_by_target();

    [RequiresFact(Needs.Postgres)]
    public Task Postgres_The_device_registry_authenticates_rotates_and_revokes_through_the_store() => The_device_registry_authenticates_rotates_and_revokes_through_the_store();

    [RequiresFact(Needs.Postgres)]
    public async Task Relays_opening_an_empty_database_at_the_same_moment_all_migrate_it_once()
    {
        var url = NewDatabase();
        using var start = new Barrier(6);
        var opened = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() =>
        {
            start.SignalAndWait();
            return new PostgresFleetStore(url);
        })));
        try
        {
            Assert.All(opened, s => Assert.Equal(5, s.SchemaVersion));
            // Every step ran once: its tables work from any of them.
            Assert.True(opened[0].AddDevice("gw1", [1], [2], Now));
            Assert.Equal("gw1", opened[5].GetDevice("gw1")!.Id);
        }
        finally
        {
            foreach (var s in opened) s.Dispose();
        }
    }

    [RequiresFact(Needs.Postgres)]
    public async Task Concurrent_config_revisions_from_two_relays_get_distinct_numbers()
    {
        var url = NewDatabase();
        using var a = new PostgresFleetStore(url);
        using var b = new PostgresFleetStore(url);
        var revisions = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Task.Run(() => (i % 2 == 0 ? a : b).AddConfigRevision("gw1", "{}", "x", Now))));
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), revisions.Order());
    }

    [RequiresFact(Needs.Postgres)]
    public async Task A_browser_session_made_on_one_relay_is_valid_on_another_until_it_expires_or_logs_out()
    {
        var url = NewDatabase();
        using var dbA = new PostgresFleetStore(url);
        using var dbB = new PostgresFleetStore(url);
        var time = new ManualTimeProvider(Now);
        var options = Options.Create(new BrowserViewingOptions { SessionLifetime = TimeSpan.FromHours(1) });
        var relayA = new Pinhole.Relay.Tests.Web.RelaySessions(options, time, dbA);
        var relayB = new Pinhole.Relay.Tests.Web.RelaySessions(options, time, dbB);
        var cookie = await relayA.CreateAsync("alice");
        Assert.Equal("alice", await relayB.ValidateAsync(cookie));
        Assert.Null(await relayB.ValidateAsync(cookie[..^2] + "xx")); // a forged signature
        var (device, _) = new DeviceCookies(relayA.Key, time).Create("alice");
        Assert.NotNull(new DeviceCookies(relayB.Key, time).DeviceOf(device, "alice")); // the signing key is shared too
        await relayB.RemoveAsync(cookie);
        Assert.Null(await relayA.ValidateAsync(cookie));

        var second = await relayB.CreateAsync("bob");
        Assert.Equal("bob", await relayA.ValidateAsync(second));
        time.Advance(TimeSpan.FromHours(1));
        Assert.Null(await relayA.ValidateAsync(second));
        // The database holds only hashes of session ids, never a usable cookie.
        Assert.Null(dbA.GetSession(System.Text.Encoding.ASCII.GetBytes(second.Split('.')[0])));
    }

    [RequiresFact(Needs.Postgres)]
    public void Ownership_goes_to_the_newest_claim_lapses_without_renewal_and_is_released_only_by_its_holder()
    {
        using var store = new PostgresFleetStore(NewDatabase());
        var a = new RelayIdentity("relay-a", "http://a.example:8080", "a.example:8554");
        var b = new RelayIdentity("relay-b", "http://b.example:8080", "b.example:8554");
        Assert.Null(store.GetOwner("gw1", Now));
        store.Claim("gw1", a, Now.AddSeconds(15));
        Assert.Equal(("relay-a", "a.example:8554"), (store.GetOwner("gw1", Now)!.RelayId, store.GetOwner("gw1", Now)!.PublicRtsp));
        Assert.Equal(1, store.Renew("relay-a", ["gw1", "gw9"], Now.AddSeconds(30)));
        Assert.NotNull(store.GetOwner("gw1", Now.AddSeconds(20)));
        Assert.Null(store.GetOwner("gw1", Now.AddSeconds(30))); // lapsed: nobody renewed

        store.Claim("gw1", b, Now.AddSeconds(45)); // the device reconnected through the balancer to relay b
        Assert.Equal(0, store.Renew("relay-a", ["gw1"], Now.AddSeconds(60)));
        store.Release("gw1", "relay-a"); // a late release from the old holder changes nothing
        Assert.Equal("http://b.example:8080", store.GetOwner("gw1", Now.AddSeconds(40))!.PublicUrl);
        store.Release("gw1", "relay-b");
        Assert.Null(store.GetOwner("gw1", Now.AddSeconds(40)));
    }
}
