using System.Text.Json;
using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Telemetry;
using Pinhole.EdgeHost.Telemetry.Outbox;
using System.Diagnostics.Metrics;

namespace Pinhole.EdgeHost.Tests.Telemetry;

public sealed class MqttTelemetrySessionTests : IAsyncLifetime
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("session-");
    private readonly FakeConnector _broker = new();
    private readonly RecordingContext _context = new();
    private readonly ListLogger _log = new();
    private readonly CancellationTokenSource _stop = new();
    private TelemetryOutbox _outbox = null!;
    private Task? _run;
    private static readonly DateTimeOffset T0 = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    public Task InitializeAsync()
    {
        _outbox = TelemetryOutbox.Open(_dir.FullName, new OutboxOptions { CursorSaveInterval = TimeSpan.Zero });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_run is not null) await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _run);
        await _outbox.DisposeAsync();
        _dir.Delete(true);
    }

    private void Start()
    {
        var topics = new TelemetryTopics("pinhole", "gw1");
        var options = new TelemetryConnectOptions(new Uri("mqtt://127.0.0.1:1883"), "pinhole-edge-gw1", "gw1", "pw",
            topics.Status, "offline", TimeSpan.FromSeconds(15), TimeSpan.FromDays(1), null);
        var session = new MqttTelemetrySession(_broker, options, topics, [("cpu_temp", "°C"), ("door", "")], _outbox,
            new TelemetryCounters(new Meter("test")), TimeProvider.System, _log, new Backoff(TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(20)));
        Assert.Equal("mqtt", session.Name);
        _run = session.RunAsync(_context, _stop.Token);
    }

    private List<(string Topic, string Payload, bool Retain)> Readings(string sensor) =>
        _broker.Published.Where(p => p.Topic == $"pinhole/gw1/sensors/{sensor}").ToList();

    private static long Seq(string payload) => JsonDocument.Parse(payload).RootElement.GetProperty("seq").GetInt64();

    [Fact]
    public async Task Connects_with_a_persistent_identity_and_publishes_status_discovery_then_readings_exactly_as_specified()
    {
        await _outbox.AppendAsync("cpu_temp", new SensorReading(48.312000000000005, "°C", T0));
        await _outbox.AppendAsync("cpu_temp", new SensorReading(23.4, "°C", T0.AddMilliseconds(1500)));
        Start();
        await Eventually.True(() => Readings("cpu_temp").Count == 2 && _outbox.PendingCount == 0, "two readings acknowledged");

        Assert.Equal("pinhole-edge-gw1", _broker.LastOptions!.ClientId);
        Assert.Equal("pinhole/gw1/status", _broker.LastOptions.WillTopic);
        Assert.Equal("offline", _broker.LastOptions.WillPayload);
        var all = _broker.Published.ToList();
        Assert.Equal(("pinhole/gw1/status", "online", true), all[0]);
        Assert.Equal("homeassistant/sensor/pinhole_gw1_cpu_temp/config", all[1].Topic);
        Assert.True(all[1].Retain);
        Assert.Equal("homeassistant/sensor/pinhole_gw1_door/config", all[2].Topic);
        Assert.Equal(["homeassistant/status"], _broker.Current.Subscriptions);

        var readings = Readings("cpu_temp");
        Assert.Equal("{\"value\": 48.312, \"unit\": \"°C\", \"ts\": \"2026-11-21T12:00:00.000Z\", \"seq\": 1}", readings[0].Payload);
        Assert.Equal("{\"value\": 23.4, \"unit\": \"°C\", \"ts\": \"2026-11-21T12:00:01.500Z\", \"seq\": 2}", readings[1].Payload);
        Assert.False(readings[0].Retain);

        using var discovery = JsonDocument.Parse(all[1].Payload);
        var d = discovery.RootElement;
        Assert.Equal("cpu_temp", d.GetProperty("name").GetString());
        Assert.Equal("pinhole/gw1/sensors/cpu_temp", d.GetProperty("state_topic").GetString());
        Assert.Equal("°C", d.GetProperty("unit_of_measurement").GetString());
        Assert.Equal("{{ value_json.value }}", d.GetProperty("value_template").GetString());
        Assert.Equal("pinhole_gw1_cpu_temp", d.GetProperty("unique_id").GetString());
        Assert.Equal("pinhole/gw1/status", d.GetProperty("availability_topic").GetString());
        Assert.Equal("pinhole_gw1", d.GetProperty("device").GetProperty("identifiers")[0].GetString());
        Assert.False(JsonDocument.Parse(all[2].Payload).RootElement.TryGetProperty("unit_of_measurement", out _));
    }

    [Fact]
    public async Task Readings_appended_while_connected_go_out_in_order()
    {
        Start();
        await Eventually.True(() => _broker.Connections.Count == 1, "connected");
        for (var i = 0; i < 200; i++)
            await _outbox.AppendAsync("cpu_temp", new SensorReading(i, "°C", T0));
        await Eventually.True(() => _outbox.PendingCount == 0, "all acknowledged");
        Assert.Equal(Enumerable.Range(1, 200).Select(i => (long)i), Readings("cpu_temp").Select(r => Seq(r.Payload)));
    }

    [Fact]
    public async Task After_a_dropped_connection_everything_unacknowledged_is_sent_again_in_order_and_nothing_is_skipped()
    {
        // The broker fails every publish from seq 50 on, on every connection up to recoverAfter. A
        // connection already failing keeps failing: a switch flipped under its pipelined publishes
        // would let a later reading through ahead of the resend and test the timing, not the client.
        var recoverAfter = int.MaxValue;
        _broker.FailPublishOn = (connection, topic, payload) =>
            connection <= Volatile.Read(ref recoverAfter) && topic.EndsWith("/cpu_temp", StringComparison.Ordinal) && Seq(payload) >= 50;
        for (var i = 0; i < 100; i++)
            await _outbox.AppendAsync("cpu_temp", new SensorReading(i, "°C", T0));
        Start();
        await Eventually.True(() => _broker.Connections.Count >= 3, "reconnects after failures");
        Assert.Equal(51, _outbox.PendingCount);
        Assert.Equal(Enumerable.Range(50, 51).Select(i => (long)i), _outbox.GetPending(0, 1000).Select(r => r.Sequence));
        Volatile.Write(ref recoverAfter, _broker.Connections.Count);
        await Eventually.True(() => _outbox.PendingCount == 0, "drained after recovery");
        var seqs = Readings("cpu_temp").Select(r => Seq(r.Payload)).ToList();
        Assert.Equal(Enumerable.Range(1, 100).Select(i => (long)i), seqs.Distinct().Order());
        // Each connection sends from the oldest unacknowledged reading upward.
        Assert.Equal(Enumerable.Range(50, 51).Select(i => (long)i), seqs.SkipWhile(s => s < 50).Take(51));
        Assert.Equal(100, seqs.Last());
        Assert.Contains(_context.Statuses, s => s.StartsWith("disconnected", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_reading_the_broker_refuses_for_good_is_dropped_and_counted_instead_of_blocking_the_rest()
    {
        _broker.FailReasonCode = 0x87; // not authorized: will never be accepted
        _broker.FailPublish = (topic, payload) => topic.EndsWith("/door", StringComparison.Ordinal) && Seq(payload) == 2;
        for (var i = 1; i <= 5; i++)
        {
            await _outbox.AppendAsync("door", new SensorReading(i % 2, "", T0));
            await _outbox.AppendAsync("cpu_temp", new SensorReading(i, "°C", T0));
        }
        Start();
        await Eventually.True(() => _outbox.PendingCount == 0, "everything else delivered");
        Assert.Equal([1L, 3, 4, 5], Readings("door").Select(r => Seq(r.Payload)));
        Assert.Equal([1L, 2, 3, 4, 5], Readings("cpu_temp").Select(r => Seq(r.Payload)));
        Assert.Single(_broker.Connections);
        // The reading leaves the outbox before the drop is logged; under load the log can trail.
        await Eventually.True(() => _log.Entries.Any(e => e.Message.Contains("door #2 dropped", StringComparison.Ordinal) && e.Message.Contains("0x87", StringComparison.Ordinal)), "the drop logged with the broker's reason");
    }

    [Fact]
    public async Task A_connection_that_drops_is_replaced_and_the_status_goes_online_again()
    {
        Start();
        await Eventually.True(() => _broker.Connections.Count == 1 && _broker.Published.Count >= 3, "first connection");
        _broker.Current.Drop();
        await Eventually.True(() => _broker.Connections.Count == 2 && _broker.Published.Count(p => p.Topic == "pinhole/gw1/status") == 2, "second connection");
        await _outbox.AppendAsync("door", new SensorReading(1, "", T0));
        await Eventually.True(() => Readings("door").Count == 1, "reading on the new connection");
    }

    [Fact]
    public async Task Refused_connections_are_retried_with_backoff_until_the_broker_is_back()
    {
        _broker.Refuse = true;
        await _outbox.AppendAsync("door", new SensorReading(0, "", T0));
        Start();
        await Eventually.True(() => _log.Entries.Count(e => e.Message.Contains("lost or refused", StringComparison.Ordinal)) >= 3, "three refusals");
        Assert.Empty(_broker.Published);
        Assert.Equal(1, _outbox.PendingCount);
        _broker.Refuse = false;
        await Eventually.True(() => _outbox.PendingCount == 0, "delivered once the broker is back");
    }

    [Fact]
    public async Task Home_Assistant_coming_online_gets_the_discovery_configs_again()
    {
        Start();
        await Eventually.True(() => _broker.Published.Count(p => p.Topic.StartsWith("homeassistant/sensor/", StringComparison.Ordinal)) == 2, "first discovery");
        await _broker.Current.Deliver("homeassistant/status", "offline");
        await Task.Delay(100);
        Assert.Equal(2, _broker.Published.Count(p => p.Topic.StartsWith("homeassistant/sensor/", StringComparison.Ordinal)));
        await _broker.Current.Deliver("homeassistant/status", "online");
        await Eventually.True(() => _broker.Published.Count(p => p.Topic.StartsWith("homeassistant/sensor/", StringComparison.Ordinal)) == 4, "discovery again");
        Assert.Single(_broker.Connections);
    }

    [Fact]
    public async Task Stopping_publishes_offline_and_disconnects_cleanly()
    {
        Start();
        await Eventually.True(() => _broker.Published.Count >= 3, "connected");
        await _stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _run!);
        _run = null;
        Assert.Equal(("pinhole/gw1/status", "offline", true), _broker.Published.Last());
        Assert.True(_broker.Current.CleanlyDisconnected);
    }
}
