using System.Text.Json.Nodes;
using Pinhole.EdgeHost.Configuration;

namespace Pinhole.EdgeHost.Tests.Configuration;

public class ManagedConfigTests
{
    [Fact]
    public void A_valid_document_passes_and_gives_the_sections_it_manages()
    {
        var problems = ManagedConfig.Validate("""
            // comments are fine, as in edge.json
            { "cameras": [ { "name": "door", "source": "rtsp://cam/1" } ],
              "sensors": [ { "name": "t", "kind": "file", "path": "/sys/x", "interval": "5s" } ] }
            """, out var document);

        Assert.Empty(problems);
        var sections = ManagedConfig.ToSections(document!);
        Assert.Equal("door", sections["cameras"]![0]!["name"]!.GetValue<string>());
        // mqtt left out means none: the section is set to null, which removes it.
        Assert.True(sections.ContainsKey("mqtt"));
        Assert.Null(sections["mqtt"]);
        // relays left out means the device keeps its own.
        Assert.False(sections.ContainsKey("relays"));
    }

    [Fact]
    public void Problems_are_check_configs_own_lines_plus_keys_that_stay_on_the_device()
    {
        var problems = ManagedConfig.Validate("""
            { "token": "x", "web": {}, "relays": [], "cameras": [ { "name": "a", "source": "ftp://x" } ] }
            """, out var document);

        Assert.Null(document);
        Assert.Equal(
        [
            "token: cannot be managed from the relay (only cameras, sensors, mqtt, relays); it stays as set on the device",
            "web: cannot be managed from the relay (only cameras, sensors, mqtt, relays); it stays as set on the device",
            "relays: needs at least one relay URL",
            "cameras[0].source: unsupported scheme \"ftp\" (use rtsp:// or exec:)",
        ], problems.Select(p => p.ToString()));

        // The same camera in a whole edge.json gives the same line from the loader behind check-config.
        var full = EdgeConfigLoader.Parse("""{ "deviceId": "d", "token": "t", "relays": ["wss://r/uplink"], "cameras": [ { "name": "a", "source": "ftp://x" } ] }""");
        Assert.Equal(problems[3].ToString(), Assert.Single(full.Problems).ToString());
    }

    [Theory]
    [InlineData("", "invalid JSON")]
    [InlineData("[1, 2]", "expected a JSON object")]
    [InlineData("\"text\"", "expected a JSON object")]
    [InlineData("{ \"cameras\": 5 }", "cameras: expected an array")]
    public void Bad_input_is_one_clear_problem_never_an_exception(string json, string expected)
    {
        var problems = ManagedConfig.Validate(json, out _);
        Assert.Contains(problems, p => p.ToString().Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void An_oversized_document_is_refused_before_parsing()
    {
        var json = "{ \"cameras\": [], \"x\": \"" + new string('a', ManagedConfig.MaxBytes) + "\" }";
        Assert.StartsWith("the document is larger than", Assert.Single(ManagedConfig.Validate(json, out _)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_fleet_section_is_the_devices_own_and_validated()
    {
        var ok = EdgeConfigLoader.Parse("""{ "deviceId": "d", "token": "t", "relays": ["wss://r/uplink"], "fleet": { "allowExec": true, "connectivityGuard": "30s" } }""");
        Assert.True(ok.IsValid);
        Assert.True(ok.Config!.Fleet.AllowExec);
        var bad = EdgeConfigLoader.Parse("""{ "deviceId": "d", "token": "t", "relays": ["wss://r/uplink"], "fleet": { "allowExec": "yes", "connectivityGuard": "5m", "x": 1 } }""");
        Assert.Equal(["fleet.allowExec: expected true or false, got a string", "fleet.connectivityGuard: must be at most 2m (got \"5m\")", "fleet.x: unknown key \"x\""],
            bad.Problems.Select(p => p.ToString()));
        Assert.Contains("fleet: cannot be managed", ManagedConfig.Validate("""{ "fleet": { "allowExec": true } }""", out _)[0].ToString(), StringComparison.Ordinal);
    }
}
