using System.Text.Json;
using System.Text.RegularExpressions;
using Pinhole.EdgeHost.Configuration;
using Pinhole.Testing;

namespace Pinhole.Integration.Tests.Telemetry;

// The publisher (a child process running the telemetry pipelines) against a real Mosquitto,
// observed with mosquitto_sub: what Home Assistant and dashboards will actually see.
[Collection("telemetry-mosquitto")]
public sealed partial class TelemetryMosquittoTests : IAsyncLifetime
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("telemetry-it-");
    private MosquittoBroker? _broker;
    private TelemetryHostProcess? _host;

    public async Task InitializeAsync()
    {
        if (MosquittoBroker.SkipReason is null)
            _broker = await MosquittoBroker.StartAsync(new MosquittoOptions { Persistence = true });
    }

    public async Task DisposeAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
        if (_broker is not null) await _broker.DisposeAsync();
        _dir.Delete(true);
    }

    private MosquittoBroker Broker => _broker!;

    private EdgeConfig Config(bool websocket = true)
    {
        var sensorFile = Path.Combine(_dir.FullName, "thermal_zone0", "temp");
        Directory.CreateDirectory(Path.GetDirectoryName(sensorFile)!);
        File.WriteAllText(sensorFile, "23400\n");
        return new EdgeConfig
        {
            DeviceId = "gw1",
            DataDir = Path.Combine(_dir.FullName, "data"),
            Sensors = [new SensorConfig { Name = "cpu_temp", Kind = "file", Path = sensorFile, Scale = 0.001, Unit = "°C", Interval = "200ms" }],
            Mqtt = new MqttConfig { Url = (websocket ? Broker.WebSocketUrl : Broker.TcpUrl).ToString(), TopicPrefix = "pinhole" },
        };
    }

    private async Task<TelemetryHostProcess> StartHostAsync(EdgeConfig config)
    {
        _host = new TelemetryHostProcess(Path.Combine(_dir.FullName, "host"), config);
        await _host.StartAsync();
        return _host;
    }

    /// <summary>Retained messages only: a fresh subscriber gets them at once, or nothing.</summary>
    private async Task<List<string>> RetainedAsync(string topic, TimeSpan? wait = null)
    {
        var args = Broker.ClientArguments().Concat(["-v", "--retained-only", "-t", topic, "-W", ((int)(wait ?? TimeSpan.FromSeconds(2)).TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        var result = await Command.RunAsync("mosquitto_sub", args, TimeSpan.FromSeconds(20));
        return [.. result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries)];
    }

    private async Task<List<string>> EventuallyRetainedAsync(string topic, Func<List<string>, bool> ok, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var got = await RetainedAsync(topic, TimeSpan.FromSeconds(1));
            if (ok(got)) return got;
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"{what}: retained on {topic} is [{string.Join(" | ", got)}]\n{_host?.Output}\n{Broker.Log}");
        }
    }

    [GeneratedRegex("""^pinhole/gw1/sensors/cpu_temp \{"value": 23\.4, "unit": "°C", "ts": "(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)", "seq": (\d+)\}$""")]
    private static partial Regex ReadingLine();

    [RequiresFact(Needs.Mosquitto)]
    public async Task Readings_status_and_discovery_are_published_exactly_as_the_interface_says_and_the_will_says_offline_after_kill_9()
    {
        var host = await StartHostAsync(Config());
        var lines = await Broker.ReceiveAsync("pinhole/gw1/sensors/cpu_temp", 3, TimeSpan.FromSeconds(30));
        Assert.True(lines.Count == 3, $"got {lines.Count} readings\n{host.Output}\n{Broker.Log}");
        var seqs = new List<long>();
        foreach (var line in lines)
        {
            var m = ReadingLine().Match(line);
            Assert.True(m.Success, $"not the interface's payload: {line}");
            var ts = DateTimeOffset.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(ts, DateTimeOffset.UtcNow.AddMinutes(-2), DateTimeOffset.UtcNow.AddSeconds(5));
            seqs.Add(long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
        }
        Assert.Equal([seqs[0], seqs[0] + 1, seqs[0] + 2], seqs);

        Assert.Equal(["pinhole/gw1/status online"], await RetainedAsync("pinhole/gw1/status"));

        var discovery = await RetainedAsync("homeassistant/sensor/pinhole_gw1_cpu_temp/config");
        Assert.Single(discovery);
        using (var doc = JsonDocument.Parse(discovery[0]["homeassistant/sensor/pinhole_gw1_cpu_temp/config ".Length..]))
        {
            var d = doc.RootElement;
            Assert.Equal("cpu_temp", d.GetProperty("name").GetString());
            Assert.Equal("pinhole/gw1/sensors/cpu_temp", d.GetProperty("state_topic").GetString());
            Assert.Equal("°C", d.GetProperty("unit_of_measurement").GetString());
            Assert.Equal("{{ value_json.value }}", d.GetProperty("value_template").GetString());
            Assert.Equal("pinhole_gw1_cpu_temp", d.GetProperty("unique_id").GetString());
            Assert.Equal("pinhole/gw1/status", d.GetProperty("availability_topic").GetString());
            Assert.Equal("pinhole_gw1", d.GetProperty("device").GetProperty("identifiers")[0].GetString());
        }

        // Abrupt death: no DISCONNECT packet, so the broker publishes the retained will.
        await host.KillAsync();
        await EventuallyRetainedAsync("pinhole/gw1/status", l => l.SequenceEqual(["pinhole/gw1/status offline"]), "the will after kill -9");

        // Back again: online again, and seq continued from disk.
        await host.StartAsync();
        await EventuallyRetainedAsync("pinhole/gw1/status", l => l.SequenceEqual(["pinhole/gw1/status online"]), "online after restart");
        var later = await Broker.ReceiveAsync("pinhole/gw1/sensors/cpu_temp", 1, TimeSpan.FromSeconds(30));
        var laterSeq = long.Parse(ReadingLine().Match(later.Single()).Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(laterSeq > seqs[^1], $"seq {laterSeq} after restart, {seqs[^1]} before");

        // A clean stop says offline itself.
        await host.StopAsync();
        await EventuallyRetainedAsync("pinhole/gw1/status", l => l.SequenceEqual(["pinhole/gw1/status offline"]), "offline after a clean stop");
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task Discovery_is_published_again_when_Home_Assistant_announces_online()
    {
        const string topic = "homeassistant/sensor/pinhole_gw1_cpu_temp/config";
        await StartHostAsync(Config(websocket: false));
        await EventuallyRetainedAsync(topic, l => l.Count == 1, "first discovery");

        // Forget it on the broker (an empty retained message deletes a retained one).
        await Command.RunCheckedAsync("mosquitto_pub", Broker.ClientArguments().Concat(["-t", topic, "-r", "-n"]), TimeSpan.FromSeconds(10));
        Assert.Empty(await RetainedAsync(topic));

        // Home Assistant going offline is no reason to re-send.
        await Broker.PublishAsync("homeassistant/status", "offline");
        await Task.Delay(1000);
        Assert.Empty(await RetainedAsync(topic));

        await Broker.PublishAsync("homeassistant/status", "online");
        var again = await EventuallyRetainedAsync(topic, l => l.Count == 1, "discovery after homeassistant/status online");
        Assert.Contains("\"unique_id\":\"pinhole_gw1_cpu_temp\"", again[0], StringComparison.Ordinal);
    }

    [RequiresFact(Needs.Mosquitto)]
    public async Task A_topic_the_broker_refuses_does_not_block_the_other_sensors()
    {
        // A broker whose ACL lets this device publish everything but one sensor's topic.
        await _broker!.DisposeAsync();
        var acl = Path.Combine(_dir.FullName, "acl");
        File.WriteAllText(acl, "topic readwrite #\ntopic deny pinhole/gw1/sensors/secret\n");
        _broker = await MosquittoBroker.StartAsync(new MosquittoOptions { ExtraConfig = [$"acl_file {acl}"] });

        var config = Config(websocket: false);
        var secretFile = Path.Combine(_dir.FullName, "secret");
        File.WriteAllText(secretFile, "1\n");
        config.Sensors.Add(new SensorConfig { Name = "secret", Kind = "file", Path = secretFile, Interval = "200ms" });
        var host = await StartHostAsync(config);

        var lines = await Broker.ReceiveAsync("pinhole/gw1/sensors/cpu_temp", 10, TimeSpan.FromSeconds(30));
        Assert.True(lines.Count == 10, $"got {lines.Count} readings\n{host.Output}\n{Broker.Log}");
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!host.Output.Contains("secret #", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
            await Task.Delay(100);
        Assert.Matches(@"Telemetry reading secret #\d+ dropped: .*reason code 0x87", host.Output);
        Assert.DoesNotContain("connection lost", host.Output, StringComparison.Ordinal);
    }
}
