using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Tests.Fleet;
using Pinhole.Relay.Updates;
using Pinhole.Transport.Updates;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Tests.Updates;

/// <summary>
/// One version built for linux-arm64 and linux-x64 on one in-process relay: a rollout offers each hand-written device
/// (the wire messages an edge sends) the bundle of the architecture in its agent string, and serves it its bytes.
/// </summary>
public sealed class MixedArchitectureRolloutTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private const string Secret = "a-long-random-secret";
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-mixed-arch-").FullName;
    private readonly string _key = ReleasePacker.CreateKeyPair().PrivateKeyPem;
    private RelayApp _relay = null!;
    private HttpClient _api = null!;

    public async Task InitializeAsync()
    {
        _relay = await RelayApp.StartAsync(new RelayConfig
        {
            Http = "http://127.0.0.1:0",
            Rtsp = "127.0.0.1:0",
            DataDir = _dir,
            Devices = [.. new[] { "pi", "nuc", "old" }.Select(id => new DeviceConfig { Id = id, Token = Secret })],
        });
        _api = new HttpClient { BaseAddress = _relay.HttpUri };
        _api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            ApiTokens.Create(_relay.Services.GetRequiredService<IFleetStore>(), "ci", DateTimeOffset.UtcNow));
    }

    public async Task DisposeAsync()
    {
        _api.Dispose();
        await _relay.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private UpdateService Updates => _relay.Services.GetRequiredService<UpdateService>();

    /// <summary>Packs a tiny release for <paramref name="arch"/> and stores it on the relay the way <c>releases add</c> does.</summary>
    private AddedRelease Add(string version, string arch)
    {
        var folder = Directory.CreateDirectory(Path.Combine(_dir, $"build-{version}-{arch}")).FullName;
        File.WriteAllText(Path.Combine(folder, "pinhole-edge"), $"#!/bin/sh\n# {arch} build {Guid.NewGuid()}\nexec sleep 3600\n"); // each build differs
        var bundle = Path.Combine(_dir, $"{version}-{arch}.bundle");
        ReleasePacker.Pack(folder, version, _key, bundle, arch);
        return Updates.Releases.Add(bundle);
    }

    private async Task<JsonNode> GetAsync(string path) => JsonNode.Parse(await _api.GetStringAsync(new Uri(path, UriKind.Relative)))!;

    private async Task<JsonNode> StagedAsync(string device) =>
        (await GetAsync("/api/rollouts"))[0]!["staged"]!.AsArray().Single(s => s!["device"]!.GetValue<string>() == device)!;

    /// <summary>The device asks for the first 64 KiB and gets exactly those bytes of <paramref name="expected"/>.</summary>
    private static async Task AssertServesAsync(FakeDevice device, string version, StoredRelease expected)
    {
        await device.SendAsync(new UpdateRequest(version, 0, 64 * 1024));
        var chunk = await device.NextAsync<UpdateChunk>(Wait);
        var bytes = File.ReadAllBytes(expected.Path);
        Assert.Equal((version, 0UL), (chunk.Version, chunk.Offset));
        Assert.Equal(bytes.AsSpan(0, Math.Min(bytes.Length, 64 * 1024)).ToArray(), chunk.Data.ToArray());
    }

    [Fact]
    public async Task Each_device_is_offered_the_bundle_of_its_architecture_and_an_edge_that_does_not_say_waits_with_a_reason()
    {
        var arm = Add("2.0.0", "linux-arm64").Release;
        var x64 = Add("2.0.0", "linux-x64").Release;
        Assert.NotEqual(arm.Sha256, x64.Sha256);
        var releases = (await GetAsync("/api/releases")).AsArray();
        Assert.Equal(["2.0.0 linux-arm64", "2.0.0 linux-x64"], releases.Select(r => $"{r!["version"]} {r["architecture"]}"));

        using (var start = await _api.PostAsync(new Uri("/api/rollouts", UriKind.Relative),
            new StringContent("""{ "version": "2.0.0", "all": true }""", Encoding.UTF8, "application/json")))
            Assert.True(start.IsSuccessStatusCode, await start.Content.ReadAsStringAsync());

        await using var pi = await FakeDevice.ConnectAsync(_relay.UplinkUri, "pi", Secret, "pinhole-edge/1.0.0 (linux-arm64)");
        await using var nuc = await FakeDevice.ConnectAsync(_relay.UplinkUri, "nuc", Secret, "pinhole-edge/1.0.0 (linux-x64)");
        await using var old = await FakeDevice.ConnectAsync(_relay.UplinkUri, "old", Secret, "pinhole-edge/1.0.0");

        var piOffer = await pi.NextAsync<UpdateOffer>(Wait);
        Assert.Equal(("2.0.0", "linux-arm64", (ulong)arm.Size), (piOffer.Version, piOffer.Architecture, piOffer.Size));
        Assert.Equal(arm.Sha256, piOffer.Sha256.ToArray());
        var nucOffer = await nuc.NextAsync<UpdateOffer>(Wait);
        Assert.Equal(("2.0.0", "linux-x64", (ulong)x64.Size), (nucOffer.Version, nucOffer.Architecture, nucOffer.Size));
        Assert.Equal(x64.Sha256, nucOffer.Sha256.ToArray());
        // What each downloads is the bundle it was offered.
        await AssertServesAsync(pi, "2.0.0", arm);
        await AssertServesAsync(nuc, "2.0.0", x64);
        Assert.Equal("linux-arm64", (await GetAsync("/api/devices/pi"))["architecture"]!.GetValue<string>());
        Assert.Null((await GetAsync("/api/devices/old"))["architecture"]);

        // The edge that does not report its architecture is offered neither; its state says why, and the rollout goes on.
        var waiting = await PollAsync(() => StagedAsync("old"), s => s["state"]!.GetValue<string>() == UpdateService.NoBundle);
        Assert.StartsWith("no bundle for this architecture", waiting["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("linux-arm64, linux-x64", waiting["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("offered", (await StagedAsync("pi"))["state"]!.GetValue<string>());
        Assert.Equal("active", (await GetAsync("/api/rollouts"))[0]!["state"]!.GetValue<string>());
        while (old.Received.Reader.TryRead(out var early)) Assert.IsNotType<UpdateOffer>(early);

        // An "any" build of the same version: the old edge gets that one at the next check; the others keep theirs.
        var any = Add("2.0.0", "any");
        Assert.Null(any.Replaced);
        var oldOffer = await old.NextAsync<UpdateOffer>(Wait);
        Assert.Equal(("2.0.0", "any"), (oldOffer.Version, oldOffer.Architecture));
        Assert.Equal(any.Release.Sha256, oldOffer.Sha256.ToArray());
        await AssertServesAsync(old, "2.0.0", any.Release);
        Assert.Equal("offered", (await StagedAsync("old"))["state"]!.GetValue<string>());
        await AssertServesAsync(pi, "2.0.0", arm);

        // Adding the arm64 build again replaces it (and says so), and the x64 one stays.
        var again = Add("2.0.0", "linux-arm64");
        Assert.Equal(arm.Sha256, again.Replaced?.Sha256);
        Assert.Equal(["2.0.0 any", "2.0.0 linux-arm64", "2.0.0 linux-x64"],
            (await GetAsync("/api/releases")).AsArray().Select(r => $"{r!["version"]} {r["architecture"]}"));
    }

    private static async Task<JsonNode> PollAsync(Func<Task<JsonNode>> get, Func<JsonNode, bool> until)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            var node = await get();
            if (until(node)) return node;
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out; last: {node.ToJsonString()}");
            await Task.Delay(100);
        }
    }
}
