using Pinhole.Relay.Configuration;
using Pinhole.Relay.Devices;

namespace Pinhole.Relay.Tests.Devices;

public sealed class DeviceRegistryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-devices-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Configured_devices_authenticate_with_their_token_only()
    {
        var registry = new DeviceRegistry(_dir, [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }]);
        Assert.True(await registry.AuthenticateAsync("gw1", "a-long-random-secret", default));
        Assert.False(await registry.AuthenticateAsync("gw1", "a-long-random-secreT", default));
        Assert.False(await registry.AuthenticateAsync("gw2", "a-long-random-secret", default));
    }

    [Fact]
    public async Task Added_devices_survive_reopening_and_store_no_plain_token()
    {
        var token = new DeviceRegistry(_dir, []).Add("cam-17");
        Assert.True(token.Length >= 40);

        var reopened = new DeviceRegistry(_dir, []);
        Assert.True(await reopened.AuthenticateAsync("cam-17", token, default));
        Assert.False(await reopened.AuthenticateAsync("cam-17", token + "x", default));
        Assert.Equal(["cam-17"], reopened.List());

        var db = await File.ReadAllBytesAsync(Path.Combine(_dir, "relay.db"));
        Assert.DoesNotContain(token, System.Text.Encoding.ASCII.GetString(db), StringComparison.Ordinal);
    }

    [Fact]
    public void Adding_twice_or_a_bad_id_is_a_clear_error()
    {
        var registry = new DeviceRegistry(_dir, [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }]);
        registry.Add("gw2");
        Assert.Contains("already exists", Assert.Throws<InvalidOperationException>(() => registry.Add("gw2")).Message, StringComparison.Ordinal);
        Assert.Contains("relay.json", Assert.Throws<InvalidOperationException>(() => registry.Add("gw1")).Message, StringComparison.Ordinal);
        Assert.Contains("must be", Assert.Throws<InvalidOperationException>(() => registry.Add("../x")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Removed_devices_can_no_longer_authenticate()
    {
        var registry = new DeviceRegistry(_dir, []);
        var token = registry.Add("gw9");
        Assert.True(registry.Remove("gw9"));
        Assert.False(registry.Remove("gw9"));
        Assert.False(await registry.AuthenticateAsync("gw9", token, default));
    }

    [Fact]
    public async Task Rotating_replaces_the_token_and_revoking_refuses_it_also_for_relay_json_devices()
    {
        var registry = new DeviceRegistry(_dir, [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }]);
        var stored = registry.Add("gw2");
        var stamps = registry.CredentialStamps();

        var rotated = registry.RotateToken("gw1");
        Assert.False(await registry.AuthenticateAsync("gw1", "a-long-random-secret", default));
        Assert.True(await registry.AuthenticateAsync("gw1", rotated, default));
        registry.Revoke("gw2");
        Assert.False(await registry.AuthenticateAsync("gw2", stored, default));

        // Both changes show in the stamps the relay compares to close live uplinks; a reopened registry agrees.
        var after = registry.CredentialStamps();
        Assert.NotEqual(stamps.GetValueOrDefault("gw1"), after["gw1"]);
        Assert.NotEqual(stamps["gw2"], after["gw2"]);
        var reopened = new DeviceRegistry(_dir, [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }]);
        Assert.True(await reopened.AuthenticateAsync("gw1", rotated, default));
        Assert.Equal(["gw1:relay.json+stored:False", "gw2:stored:True"], reopened.Describe().Select(d => $"{d.Id}:{d.Source}:{d.Revoked is not null}"));
        Assert.False(reopened.Remove("gw1"));
        Assert.Contains("no device", Assert.Throws<InvalidOperationException>(() => reopened.Revoke("nope")).Message, StringComparison.Ordinal);
    }
}
