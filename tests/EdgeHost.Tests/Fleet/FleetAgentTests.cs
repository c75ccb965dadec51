using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Fleet;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Tests.Support;
using System.Diagnostics.Metrics;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Tests.Fleet;

/// <summary>The device's fleet agent over a real config store and supervisor (with no pipelines), without an uplink.</summary>
public sealed class FleetAgentTests : IAsyncLifetime
{
    private const string OldRelay = "ws://127.0.0.1:9/uplink";
    private readonly TempConfigDir _dir = new();
    private readonly ConcurrentQueue<UplinkMessage> _sent = new();
    private PipelineSupervisor? _supervisor;
    private FleetAgent? _agent;

    private sealed class NoPipelines : IPipelineFactory
    {
        public IEnumerable<PipelineSpec> CreatePipelines(EdgeConfig config) => [];
    }

    private async Task<FleetAgent> StartAsync(string? relays = null)
    {
        var path = _dir.Write($$"""
            { "deviceId": "gw1", "token": "t", "relays": [ "{{relays ?? OldRelay}}" ],
              "dataDir": "{{Path.Combine(_dir.Path, "data")}}", "fleet": { "connectivityGuard": "10s" } }
            """);
        var config = EdgeConfigLoader.LoadFile(path).Config!;
        _supervisor = new PipelineSupervisor([new NoPipelines()], new Meter("test"), TimeProvider.System, NullLogger<PipelineSupervisor>.Instance, new SupervisorOptions());
        await _supervisor.StartAsync(config);
        var store = new EdgeConfigStore(path, config, _supervisor, NullLogger<EdgeConfigStore>.Instance);
        _agent = new FleetAgent(store, _supervisor, TimeProvider.System, NullLogger<FleetAgent>.Instance);
        return _agent;
    }

    private void Connect(FleetAgent agent) => agent.OnConnected(new Uri(OldRelay), m => { _sent.Enqueue(m); return true; });

    private async Task<ConfigReport> ReportAsync(ulong revision, int nth = 1)
    {
        for (var i = 0; i < 500; i++)
        {
            var reports = _sent.OfType<ConfigReport>().Where(r => r.Revision == revision).ToList();
            if (reports.Count >= nth) return reports[nth - 1];
            await Task.Delay(10);
        }
        throw new TimeoutException($"no report #{nth} for revision {revision}; sent: {string.Join(", ", _sent)}");
    }

