using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Npgsql;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Tests.Telemetry;
using Pinhole.Relay.Updates;
using Pinhole.Testing;
using Pinhole.Transport.Updates;
using Pinhole.Transport.Uplink;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Fleet;

/// <summary>
/// Issue 19's shared state (docs/scale-out.md), two relays in this process on one real PostgreSQL, each with its own
/// dataDir: the device list on either relay shows a device online on the other; a release bundle added on one relay
/// is served, whole and verified, to a device whose uplink is on the other.
/// </summary>
public sealed class SharedFleetTests(PostgresFixture postgres, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private const string Secret = "a-long-random-secret";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    private static RelayConfig Config(string dataDir, DatabaseUrl database) => new()
    {
        Http = "http://127.0.0.1:0",
        Rtsp = "127.0.0.1:0",
        DataDir = dataDir,
        Database = database,
        Devices = [new DeviceConfig { Id = "gw1", Token = Secret }, new DeviceConfig { Id = "gw2", Token = Secret }],
        Viewers = [new ViewerConfig { User = "alice", Password = "secret" }],
    };

    private async Task<(RelayApp A, RelayApp B, DatabaseUrl Url, string DirA, string DirB)> StartTwoAsync()
    {
        var server = postgres.Server ?? throw new InvalidOperationException("PostgreSQL unavailable: " + PostgresServer.SkipReason);
        var name = "f" + Guid.NewGuid().ToString("N")[..12];
        await server.CreateDatabaseAsync(name);
        Assert.True(DatabaseUrl.TryParse(server.DatabaseUrl(name), out var url, out var error), error);
        var dirA = Directory.CreateTempSubdirectory("pinhole-shared-a-").FullName;
        var dirB = Directory.CreateTempSubdirectory("pinhole-shared-b-").FullName;
        var relays = await Task.WhenAll(RelayApp.StartAsync(Config(dirA, url)), RelayApp.StartAsync(Config(dirB, url)));
        return (relays[0], relays[1], url, dirA, dirB);
    }

    private static async Task StopAsync(RelayApp a, RelayApp b, params string[] dirs)
    {
        await a.DisposeAsync();
        await b.DisposeAsync();
        foreach (var dir in dirs) Directory.Delete(dir, recursive: true);
    }

    private static HttpClient Api(RelayApp relay)
    {
        var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = relay.HttpUri, Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            ApiTokens.Create(relay.Services.GetRequiredService<IFleetStore>(), "ci-" + Guid.NewGuid().ToString("N")[..8], DateTimeOffset.UtcNow));
        return http;
    }

    private static async Task<JsonObject> DeviceInListAsync(HttpClient api, string id) =>
        (JsonObject)JsonNode.Parse(await api.GetStringAsync(new Uri("/api/devices", UriKind.Relative)))!.AsArray().Single(d => d!["id"]!.GetValue<string>() == id)!;

    private static async Task<JsonObject> WaitForAsync(HttpClient api, string id, Func<JsonObject, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            var d = await DeviceInListAsync(api, id);
            if (condition(d)) return d;
            Assert.True(DateTime.UtcNow < deadline, $"{what}: {d.ToJsonString()}");
            await Task.Delay(100);
        }
    }

    [RequiresFact(Needs.Postgres)]
    public async Task The_device_list_on_either_relay_shows_which_relay_holds_each_online_device()
    {
        var (a, b, _, dirA, dirB) = await StartTwoAsync();
        try
        {
            using var apiA = Api(a);
            using var apiB = Api(b);
            var urlA = a.HttpUri.GetLeftPart(UriPartial.Authority);
            // Before any uplink: offline everywhere, held by nobody.
            foreach (var api in new[] { apiA, apiB })
            {
                var d = await DeviceInListAsync(api, "gw1");
                Assert.False(d["online"]!.GetValue<bool>());
                Assert.Null(d["relay"]);
            }

            await using (var device = await FakeDevice.ConnectAsync(a.UplinkUri, "gw1", Secret, "pinhole-edge/1.2.0 (linux-arm64)"))
            {
                // Asked on the relay holding it, and on the other one: both say online, on relay A.
                var onA = await WaitForAsync(apiA, "gw1", d => d["online"]!.GetValue<bool>(), "relay A does not list gw1 online");
                var onB = await WaitForAsync(apiB, "gw1", d => d["online"]!.GetValue<bool>(), "relay B does not list gw1 (held by relay A) online");
                Assert.Equal(urlA, onA["relay"]!.GetValue<string>());
                Assert.Equal(urlA, onB["relay"]!.GetValue<string>());
                Assert.Equal("1.2.0", onB["version"]!.GetValue<string>());
                // gw2 has no uplink anywhere: offline on both.
                Assert.False((await DeviceInListAsync(apiA, "gw2"))["online"]!.GetValue<bool>());
                Assert.False((await DeviceInListAsync(apiB, "gw2"))["online"]!.GetValue<bool>());
                output.WriteLine($"relay B lists gw1: {onB.ToJsonString()}");
            }

            // The uplink ended: offline on both again (the lease was released, not left to lapse).
            await WaitForAsync(apiA, "gw1", d => !d["online"]!.GetValue<bool>(), "relay A still lists gw1 online");
            var gone = await WaitForAsync(apiB, "gw1", d => !d["online"]!.GetValue<bool>(), "relay B still lists gw1 online");
            Assert.Null(gone["relay"]);
        }
        finally
        {
            await StopAsync(a, b, dirA, dirB);
        }
    }

    /// <summary>A release of a few MiB (several database chunks), packed and signed like <c>releases pack</c> does.</summary>
    private static string Pack(string dir, string version, string key, int seed)
    {
        var folder = Directory.CreateDirectory(Path.Combine(dir, "build-" + version + "-" + seed)).FullName;
        File.WriteAllText(Path.Combine(folder, "pinhole-edge"), $"#!/bin/sh\n# build {seed}\nexec sleep 3600\n");
        var blob = new byte[(int)(2.5 * SharedReleaseBundles.ChunkBytes)];
        new Random(seed).NextBytes(blob);
        File.WriteAllBytes(Path.Combine(folder, "payload.bin"), blob);
        var bundle = Path.Combine(dir, $"{version}-{seed}.bundle");
        ReleasePacker.Pack(folder, version, key, bundle, "any");
        return bundle;
    }

    /// <summary>Asks for the whole bundle in one request and puts the chunks the relay sends back together.</summary>
    private static async Task<byte[]> DownloadAsync(FakeDevice device, string version, ulong size)
    {
        await device.SendAsync(new UpdateRequest(version, 0, (uint)size));
        var bytes = new byte[size];
        ulong received = 0;
        while (received < size)
        {
            var chunk = await device.NextAsync<UpdateChunk>(Wait);
            Assert.Equal(version, chunk.Version);
            Assert.Equal(received, chunk.Offset);
            Assert.True(chunk.Data.Length > 0, $"the relay sent an empty chunk at {received} of {size}");
            chunk.Data.Span.CopyTo(bytes.AsSpan((int)received));
            received += (ulong)chunk.Data.Length;
        }
        return bytes;
    }

    [RequiresFact(Needs.Postgres)]
    public async Task A_bundle_added_on_one_relay_is_served_whole_and_verified_to_a_device_on_the_other()
    {
        var (a, b, url, dirA, dirB) = await StartTwoAsync();
        var work = Directory.CreateTempSubdirectory("pinhole-shared-bundles-").FullName;
        try
        {
            var key = ReleasePacker.CreateKeyPair().PrivateKeyPem;
            var bundle = Pack(work, "2.0.0", key, seed: 1);
            var expected = File.ReadAllBytes(bundle);
            // Added on relay A only (as `releases add` with relay A's config does): relay B's dataDir has nothing.
            var added = a.Services.GetRequiredService<ReleaseStore>().Add(bundle).Release;
            Assert.True(a.Services.GetRequiredService<ReleaseStore>().IsShared);
            Assert.False(Directory.Exists(Path.Combine(dirB, "releases", "2.0.0")));

            // The device's uplink is on relay B; the rollout is started through relay A's API.
            await using var device = await FakeDevice.ConnectAsync(b.UplinkUri, "gw1", Secret, "pinhole-edge/1.0.0 (linux-x64)");
            using var apiA = Api(a);
            using (var start = await apiA.PostAsync(new Uri("/api/rollouts", UriKind.Relative),
                new StringContent("""{"version": "2.0.0", "devices": ["gw1"]}""", Encoding.UTF8, "application/json")))
                Assert.True(start.IsSuccessStatusCode, await start.Content.ReadAsStringAsync());

            var offer = await device.NextAsync<UpdateOffer>(Wait);
            Assert.Equal(("2.0.0", "any", (ulong)expected.Length), (offer.Version, offer.Architecture, offer.Size));
            Assert.Equal(added.Sha256, offer.Sha256.ToArray());
            var downloaded = await DownloadAsync(device, "2.0.0", offer.Size);
            // What an edge checks before it installs: the whole bundle's SHA-256 (then the signature, which the bytes carry).
            Assert.Equal(offer.Sha256.ToArray(), SHA256.HashData(downloaded));
            Assert.Equal(expected, downloaded);
            using (var s = new MemoryStream(downloaded)) Assert.Equal("2.0.0", ReleaseUnpacker.ReadHead(s).Manifest.Version);
            Assert.True(File.Exists(Path.Combine(dirB, "releases", "2.0.0", "any.bundle")), "relay B keeps its copy in its dataDir");
            output.WriteLine($"relay B served {downloaded.Length} bytes of a bundle added on relay A");

            // Replaced through relay A (same version, other bytes): relay B serves the new one to the next offer.
            var replacement = Pack(work, "2.0.0", key, seed: 2);
            var replaced = a.Services.GetRequiredService<ReleaseStore>().Add(replacement);
            Assert.NotNull(replaced.Replaced);
            var storeB = b.Services.GetRequiredService<ReleaseStore>();
            var deadline = DateTime.UtcNow + Wait;
            while (!storeB.Get("2.0.0", "any")!.Sha256.AsSpan().SequenceEqual(replaced.Release.Sha256))
            {
                Assert.True(DateTime.UtcNow < deadline, "relay B still holds the replaced bundle");
                await Task.Delay(200);
            }
            Assert.Equal(File.ReadAllBytes(replacement), File.ReadAllBytes(storeB.Get("2.0.0", "any")!.Path));

            // Bytes damaged in the database are refused with a reason, never served: a third relay's dataDir is empty.
            await using (var db = new NpgsqlConnection(url.ToNpgsqlConnectionString()))
            {
                await db.OpenAsync();
                await using var damage = new NpgsqlCommand("UPDATE release_chunks SET bytes = set_byte(bytes, 100, get_byte(bytes, 100) # 255) WHERE part = 1", db);
                Assert.Equal(1, await damage.ExecuteNonQueryAsync());
            }
            using var third = new ReleaseStore(Directory.CreateDirectory(Path.Combine(work, "relay-c")).FullName, new SharedReleaseBundles(url));
            var problems = new List<string>();
            Assert.Empty(third.ForVersion("2.0.0", problems));
            Assert.Contains(problems, p => p.Contains("in the database is damaged", StringComparison.Ordinal));
            Assert.False(File.Exists(Path.Combine(work, "relay-c", "releases", "2.0.0", "any.bundle")));
        }
        finally
        {
            await StopAsync(a, b, dirA, dirB, work);
        }
    }
}
