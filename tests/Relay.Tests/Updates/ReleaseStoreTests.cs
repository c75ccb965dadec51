using Pinhole.Relay.Fleet;
using Pinhole.Relay.Updates;
using Pinhole.Transport.Updates;

namespace Pinhole.Relay.Tests.Updates;

/// <summary>The relay's release store: one bundle per version and architecture, which bundle a device is offered, and bundles an older relay stored.</summary>
public sealed class ReleaseStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-releases-").FullName;
    private readonly string _key = ReleasePacker.CreateKeyPair().PrivateKeyPem;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string DataDir => Path.Combine(_dir, "data");

    /// <summary>Packs a tiny release (a script whose text names the version, architecture and <paramref name="tag"/>) into a bundle file.</summary>
    private string Pack(string version, string arch, string tag = "")
    {
        var folder = Directory.CreateDirectory(Path.Combine(_dir, $"build-{version}-{arch}-{tag}")).FullName;
        File.WriteAllText(Path.Combine(folder, "pinhole-edge"), $"#!/bin/sh\necho {version} {arch} {tag}\n");
        var bundle = Path.Combine(_dir, $"{version}-{arch}-{tag}.bundle");
        ReleasePacker.Pack(folder, version, _key, bundle, arch);
        return bundle;
    }

    [Fact]
    public void Two_architectures_of_one_version_are_both_kept_and_adding_the_same_pair_again_replaces_it()
    {
        var store = new ReleaseStore(DataDir);
        var arm = store.Add(Pack("2.0.0", "linux-arm64"));
        var x64 = store.Add(Pack("2.0.0", "linux-x64"));
        Assert.Null(arm.Replaced);
        Assert.Null(x64.Replaced);
        Assert.Equal(["linux-arm64", "linux-x64"], store.ForVersion("2.0.0").Select(r => r.Manifest.Architecture));
        Assert.NotEqual(arm.Release.Sha256, x64.Release.Sha256);

        var again = store.Add(Pack("2.0.0", "linux-arm64", "rebuilt"));
        Assert.NotNull(again.Replaced);
        Assert.Equal(arm.Release.Sha256, again.Replaced!.Sha256);
        Assert.NotEqual(arm.Release.Sha256, again.Release.Sha256);
        Assert.Equal(again.Release.Sha256, store.Get("2.0.0", "linux-arm64")!.Sha256);
        Assert.Equal(x64.Release.Sha256, store.Get("2.0.0", "linux-x64")!.Sha256); // the other architecture untouched

        store.Add(Pack("1.0.0", "any"));
        // A fresh store (the CLI, a restarted relay) sees the same, oldest version first, then by architecture.
        Assert.Equal(["1.0.0 any", "2.0.0 linux-arm64", "2.0.0 linux-x64"],
            new ReleaseStore(DataDir).List().Select(r => $"{r.Manifest.Version} {r.Manifest.Architecture}"));
    }

    [Theory]
    [InlineData("linux-arm64,linux-x64", "linux-arm64", "linux-arm64")]
    [InlineData("linux-arm64,linux-x64", "linux-x64", "linux-x64")]
    [InlineData("linux-arm64,linux-x64,any", "linux-x64", "linux-x64")] // its own before any
    [InlineData("linux-arm64,any", "linux-x64", "any")]
    [InlineData("linux-arm64", "linux-x64", null)]
    [InlineData("linux-arm64,linux-x64", null, null)] // an older edge that does not say, and two to choose from
    [InlineData("linux-arm64,linux-x64,any", null, "any")]
    [InlineData("linux-x64", null, "linux-x64")] // the only one (the device refuses it if it is the wrong one)
    public void A_device_is_offered_its_own_architecture_else_any_else_nothing_with_a_reason(string stored, string? device, string? offered)
    {
        var store = new ReleaseStore(DataDir);
        foreach (var arch in stored.Split(',')) store.Add(Pack("3.1.0", arch));
        var chosen = store.Choose("3.1.0", device, out var problem);
        Assert.Equal(offered, chosen?.Manifest.Architecture);
        if (offered is null)
        {
            Assert.StartsWith("no bundle for this architecture", problem, StringComparison.Ordinal);
            Assert.Contains(stored.Split(',')[0], problem, StringComparison.Ordinal);
        }
        else
        {
            Assert.Null(problem);
        }
        Assert.Null(store.Choose("9.9.9", device, out problem));
        Assert.Equal("release 9.9.9 is not stored on this relay", problem);
    }

    [Fact]
    public void A_bundle_an_older_relay_stored_as_VERSION_bundle_is_moved_to_its_architecture_and_still_offered()
    {
        Directory.CreateDirectory(Path.Combine(DataDir, "releases"));
        var legacy = Path.Combine(DataDir, "releases", "1.5.0.bundle");
        File.Copy(Pack("1.5.0", "linux-x64"), legacy);
        var damaged = Path.Combine(DataDir, "releases", "1.6.0.bundle");
        File.WriteAllText(damaged, "not a bundle");

        var store = new ReleaseStore(DataDir);
        var listed = Assert.Single(store.List());
        Assert.Equal(("1.5.0", "linux-x64"), (listed.Manifest.Version, listed.Manifest.Architecture));
        Assert.Equal(Path.Combine(DataDir, "releases", "1.5.0", "linux-x64.bundle"), listed.Path);
        Assert.False(File.Exists(legacy));
        Assert.True(File.Exists(damaged)); // left alone, offered to nobody
        Assert.Equal(listed.Sha256, store.Choose("1.5.0", null, out _)!.Sha256);

        // Adding the other architecture now keeps both.
        store.Add(Pack("1.5.0", "linux-arm64"));
        Assert.Equal(["linux-arm64", "linux-x64"], new ReleaseStore(DataDir).List().Select(r => r.Manifest.Architecture));
    }

    [Fact]
    public void A_file_that_is_not_the_version_and_architecture_its_name_says_is_not_offered()
    {
        var store = new ReleaseStore(DataDir);
        store.Add(Pack("4.0.0", "linux-x64"));
        // Someone copied the x64 bundle over the arm64 name by hand.
        Directory.CreateDirectory(Path.Combine(DataDir, "releases", "4.0.0"));
        File.Copy(Pack("4.0.0", "linux-x64"), Path.Combine(DataDir, "releases", "4.0.0", "linux-arm64.bundle"));
        var problems = new List<string>();
        Assert.Equal(["linux-x64"], new ReleaseStore(DataDir).ForVersion("4.0.0", problems).Select(r => r.Manifest.Architecture));
        Assert.Contains("holds 4.0.0 for linux-x64", Assert.Single(problems), StringComparison.Ordinal);
        Assert.Null(new ReleaseStore(DataDir).Choose("4.0.0", "linux-arm64", out var problem));
        Assert.StartsWith("no bundle for this architecture (linux-arm64)", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pinhole-edge/2.1.0 (linux-arm64)", "2.1.0", "linux-arm64")]
    [InlineData("pinhole-edge/2.1.0-3-gabc1234 (linux-x64)", "2.1.0-3-gabc1234", "linux-x64")]
    [InlineData("pinhole-edge/2.1.0", "2.1.0", null)] // an edge older than the architecture in the agent
    [InlineData("test-device/1", "1", null)]
    [InlineData("pinhole-edge/2.1.0 (Linux ARM; <script>)", "2.1.0", null)]
    [InlineData("pinhole-edge", null, null)]
    [InlineData("", null, null)]
    [InlineData(null, null, null)]
    public void The_agent_string_gives_the_version_and_the_architecture(string? agent, string? version, string? arch)
    {
        Assert.Equal(version, FleetApi.AgentVersion(agent));
        Assert.Equal(arch, FleetApi.AgentArchitecture(agent));
    }
}