    private JsonObject EdgeJson => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(_dir.Path, "edge.json")))!;

    [Fact]
    public async Task The_link_rate_goes_to_the_relay_in_the_status_when_it_moved_by_more_than_the_threshold_at_most_once_per_interval()
    {
        var agent = await StartAsync();
        var rate = 0L;
        agent.LinkRate = () => Interlocked.Read(ref rate);
        agent.LinkRateInterval = TimeSpan.FromMilliseconds(300);
        Connect(agent); // the status on connect carries the rate as it is (0: not measured yet)
        long[] Rates() => [.. _sent.OfType<DeviceStatus>().Select(s => JsonNode.Parse(s.Document)!["linkBytesPerSecond"]!.GetValue<long>())];
        async Task<long[]> WaitForAsync(long value)
        {
            for (var i = 0; i < 400 && !Rates().Contains(value); i++) await Task.Delay(25);
            return Rates();
        }
        Assert.Equal(0L, (await WaitForAsync(0)).First());

        Interlocked.Exchange(ref rate, 125_000);
        Assert.Contains(125_000L, await WaitForAsync(125_000)); // on a supervisor tick (1 s) once the interval passed

        // 5 % is noise, not news: nothing is sent over two ticks.
        var before = Rates().Length;
        Interlocked.Exchange(ref rate, 131_000);
        await Task.Delay(TimeSpan.FromSeconds(2.2));
        Assert.Equal(before, Rates().Length);

        Interlocked.Exchange(ref rate, 60_000);
        Assert.Equal(60_000L, (await WaitForAsync(60_000))[^1]);
        Assert.DoesNotContain(131_000L, Rates());
    }

    [Theory]
    [InlineData(-1, 0, true)]          // nothing sent yet
    [InlineData(0, 0, false)]
    [InlineData(0, 1000, true)]        // first measurement
    [InlineData(1000, 0, true)]        // lost the measurement
    [InlineData(100_000, 109_000, false)]
    [InlineData(100_000, 111_000, true)]
    [InlineData(100_000, 89_000, true)]
    public void Link_rate_moved_means_more_than_the_relative_change(long sent, long now, bool moved) =>
        Assert.Equal(moved, FleetAgent.LinkRateMoved(sent, now, 0.1));

    [Fact]
    public async Task A_revision_is_applied_once_its_outcome_repeated_on_resync_and_a_rejection_keeps_the_running_config()
    {
        var agent = await StartAsync();
        Connect(agent);

        agent.OnMessage(new ConfigPush(1, """{ "cameras": [ { "name": "door", "source": "rtsp://cam/1" } ] }"""));
        Assert.Equal(new ConfigReport(1, ConfigOutcome.Applied, ""), await ReportAsync(1));
        Assert.Equal("door", EdgeJson["cameras"]![0]!["name"]!.GetValue<string>());
        Assert.Equal((1L, "applied"), (agent.State.Revision, agent.State.Outcome));

        // The relay's resync after a reconnect: the same revision is answered, not applied again.
        File.WriteAllText(Path.Combine(_dir.Path, "edge.json"), File.ReadAllText(Path.Combine(_dir.Path, "edge.json")).Replace("rtsp://cam/1", "rtsp://cam/edited-locally", StringComparison.Ordinal));
        agent.OnMessage(new ConfigPush(1, """{ "cameras": [ { "name": "door", "source": "rtsp://cam/1" } ] }"""));
        Assert.Equal(ConfigOutcome.Applied, (await ReportAsync(1, nth: 2)).Outcome);
        Assert.Equal("rtsp://cam/edited-locally", EdgeJson["cameras"]![0]!["source"]!.GetValue<string>());

        // exec: is refused by the device's own rule; garbage by check-config's; the running config stays.
        agent.OnMessage(new ConfigPush(2, """{ "cameras": [ { "name": "pi", "source": "exec:rpicam-vid -o -" } ] }"""));
        var rejected = await ReportAsync(2);
        Assert.Equal(ConfigOutcome.Rejected, rejected.Outcome);
        Assert.StartsWith("cameras[0].source: this device does not accept exec: sources", rejected.Detail, StringComparison.Ordinal);
        agent.OnMessage(new ConfigPush(3, "{ not json"));
        Assert.StartsWith("invalid JSON", (await ReportAsync(3)).Detail, StringComparison.Ordinal);
        Assert.Equal("door", EdgeJson["cameras"]![0]!["name"]!.GetValue<string>());

        // The outcome survives a restart of the agent (the file in dataDir).
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir.Path, "data", "fleet-state.json")))!;
        Assert.Equal((3L, "rejected"), (state["revision"]!.GetValue<long>(), state["outcome"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_guard_interrupted_by_a_restart_still_reverts_and_the_revert_is_reported_on_connect()
    {
        // As left by a device killed while guarding revision 7, whose relay list reaches nothing, after the deadline.
        Directory.CreateDirectory(Path.Combine(_dir.Path, "data"));
        File.WriteAllText(Path.Combine(_dir.Path, "data", "fleet-state.json"), $$"""
            { "revision": 7, "outcome": "guarding", "detail": "", "at": "2026-01-01T00:00:00Z", "guardUntil": "2026-01-01T00:01:30Z",
              "previous": { "relays": [ "{{OldRelay}}" ], "cameras": [ { "name": "door", "source": "rtsp://cam/1" } ], "sensors": null, "mqtt": null } }
            """);
        var agent = await StartAsync(relays: "ws://127.0.0.1:1/nowhere");

        for (var i = 0; i < 500 && agent.State.Outcome != "reverted"; i++) await Task.Delay(10);
        Assert.Equal("reverted", agent.State.Outcome);
        Assert.Equal([OldRelay], EdgeJson["relays"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.Equal("door", EdgeJson["cameras"]![0]!["name"]!.GetValue<string>());

        Connect(agent);
        var report = await ReportAsync(7);
        Assert.Equal(ConfigOutcome.Reverted, report.Outcome);
        Assert.Contains("no relay could be reached within 10s", report.Detail, StringComparison.Ordinal);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_agent is not null) await _agent.DisposeAsync();
        if (_supervisor is not null) await _supervisor.DisposeAsync();
        _dir.Dispose();
    }
}
