using PasswordHash = Pinhole.EdgeHost.Web.PasswordHash;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Tests.Support;

namespace Pinhole.EdgeHost.Tests.Configuration;

public class CommandLineTests
{
    private const string BadConfig = """
        {
          "deviceId": "gw 1",
          "relays": [ "http://relay.example.com/uplink" ],
          "cameras": [ { "name": "door", "source": "rtsp://u:p@192.168.1.64/1" }, { "name": "x", "source": "http://cam/1" } ],
          "sensors": [ { "name": "t", "kind": "file", "path": "/x", "interval": "soon" } ],
          "mqtt": { "url": "wss://broker/mqtt", "qos": 2 }
        }
        """;

    private static readonly string[] ExpectedLines =
    [
        "token: is required",
        "deviceId: must be 1-64 characters of A-Z a-z 0-9 _ - (got \"gw 1\")",
        "relays[0]: unsupported scheme \"http\" (use wss://, or ws:// for testing)",
        "cameras[1].source: unsupported scheme \"http\" (use rtsp:// or exec:)",
        "sensors[0].interval: \"soon\" is not a duration (use e.g. 5s, 20ms, 1m)",
        "mqtt.qos: unknown key \"qos\"",
    ];

    [Fact]
    public async Task Check_config_as_a_process_prints_every_problem_and_exits_non_zero_without_a_stack_trace()
    {
        using var dir = new TempConfigDir();
        var file = dir.Write(BadConfig);
        var (exit, stdout, stderr) = await EdgeProcess.RunAsync("check-config", file);

        Assert.Equal(1, exit);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(ExpectedLines.Order(StringComparer.Ordinal), lines.Order(StringComparer.Ordinal));
        Assert.DoesNotContain("   at ", stdout + stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", stdout + stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Running_with_a_bad_config_as_a_process_exits_non_zero_with_one_line_per_problem()
    {
        using var dir = new TempConfigDir();
        var file = dir.Write(BadConfig);
        var (exit, _, stderr) = await EdgeProcess.RunAsync("--config", file);

        Assert.Equal(1, exit);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(ExpectedLines.Length, lines.Length);
        Assert.All(ExpectedLines, e => Assert.Contains($"pinhole-edge: {file}: {e}", lines));
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_config_names_a_bad_camera_transport_in_one_line()
    {
        using var dir = new TempConfigDir();
        var file = dir.Write("""
            { "deviceId": "gw1", "token": "t", "relays": [ "wss://relay/uplink" ],
              "cameras": [ { "name": "door", "source": "rtsp://192.168.1.64/1", "transport": "udp" },
                           { "name": "yard", "source": "rtsp://192.168.1.65/1", "transport": "multicast" } ] }
            """);
        var (exit, stdout, stderr) = await EdgeProcess.RunAsync("check-config", file);

        Assert.Equal(1, exit);
        Assert.Equal("cameras[1].transport: must be \"auto\", \"tcp\" or \"udp\" (got \"multicast\")", stdout.Trim());
        Assert.DoesNotContain("Exception", stdout + stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Hash_password_prints_a_hash_the_page_accepts()
    {
        var (exit, stdout, _) = await EdgeProcess.RunWithInputAsync("s3cret pass\n", "hash-password");
        Assert.Equal(0, exit);
        var hash = stdout.Trim();
        Assert.StartsWith(PasswordHash.Prefix, hash, StringComparison.Ordinal);
        Assert.True(PasswordHash.TryParse(hash, out var parsed));
        Assert.True(parsed.Verify("s3cret pass"));
        Assert.False(parsed.Verify("s3cret"));
        Assert.Empty(EdgeConfigLoader.Parse($$"""{ "deviceId": "a", "token": "t", "relays": ["wss://r/u"], "web": { "password": "{{hash}}" } }""").Problems);
    }

    [Fact]
    public async Task A_missing_config_file_is_one_line_and_exit_1()
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        var exit = await Program.RunAsync(["--config", "/nonexistent/edge.json"], output, errors, null);
        Assert.Equal(Program.ExitConfigInvalid, exit);
        Assert.Equal("pinhole-edge: /nonexistent/edge.json: file not found", errors.ToString().Trim());
    }

    [Fact]
    public async Task Check_config_accepts_a_good_file()
    {
        using var dir = new TempConfigDir();
        var file = dir.Write(TempConfigDir.Sample());
        var output = new StringWriter();
        var exit = await Program.RunAsync(["check-config", file], output, new StringWriter(), null);
        Assert.Equal(0, exit);
        Assert.Equal($"{file}: ok", output.ToString().Trim());
    }

    [Theory]
    [InlineData(new[] { "--help" }, 0)]
    [InlineData(new string[0], Program.ExitUsage)]
    [InlineData(new[] { "check-config" }, Program.ExitUsage)]
    [InlineData(new[] { "--config" }, Program.ExitUsage)]
    [InlineData(new[] { "--frobnicate" }, Program.ExitUsage)]
    public async Task Usage_errors_and_help(string[] args, int expectedExit)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        var exit = await Program.RunAsync(args, output, errors, null);
        Assert.Equal(expectedExit, exit);
        if (exit == 0) Assert.Contains("check-config FILE", output.ToString(), StringComparison.Ordinal);
        else Assert.Single(errors.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task Version_prints_the_release_version()
    {
        var output = new StringWriter();
        var exit = await Program.RunAsync(["--version"], output, new StringWriter(), null);
        Assert.Equal(0, exit);
        Assert.Equal($"pinhole-edge {Pinhole.EdgeHost.Updates.ReleaseInfo.Version}", output.ToString().Trim());
    }

    [Theory]
    [InlineData("--config=/nonexistent/edge.json", null)]
    [InlineData("-c", "/nonexistent/edge.json")]
    public async Task The_config_flag_also_takes_the_equals_form_and_the_short_name(string first, string? second)
    {
        var errors = new StringWriter();
        var exit = await Program.RunAsync(second is null ? [first] : [first, second], new StringWriter(), errors, null);
        Assert.Equal(Program.ExitConfigInvalid, exit);
        Assert.Equal("pinhole-edge: /nonexistent/edge.json: file not found", errors.ToString().Trim());
    }

    [Theory]
    [InlineData(new[] { "--frobnicate" }, "--frobnicate")]
    [InlineData(new[] { "check-config", "a.json", "b.json" }, "b.json")]
    [InlineData(new[] { "--version", "x" }, "'x'")]
    public async Task A_bad_command_line_names_the_problem_in_one_line_and_never_runs_anything(string[] args, string named)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        var exit = await Program.RunAsync(args, output, errors, null);
        Assert.Equal(Program.ExitUsage, exit);
        Assert.Equal("", output.ToString());
        var line = Assert.Single(errors.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("pinhole-edge: ", line, StringComparison.Ordinal);
        Assert.Contains(named, line, StringComparison.Ordinal);
        Assert.EndsWith("see pinhole-edge --help", line.TrimEnd(), StringComparison.Ordinal);
    }
}
