using Pinhole.Relay.Configuration;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Telemetry;
using Pinhole.Relay.Tests.Telemetry;
using Pinhole.Testing;

namespace Pinhole.Relay.Tests.Fleet;

/// <summary><c>pinhole-relay db migrate --from sqlite</c>: what one relay wrote to SQLite reads back through PostgreSQL.</summary>
public sealed class MigrateFromSqliteTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>, IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 11, 21, 12, 0, 0, 123, TimeSpan.Zero);
    private readonly string _dataDir = Directory.CreateTempSubdirectory("pinhole-migrate-").FullName;

    public void Dispose() => Directory.Delete(_dataDir, recursive: true);

    private DatabaseUrl NewDatabase()
    {
        var server = postgres.Server ?? throw new InvalidOperationException("PostgreSQL unavailable: " + PostgresServer.SkipReason);
        var name = "m" + Guid.NewGuid().ToString("N")[..12];
        server.CreateDatabaseAsync(name).GetAwaiter().GetResult();
        Assert.True(DatabaseUrl.TryParse(server.DatabaseUrl(name), out var url, out var error), error);
        return url;
    }

    [RequiresFact(Needs.Postgres)]
    public async Task Devices_tokens_configs_state_audit_and_telemetry_written_to_sqlite_read_back_through_postgres()
    {
        string token;
        string apiToken;
        StoredDevice before;
        using (var sqlite = new SqliteFleetStore(_dataDir))
        {
            var registry = new DeviceRegistry(sqlite, []);
            token = registry.Add("gw1");
            registry.Add("gw2");
            registry.Revoke("gw2");
            apiToken = ApiTokens.Create(sqlite, "ci", Now);
            sqlite.AddConfigRevision("gw1", """{"cameras":[]}""", "alice", Now);
            sqlite.AddConfigRevision("gw1", """{"cameras":[1]}""", "bob", Now.AddMinutes(1));
            sqlite.SetReported("gw1", 2, "applied", "ok", Now.AddMinutes(2));
            sqlite.SetSeen("gw1", Now.AddMinutes(3), "192.0.2.7:5000", "pinhole-edge/1.2.0");
            sqlite.SetLinkRate("gw1", 125_000, Now.AddMinutes(3));
            for (var i = 0; i < 3; i++)
                sqlite.Audit(new AuditEntry(Now.AddSeconds(i), "cli:test", "local", "device.add", "gw" + i, "entry " + i));
            before = sqlite.GetDevice("gw1")!;
        }
        using (var updates = new Pinhole.Relay.Updates.UpdateStore(_dataDir))
        {
            updates.Start("1.2.0", ["gw1"], 50, 20, false, "alice", Now);
            updates.SetState("gw1", "1.2.0", "trial", 100, "", Now.AddMinutes(1));
        }
        using (var telemetry = new SqliteTelemetryStore(_dataDir, TelemetryRetention.Default))
        {
            telemetry.Store([.. Enumerable.Range(1, 500).Select(i => new TelemetryReading("gw1", "temp", i, Now.AddSeconds(i), 20 + i / 100.0, "C"))], Now.AddSeconds(501));
            telemetry.SetStatus("gw1", "online", Now);
        }

        var url = NewDatabase();
        var output = new StringWriter();
        Assert.Null(SqliteToPostgres.Run(_dataDir, url, output));
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Contains("devices: 2 rows", lines);
        Assert.Contains("api_tokens: 1 rows", lines);
        Assert.Contains("config_revisions: 2 rows", lines);
        Assert.Contains("device_state: 1 rows", lines);
        Assert.Contains("telemetry_readings: 500 rows", lines);
        Assert.Contains("telemetry_status: 1 rows", lines);
        Assert.Equal(12, lines.Length);

        using var pg = new PostgresFleetStore(url);
        var registryPg = new DeviceRegistry(pg, []);
        // The token issued by the SQLite relay still authenticates; the revoked device stays revoked.
        Assert.True(await registryPg.AuthenticateAsync("gw1", token, default));
        Assert.False(await registryPg.AuthenticateAsync("gw1", token + "x", default));
        Assert.NotNull(pg.GetDevice("gw2")!.Revoked);
        var after = pg.GetDevice("gw1")!;
        // PostgreSQL keeps microseconds (SQLite's text kept 100 ns ticks).
        Assert.Equal((before.Created.AddTicks(-(before.Created.Ticks % 10)), before.Generation), (after.Created, after.Generation));
        Assert.Equal(before.Hash, after.Hash);
        Assert.Equal("ci", ApiTokens.Authenticate(pg, apiToken));
        var latest = pg.GetLatestConfig("gw1")!;
        Assert.Equal((2L, "bob", "applied", Now.AddMinutes(1)), (latest.Revision, latest.Author, latest.Outcome, latest.Created));
        // New revisions follow on from the copied ones.
        Assert.Equal(3, pg.AddConfigRevision("gw1", "{}", "carol", Now.AddMinutes(4)));
        var record = pg.GetDeviceRecord("gw1")!;
        Assert.Equal(("192.0.2.7:5000", "pinhole-edge/1.2.0", 125_000L, Now.AddMinutes(3)), (record.Remote, record.Agent, record.LinkBytesPerSecond, record.LastSeen));
        // New audit entries get ids after the copied ones: the newest is the one written last.
        pg.Audit(new AuditEntry(Now.AddMinutes(5), "cli:test", "local", "token.add", "token:x", "after the move"));
        var audit = pg.ReadAudit(10);
        Assert.Equal(["after the move", "entry 2", "entry 1", "entry 0"], audit.Select(a => a.Detail).Take(4));
        Assert.Equal(4, audit.Count);

        using (var updatesPg = new Pinhole.Relay.Updates.UpdateStore(url))
        {
            var rollout = updatesPg.Latest()!;
            Assert.Equal((1L, "1.2.0", 50, "active", Now), (rollout.Id, rollout.Version, rollout.Percent, rollout.State, rollout.Created));
            Assert.Equal(["gw1"], rollout.Devices!);
            Assert.Equal("trial", updatesPg.Get("gw1")!.State);
            // The next rollout takes the next id and replaces the copied one.
            Assert.Equal(2, updatesPg.Start("1.3.0", null, 100, 20, false, "bob", Now.AddHours(1)).Id);
            Assert.Equal("replaced", updatesPg.List().Single(r => r.Id == 1).State);
        }
        using var telemetryPg = new PostgresTelemetryStore(url, TelemetryRetention.Default);
        var raw = telemetryPg.History("gw1", "temp", Now, Now.AddHours(1), null, Now.AddHours(1))!;
        Assert.Equal(500, raw.Points.Count);
        Assert.Equal(25.0, telemetryPg.Sensors("gw1").Single().Value, 6);
        Assert.Equal("online", telemetryPg.GetStatus("gw1")!.Status);
        // A reading the SQLite relay had already stored is still deduplicated after the move.
        Assert.Empty(telemetryPg.Store([new TelemetryReading("gw1", "temp", 500, Now.AddSeconds(500), 25, "C")], Now.AddHours(1)));
    }

    [RequiresFact(Needs.Postgres)]
    public void A_second_run_refuses_and_copies_nothing()
    {
        using (var sqlite = new SqliteFleetStore(_dataDir)) new DeviceRegistry(sqlite, []).Add("gw1");
        var url = NewDatabase();
        Assert.Null(SqliteToPostgres.Run(_dataDir, url, TextWriter.Null));
        var refused = SqliteToPostgres.Run(_dataDir, url, TextWriter.Null);
        Assert.NotNull(refused);
        Assert.Contains("not empty", refused, StringComparison.Ordinal);
        Assert.Contains("devices", refused, StringComparison.Ordinal);
        using var pg = new PostgresFleetStore(url);
        Assert.Single(pg.ListDevices());
    }

    [Fact]
    public void A_data_dir_without_relay_db_is_refused_before_touching_the_target()
    {
        // Nothing is connected to: the URL points to a port nobody listens on.
        Assert.True(DatabaseUrl.TryParse("postgres://u:p@127.0.0.1:1/none", out var url, out _));
        var refused = SqliteToPostgres.Run(_dataDir, url, TextWriter.Null);
        Assert.Contains("no SQLite fleet store", refused, StringComparison.Ordinal);
    }
}
