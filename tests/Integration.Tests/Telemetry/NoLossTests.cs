using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Telemetry.Outbox;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Telemetry;

// "Nothing promised is ever lost": a sensor at 20 readings per second for a minute while the
// broker is stopped for 10 s and the publisher is killed with SIGKILL (while it drains the
// outage's backlog) and restarted; a subscriber
// with a persistent QoS 1 session must see every seq from the first to the last. Duplicates are
// allowed (QoS 1, resend after reconnect), gaps are not.
[Collection("telemetry-mosquitto")]
public sealed partial class NoLossTests(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Length of the run in seconds; PINHOLE_NOLOSS_SECONDS overrides (default 60).</summary>
    private static readonly int DurationSeconds =
        int.TryParse(Environment.GetEnvironmentVariable("PINHOLE_NOLOSS_SECONDS"), CultureInfo.InvariantCulture, out var s) && s >= 12 ? s : 60;

    private const string Sensor = "fast";
    private const int ReadingsPerSecond = 20;
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("telemetry-noloss-");
    private MosquittoBroker? _broker;
    private TelemetryHostProcess? _host;
    private PeerProcess? _subscriber;

    public async Task InitializeAsync()
    {
        if (MosquittoBroker.SkipReason is null)
        {
            _broker = await MosquittoBroker.StartAsync(new MosquittoOptions
            {
                Persistence = true,
                // The subscriber must not lose queued messages to Mosquitto's default cap of 1000.
                ExtraConfig = ["max_queued_messages 0"],
            });
        }
    }

    public async Task DisposeAsync()
    {
        if (_subscriber is not null) await _subscriber.DisposeAsync();
        if (_host is not null) await _host.DisposeAsync();
        if (_broker is not null) await _broker.DisposeAsync();
        _dir.Delete(true);
    }

    [GeneratedRegex("""^pinhole/gw1/sensors/fast \{"value": 21\.5, "unit": "°C", "ts": "[^"]+", "seq": (\d+)\}$""", RegexOptions.Multiline)]
    private static partial Regex FastReading();

    [RequiresFact(Needs.Mosquitto)]
    [Trait("Category", "Long")]
    public async Task Every_seq_arrives_through_a_broker_outage_and_a_kill_9_of_the_publisher()
    {
        var broker = _broker!;
        var sensorFile = Path.Combine(_dir.FullName, "sensor");
        File.WriteAllText(sensorFile, "21500\n");
        var dataDir = Path.Combine(_dir.FullName, "data");
        EdgeConfig Config(bool withSensor) => new()
        {
            DeviceId = "gw1",
            DataDir = dataDir,
            Sensors = withSensor
                ? [new SensorConfig { Name = Sensor, Kind = "file", Path = sensorFile, Scale = 0.001, Unit = "°C", Interval = $"{1000 / ReadingsPerSecond}ms" }]
                : [],
            Mqtt = new MqttConfig { Url = broker.WebSocketUrl.ToString(), TopicPrefix = "pinhole" },
        };

        await StartSubscriberAsync(broker);
        _host = new TelemetryHostProcess(Path.Combine(_dir.FullName, "host"), Config(withSensor: true));
        var clock = Stopwatch.StartNew();
        await _host.StartAsync();
        Log($"publisher started; run of {DurationSeconds} s");

        // Broker outage: stopped for 10 s (less on short runs), starting at 1/6 of the run.
        var outage = TimeSpan.FromSeconds(Math.Min(10, DurationSeconds / 6.0));
        await WaitUntil(clock, TimeSpan.FromSeconds(DurationSeconds / 6.0));
        await broker.StopAsync();
        Log("broker stopped");
        await Task.Delay(outage);
        await broker.StartAgainAsync();
        Log("broker started again");
        await EnsureSubscriberAsync(broker);

        // Publisher killed with SIGKILL and started again, at the worst moment: just after it
        // reconnected, while it drains the backlog of the outage with many publishes in flight.
        var reconnect = Stopwatch.StartNew();
        while (Regex.Count(_host.Output, "Telemetry connected to") < 2)
        {
            if (reconnect.Elapsed > TimeSpan.FromSeconds(60)) Assert.Fail($"the publisher did not reconnect after the outage\n{_host.Output}");
            await Task.Delay(5);
        }
        await Task.Delay(20);
        await _host.KillAsync();
        Log($"publisher killed with SIGKILL while draining ({Received().Count} distinct seqs seen so far)");
        await _host.StartAsync();
        Log("publisher restarted");

        // End of the run: kill it again, then let a sensor-less publisher drain what is left.
        await WaitUntil(clock, TimeSpan.FromSeconds(DurationSeconds));
        await _host.KillAsync();
        long last;
        int pendingAtEnd;
        await using (var outbox = TelemetryOutbox.Open(Path.Combine(dataDir, "telemetry-outbox")))
        {
            last = outbox.LastSequence(Sensor);
            pendingAtEnd = outbox.PendingCount;
        }
        Log($"run over: last seq {last}, {pendingAtEnd} readings unacknowledged on disk");
        _host.WriteConfig(Config(withSensor: false));
        await _host.StartAsync();

        var deadline = Stopwatch.StartNew();
        HashSet<long> seen;
        while (true)
        {
            await EnsureSubscriberAsync(broker);
            seen = Received();
            if (seen.Count >= last && seen.Contains(last)) break;
            if (deadline.Elapsed > TimeSpan.FromSeconds(120)) break;
            await Task.Delay(250);
        }
        var all = ReceivedList();
        var missing = Enumerable.Range(1, (int)last).Where(i => !seen.Contains(i)).ToList();
        Log($"received {all.Count} messages, {seen.Count} distinct seqs, {all.Count - seen.Count} duplicates, {missing.Count} missing of 1..{last}");

        Assert.True(last >= ReadingsPerSecond * DurationSeconds / 2,
            $"the sensor produced only {last} readings in {DurationSeconds} s\n{_host.Output}");
        Assert.True(missing.Count == 0,
            $"missing seqs ({missing.Count}): {string.Join(",", missing.Take(50))}\n--- publisher ---\n{_host.Output}\n--- broker ---\n{broker.Log}");
        Assert.Equal(1, seen.Min());
        Assert.Equal(last, seen.Max());
    }

    private readonly List<string> _subscriberOutputs = [];

    private HashSet<long> Received() => [.. ReceivedList()];

    private List<long> ReceivedList()
    {
        var text = string.Join('\n', _subscriberOutputs.Append(_subscriber?.Output ?? ""));
        return FastReading().Matches(text).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
    }

    // mosquitto_sub with a persistent session (-c, fixed client id) at QoS 1: the broker keeps its
    // subscription and queues for it while it is away, including across the broker's restart.
    private async Task StartSubscriberAsync(MosquittoBroker broker)
    {
        var args = new List<string> { "-oL", "mosquitto_sub" };
        args.AddRange(broker.ClientArguments());
        args.AddRange(["-c", "-i", "noloss-subscriber", "-q", "1", "-v", "-t", "pinhole/gw1/sensors/#"]);
        _subscriber = PeerProcess.Start(new PeerStartInfo("stdbuf", args) { Name = "mosquitto_sub", OutputLines = 1_000_000 });
        // Ready when it receives a probe: only then is its subscription in place.
        var deadline = Stopwatch.StartNew();
        while (!(_subscriber.Output.Contains("pinhole/gw1/sensors/probe ready", StringComparison.Ordinal)))
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(30)) Assert.Fail(_subscriber.Describe("never received the probe"));
            await broker.PublishAsync("pinhole/gw1/sensors/probe", "ready");
            await Task.Delay(200);
        }
    }

    // mosquitto_sub reconnects by itself; should it have exited, a new one with the same client id
    // resumes the same persistent session, which is what a reconnect is.
    private async Task EnsureSubscriberAsync(MosquittoBroker broker)
    {
        if (_subscriber is not { HasExited: true }) return;
        Log("subscriber exited; resuming its persistent session with a new process");
        _subscriberOutputs.Add(_subscriber.Output);
        await _subscriber.DisposeAsync();
        var args = new List<string> { "-oL", "mosquitto_sub" };
        args.AddRange(broker.ClientArguments());
        args.AddRange(["-c", "-i", "noloss-subscriber", "-q", "1", "-v", "-t", "pinhole/gw1/sensors/#"]);
        _subscriber = PeerProcess.Start(new PeerStartInfo("stdbuf", args) { Name = "mosquitto_sub", OutputLines = 1_000_000 });
    }

    private static async Task WaitUntil(Stopwatch clock, TimeSpan at)
    {
        var left = at - clock.Elapsed;
        if (left > TimeSpan.Zero) await Task.Delay(left);
    }

    private void Log(string message) => output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {message}");
}
