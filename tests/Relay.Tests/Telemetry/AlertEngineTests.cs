using Pinhole.Relay.Configuration;
using Pinhole.Relay.Telemetry;

namespace Pinhole.Relay.Tests.Telemetry;

public sealed class AlertEngineTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    private static TelemetryReading R(double value, int second, string device = "gw1", string sensor = "cpu_temp", long seq = 0) =>
        new(device, sensor, seq == 0 ? second + 1 : seq, T0.AddSeconds(second), value, "°C");

    [Fact]
    public void Raised_only_after_the_condition_held_for_the_duration_then_cleared_after_it_held_false_as_long()
    {
        var engine = new AlertEngine([new AlertRuleConfig { Device = "*", Sensor = "cpu_temp", Above = 80, For = TimeSpan.FromSeconds(30) }]);
        var first = engine.Observe([R(50, 0)]);
        Assert.False(Assert.Single(first).Raised); // settles a stale retained alert of an earlier run
        Assert.Empty(engine.Observe([R(85, 10), R(86, 20), R(87, 39)]));
        var raised = Assert.Single(engine.Observe([R(88, 40)]));
        Assert.True(raised.Raised);
        Assert.Equal("above 80 for 30s", raised.Rule);
        Assert.Single(engine.Active("gw1"));
        Assert.Empty(engine.Observe([R(70, 50), R(90, 60), R(70, 70)]));
        Assert.False(Assert.Single(engine.Observe([R(70, 100)])).Raised);
        Assert.Empty(engine.Active("gw1"));
    }

    [Fact]
    public void A_device_rule_wins_over_the_wildcard_and_other_sensors_are_ignored()
    {
        var engine = new AlertEngine([
            new AlertRuleConfig { Device = "*", Sensor = "t", Above = 10 },
            new AlertRuleConfig { Device = "gw2", Sensor = "t", Below = 0 },
        ]);
        Assert.True(Assert.Single(engine.Observe([R(11, 0, "gw1", "t")])).Raised);
        Assert.False(Assert.Single(engine.Observe([R(11, 0, "gw2", "t")])).Raised);
        Assert.True(Assert.Single(engine.Observe([R(-1, 1, "gw2", "t")])).Raised);
        Assert.Empty(engine.Observe([R(999, 0, "gw1", "other")]));
    }

    [Fact]
    public void Backfilled_older_readings_do_not_change_the_present_state()
    {
        var engine = new AlertEngine([new AlertRuleConfig { Sensor = "cpu_temp", Above = 80 }]);
        Assert.True(Assert.Single(engine.Observe([R(90, 100)])).Raised);
        Assert.Empty(engine.Observe([R(10, 50)]));
        Assert.Single(engine.Active("gw1"));
    }

    [Fact]
    public void The_retained_payload_names_state_value_time_and_rule()
    {
        var change = new AlertChange("gw1", "cpu_temp", true, 81.5, T0, "above 80");
        Assert.Equal("""{"state":"raised","value":81.5,"ts":"2026-11-21T12:00:00.000Z","rule":"above 80"}""", change.ToPayload());
    }
}
