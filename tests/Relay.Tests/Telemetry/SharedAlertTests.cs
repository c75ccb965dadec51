using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet;
using MQTTnet.Protocol;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Telemetry;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Telemetry;

/// <summary>
/// A rule with a duration ("above 80 for 3 s") with two relays' ingests in one shared subscription group on a real
/// Mosquitto and one PostgreSQL (docs/scale-out.md): the broker splits a sensor's readings between the relays, and the
/// alert is still judged on all of them — raised once when they stay above for 3 s, never while they alternate, cleared
/// once when they stay below — because the state and the walk over the readings are in the shared database.
/// </summary>
public sealed class SharedAlertTests(PostgresFixture postgres, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    // Recent: the store keeps only readings within the raw retention of the time they arrive.
    private static readonly DateTimeOffset Start = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 600);
    private static readonly AlertRuleConfig Rule = new() { Device = "*", Sensor = "temp", Above = 80, For = TimeSpan.FromSeconds(3) };

    // One reading a second: 1-6 at 70 (settles "cleared"), 7-26 alternating 90/70 (never 3 s above), 27-34 at 90
    // (raised by 30, 3 s after 27), 35-42 at 70 (cleared by 38).
    private static double ValueOf(int seq) => seq switch
    {
        <= 6 => 70,
        <= 26 => seq % 2 == 1 ? 90 : 70,
        <= 34 => 90,
        _ => 70,
    };

    private static TelemetryReading Reading(int seq) => new("gw1", "temp", seq, Start.AddSeconds(seq), ValueOf(seq), "C");

    [Fact]
    public void One_relays_share_of_alternating_readings_alone_would_raise_the_alert()
    {
        // Why the state cannot stay in each relay's memory with a shared group: a relay that received only the odd
        // readings of 7-26 (every one of them 90) sees "above 80 for 3 s" that never happened.
        using var share = new AlertEngine([Rule]);
        var changes = share.Observe([.. Enumerable.Range(7, 20).Where(s => s % 2 == 1).Select(Reading)]);
        Assert.Contains(changes, c => c.Raised);
        // All of them, in one engine: never raised.
        using var all = new AlertEngine([Rule]);
        Assert.DoesNotContain(all.Observe([.. Enumerable.Range(1, 26).Select(Reading)]), c => c.Raised);
    }

    [RequiresFact(Needs.Postgres | Needs.Mosquitto)]
    public async Task Two_relays_splitting_the_readings_raise_and_clear_a_duration_alert_once_each_on_all_of_them()
    {
        var server = postgres.Server ?? throw new InvalidOperationException("PostgreSQL unavailable: " + PostgresServer.SkipReason);
        var name = "a" + Guid.NewGuid().ToString("N")[..12];
        await server.CreateDatabaseAsync(name);
        Assert.True(DatabaseUrl.TryParse(server.DatabaseUrl(name), out var url, out var error), error);
        await using var broker = await MosquittoBroker.StartAsync();
        using var meterA = new Meter("alerts-a");
        using var meterB = new Meter("alerts-b");
        // Readings each relay stored, to see that the broker did split them.
        var stored = new ConcurrentDictionary<Meter, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter == meterA || i.Meter == meterB) l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((i, value, _, _) =>
        {
            if (i.Name == "pinhole_relay_telemetry_readings_stored_total") stored.AddOrUpdate(i.Meter, value, (_, n) => n + value);
        });
        listener.Start();
        using var storeA = new PostgresTelemetryStore(url, TelemetryRetention.Default);
        using var storeB = new PostgresTelemetryStore(url, TelemetryRetention.Default);
        using var alertsA = new AlertEngine([Rule], new SharedAlertStates(url));
        using var alertsB = new AlertEngine([Rule], new SharedAlertStates(url));
        TelemetryConfig Config(string id) => new() { Mqtt = broker.TcpUrl.ToString(), ClientId = id, SharedGroup = "pinhole", Alerts = [Rule] };
        using var ingestA = new TelemetryIngest(Config("relay-a"), storeA, alertsA, meterA, TimeProvider.System, NullLogger<TelemetryIngest>.Instance);
        using var ingestB = new TelemetryIngest(Config("relay-b"), storeB, alertsB, meterB, TimeProvider.System, NullLogger<TelemetryIngest>.Instance);

        // What the relays publish on the alert topic, in order.
        var published = new ConcurrentQueue<JsonObject>();
        using var watcher = new MqttClientFactory().CreateMqttClient();
        watcher.ApplicationMessageReceivedAsync += e =>
        {
            published.Enqueue((JsonObject)JsonNode.Parse(e.ApplicationMessage.ConvertPayloadToString())!);
            return Task.CompletedTask;
        };
        await watcher.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer(broker.Host, broker.TcpPort).WithClientId("watcher")
            .WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500).Build());
        await watcher.SubscribeAsync("pinhole/gw1/alerts/temp", MqttQualityOfServiceLevel.AtLeastOnce);

        await ingestA.StartAsync(default);
        await ingestB.StartAsync(default);
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!(broker.Log.Contains("Sending SUBACK to relay-a", StringComparison.Ordinal) && broker.Log.Contains("Sending SUBACK to relay-b", StringComparison.Ordinal)))
            {
                Assert.True(DateTime.UtcNow < deadline, "the ingests did not subscribe within 20 s:\n" + broker.Log);
                await Task.Delay(50);
            }
            using var device = new MqttClientFactory().CreateMqttClient();
            await device.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer(broker.Host, broker.TcpPort).WithClientId("gw1")
                .WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500).Build());
            async Task PublishAsync(int from, int to)
            {
                for (var seq = from; seq <= to; seq++)
                {
                    var ts = Start.AddSeconds(seq).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
                    await device.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("pinhole/gw1/sensors/temp")
                        .WithPayload(string.Create(CultureInfo.InvariantCulture, $$"""{"value": {{ValueOf(seq)}}, "unit": "C", "ts": "{{ts}}", "seq": {{seq}}}"""))
                        .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                    await Task.Delay(50); // a device sends one reading at a time; the test's second is 50 ms
                }
            }
            async Task WaitForAsync(int count, string what)
            {
                var until = DateTime.UtcNow.AddSeconds(30);
                while (published.Count < count)
                {
                    Assert.True(DateTime.UtcNow < until, $"{what}; published so far: {string.Join(" ", published.Select(p => p.ToJsonString()))}");
                    await Task.Delay(50);
                }
            }

            await PublishAsync(1, 34);
            await WaitForAsync(2, "not settled and then raised");
            // Both relays show it raised (the device's sensors page and the device list ask their own engine).
            Assert.Equal("temp", Assert.Single(alertsA.Active("gw1")).Sensor);
            Assert.Equal("temp", Assert.Single(alertsB.Active("gw1")).Sensor);
            await PublishAsync(35, 42);
            await WaitForAsync(3, "not cleared");
            await Task.Delay(1000); // anything published twice, or late, would show up now

            var states = published.ToArray();
            output.WriteLine(string.Join("\n", states.Select(s => s.ToJsonString())));
            Assert.Equal(["cleared", "raised", "cleared"], states.Select(s => s["state"]!.GetValue<string>()).ToArray());
            string At(int seq) => Start.AddSeconds(seq).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
            // Settled by the first reading judged (whichever relay judged first: 1, or 2 when the relay that got 2 was quicker);
            // raised by the reading 3 s after the first of the steady 90s, cleared 3 s after the first steady 70.
            Assert.Contains(states[0]["ts"]!.GetValue<string>(), Enumerable.Range(1, 6).Select(At));
            Assert.Equal((At(30), At(38)), (states[1]["ts"]!.GetValue<string>(), states[2]["ts"]!.GetValue<string>()));
            Assert.Equal(90, states[1]["value"]!.GetValue<double>());
            Assert.Equal("above 80 for 3s", states[1]["rule"]!.GetValue<string>());
            Assert.Empty(alertsA.Active("gw1"));
            Assert.Empty(alertsB.Active("gw1"));

            // The broker did split them: each relay stored part of the readings (the history holds all 42 once).
            var (byA, byB) = (stored.GetValueOrDefault(meterA), stored.GetValueOrDefault(meterB));
            output.WriteLine($"relay A stored {byA} readings, relay B {byB}");
            Assert.True(byA > 0 && byB > 0 && byA + byB == 42, $"relay A stored {byA}, relay B {byB}: the broker should have split the 42");
            using var history = new PostgresTelemetryStore(url, TelemetryRetention.Default);
            Assert.Equal(42, history.History("gw1", "temp", Start, Start.AddHours(1), null, DateTimeOffset.UtcNow)!.Points.Count);
        }
        finally
        {
            await ingestA.StopAsync(default);
            await ingestB.StopAsync(default);
        }
    }
}
