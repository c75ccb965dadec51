using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet;
using MQTTnet.Protocol;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Telemetry;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Telemetry;

/// <summary>
/// Several relays' telemetry ingests on one broker and one PostgreSQL: with <c>"sharedGroup"</c> they
/// split the readings (MQTT 5 shared subscription), each reading received by one relay and stored once.
/// </summary>
public sealed class SharedSubscriptionTests(PostgresFixture postgres, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private const int Readings = 200;
    // Recent: the store keeps only readings within the raw retention of the time they arrive.
    private static readonly DateTimeOffset Start = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 600);

    [Fact]
    public void The_sensor_filter_is_shared_only_with_a_group_and_the_group_is_validated()
    {
        Assert.Equal("site/a/+/sensors/+", TelemetryIngest.SensorFilter(new TelemetryConfig { TopicPrefix = "site/a" }));
        Assert.Equal("$share/relays/site/a/+/sensors/+", TelemetryIngest.SensorFilter(new TelemetryConfig { TopicPrefix = "site/a", SharedGroup = "relays" }));
        var ok = RelayConfigLoader.Load("""{ "anonymousViewing": true, "telemetry": { "mqtt": "mqtt://127.0.0.1:1883", "sharedGroup": "pinhole" } }""", "/tmp", out var problems);
        Assert.True(ok is not null, string.Join("\n", problems));
        Assert.Equal("pinhole", ok.Telemetry!.SharedGroup);
        foreach (var bad in new[] { "", "a/b", "a+", "#" })
        {
            Assert.Null(RelayConfigLoader.Load($$"""{ "anonymousViewing": true, "telemetry": { "mqtt": "mqtt://127.0.0.1:1883", "sharedGroup": "{{bad}}" } }""", "/tmp", out problems));
            Assert.Contains(problems, p => p.StartsWith("telemetry.sharedGroup:", StringComparison.Ordinal));
        }
    }

    [RequiresFact(Needs.Postgres | Needs.Mosquitto)]
    public async Task Two_relays_in_one_shared_group_each_receive_part_of_the_readings_and_store_each_once() =>
        await RunAsync("pinhole", async (a, b, url) =>
        {
            // Every reading arrived once, at one relay or the other: none twice, and the broker split them.
            Assert.Equal(Readings, a.Stored + b.Stored);
            Assert.Equal(0, a.Duplicates + b.Duplicates);
            Assert.True(a.Stored > 0 && b.Stored > 0, $"relay A stored {a.Stored}, relay B {b.Stored}: the broker should have split them");
            output.WriteLine($"shared group: relay A stored {a.Stored}, relay B {b.Stored}, duplicates 0");
            using var store = new PostgresTelemetryStore(url, TelemetryRetention.Default);
            Assert.Equal(Readings, store.History("gw1", "temp", Start, Start.AddHours(1), null, DateTimeOffset.UtcNow)!.Points.Count);
            await Task.CompletedTask;
        });

    [RequiresFact(Needs.Postgres | Needs.Mosquitto)]
    public async Task Without_a_group_every_relay_receives_every_reading() =>
        await RunAsync(null, async (a, b, _) =>
        {
            // The contrast: both got all of them, and one of each pair was a duplicate of the other's.
            Assert.Equal(2 * Readings, a.Stored + b.Stored + a.Duplicates + b.Duplicates);
            Assert.Equal(Readings, a.Stored + b.Stored);
            output.WriteLine($"no group: stored {a.Stored} + {b.Stored}, duplicates {a.Duplicates + b.Duplicates}");
            await Task.CompletedTask;
        });

    private sealed class Counts : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _stored;
        private long _duplicates;

        public Counts(Meter meter)
        {
            _listener.InstrumentPublished = (i, l) => { if (i.Meter == meter) l.EnableMeasurementEvents(i); };
            _listener.SetMeasurementEventCallback<long>((i, value, _, _) =>
            {
                if (i.Name == "pinhole_relay_telemetry_readings_stored_total") Interlocked.Add(ref _stored, value);
                else if (i.Name == "pinhole_relay_telemetry_duplicates_total") Interlocked.Add(ref _duplicates, value);
            });
            _listener.Start();
        }

        public long Stored => Interlocked.Read(ref _stored);

        public long Duplicates => Interlocked.Read(ref _duplicates);

        public void Dispose() => _listener.Dispose();
    }

    private async Task RunAsync(string? group, Func<Counts, Counts, DatabaseUrl, Task> check)
    {
        var server = postgres.Server ?? throw new InvalidOperationException("PostgreSQL unavailable: " + PostgresServer.SkipReason);
        var name = "s" + Guid.NewGuid().ToString("N")[..12];
        await server.CreateDatabaseAsync(name);
        Assert.True(DatabaseUrl.TryParse(server.DatabaseUrl(name), out var url, out var error), error);
        await using var broker = await MosquittoBroker.StartAsync();
        using var meterA = new Meter("relay-a");
        using var meterB = new Meter("relay-b");
        using var countsA = new Counts(meterA);
        using var countsB = new Counts(meterB);
        using var storeA = new PostgresTelemetryStore(url, TelemetryRetention.Default);
        using var storeB = new PostgresTelemetryStore(url, TelemetryRetention.Default);
        TelemetryConfig Config(string id) => new() { Mqtt = broker.TcpUrl.ToString(), ClientId = id, SharedGroup = group };
        using var ingestA = new TelemetryIngest(Config("relay-a"), storeA, new AlertEngine([]), meterA, TimeProvider.System, NullLogger<TelemetryIngest>.Instance);
        using var ingestB = new TelemetryIngest(Config("relay-b"), storeB, new AlertEngine([]), meterB, TimeProvider.System, NullLogger<TelemetryIngest>.Instance);
        await ingestA.StartAsync(default);
        await ingestB.StartAsync(default);
        try
        {
            // Both subscriptions are in place (the broker logs every SUBACK) before the first reading.
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!(broker.Log.Contains("Sending SUBACK to relay-a", StringComparison.Ordinal) && broker.Log.Contains("Sending SUBACK to relay-b", StringComparison.Ordinal)))
            {
                Assert.True(DateTime.UtcNow < deadline, "the ingests did not subscribe within 20 s:\n" + broker.Log);
                await Task.Delay(50);
            }
            using var publisher = new MqttClientFactory().CreateMqttClient();
            await publisher.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer(broker.Host, broker.TcpPort).WithClientId("gw1")
                .WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500).Build());
            for (var seq = 1; seq <= Readings; seq++)
            {
                var ts = Start.AddSeconds(seq).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
                await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("pinhole/gw1/sensors/temp")
                    .WithPayload($$"""{"value": {{20 + seq / 100.0}}, "unit": "C", "ts": "{{ts}}", "seq": {{seq}}}""")
                    .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            }
            // Each ingest acknowledges a reading once it is stored; wait until every copy the broker sent was handled.
            var expected = group is null ? 2 * Readings : Readings;
            deadline = DateTime.UtcNow.AddSeconds(30);
            while (countsA.Stored + countsA.Duplicates + countsB.Stored + countsB.Duplicates < expected)
            {
                Assert.True(DateTime.UtcNow < deadline, $"handled {countsA.Stored + countsA.Duplicates + countsB.Stored + countsB.Duplicates} of {expected} within 30 s");
                await Task.Delay(50);
            }
            // A little longer: a reading delivered to both would show up now as a duplicate.
            await Task.Delay(500);
            await check(countsA, countsB, url);
        }
        finally
        {
            await ingestA.StopAsync(default);
            await ingestB.StopAsync(default);
        }
    }
}
