using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Tests.Telemetry;

public sealed class TelemetryConfigTests
{
    private static RelayConfig? Load(string extra, out IReadOnlyList<string> problems) =>
        RelayConfigLoader.Load($$"""{ "anonymousViewing": true, {{extra}} }""", "/tmp", out problems);

    [Fact]
    public void A_full_telemetry_block_loads_with_its_values()
    {
        var c = Load("""
            "database": "postgres://pin%40hole:s%3Acret@db.example:5433/history?sslmode=require",
            "telemetry": { "mqtt": "wss://broker:8884/mqtt", "username": "relay", "password": "pw", "topicPrefix": "site/a",
              "clientId": "relay-1", "retention": { "raw": "2d", "minute": "30d", "hour": "3650d" },
              "alerts": [ { "device": "*", "sensor": "cpu_temp", "above": 80, "for": "30s" }, { "device": "gw1", "sensor": "door", "below": 0.5 } ] }
            """, out var problems);
        Assert.True(c is not null, string.Join("\n", problems));
        Assert.Equal(DatabaseKind.Postgres, c.Database.Kind);
        Assert.Equal("pin@hole", c.Database.User);
        Assert.Equal("s:cret", c.Database.Password);
        Assert.Equal(5433, c.Database.Port);
        Assert.Equal("history", c.Database.Database);
        Assert.DoesNotContain("s:cret", c.Database.ToString(), StringComparison.Ordinal);
        Assert.Contains("SSL Mode=Require", c.Database.ToNpgsqlConnectionString(), StringComparison.Ordinal);
        var t = c.Telemetry!;
        Assert.Equal("wss://broker:8884/mqtt", t.Mqtt);
        Assert.Equal("site/a", t.TopicPrefix);
        Assert.Equal(TimeSpan.FromDays(2), t.RawRetention);
        Assert.Equal(TimeSpan.FromDays(30), t.MinuteRetention);
        Assert.Equal(TimeSpan.FromDays(3650), t.HourRetention);
        Assert.Equal(2, t.Alerts.Count);
        Assert.Equal(TimeSpan.FromSeconds(30), t.Alerts[0].For);
    }

    [Fact]
    public void Defaults_are_sqlite_and_7d_90d_forever()
    {
        var c = Load("""  "telemetry": { "mqtt": "ws://127.0.0.1:9001/mqtt" } """, out var problems);
        Assert.True(c is not null, string.Join("\n", problems));
        Assert.Equal(DatabaseKind.Sqlite, c.Database.Kind);
        Assert.Equal(TimeSpan.FromDays(7), c.Telemetry!.RawRetention);
        Assert.Equal(TimeSpan.FromDays(90), c.Telemetry.MinuteRetention);
        Assert.Null(c.Telemetry.HourRetention);
        Assert.Equal("pinhole", c.Telemetry.TopicPrefix);
    }

    [Theory]
    [InlineData(""" "telemetry": { } """, "telemetry.mqtt: required")]
    [InlineData(""" "telemetry": { "mqtt": "http://x/" } """, "telemetry.mqtt: \"http://x/\" is not a ws://")]
    [InlineData(""" "telemetry": { "mqtt": "ws://u:p@x/" } """, "not in the URL")]
    [InlineData(""" "telemetry": { "mqtt": "ws://x/", "colour": 1 } """, "telemetry.colour: unknown key")]
    [InlineData(""" "telemetry": { "mqtt": "ws://x/", "topicPrefix": "a/#" } """, "telemetry.topicPrefix")]
    [InlineData(""" "telemetry": { "mqtt": "ws://x/", "retention": { "raw": "5m" } } """, "telemetry.retention.raw: must be a duration of at least 1h")]
    [InlineData(""" "telemetry": { "mqtt": "ws://x/", "retention": { "raw": "30d", "minute": "7d" } } """, "telemetry.retention.minute: must be at least as long")]
    [InlineData(""" "telemetry": { "mqtt": "ws://x/", "alerts": [ { "sensor": "t" } ] } """, "telemetry.alerts[0]: needs \"above\" or \"below\"")]
    [InlineData(""" "telemetry": { "mqtt": "ws://x/", "alerts": [ { "sensor": "t", "above": 1, "below": 5 } ] } """, "must be less than")]
    [InlineData(""" "telemetry": { "mqtt": "ws://x/", "alerts": [ { "sensor": "t", "above": "hot" } ] } """, "telemetry.alerts[0].above: must be a number")]
    [InlineData(""" "telemetry": { "mqtt": "ws://x/", "alerts": [ { "sensor": "t", "above": 1, "for": "soon" } ] } """, "telemetry.alerts[0].for:")]
    [InlineData(""" "database": "mysql://x/y" """, "database: must be \"sqlite\" or postgres://")]
    [InlineData(""" "database": "postgres://localhost/db" """, "needs a user")]
    [InlineData(""" "database": "postgres://u:p@localhost/db?search_path=x" """, "unknown or bad query parameter \"search_path\"")]
    public void Bad_telemetry_and_database_values_are_each_reported_with_their_path(string extra, string expected)
    {
        Assert.Null(Load(extra, out var problems));
        Assert.Contains(problems, p => p.Contains(expected, StringComparison.Ordinal));
        Assert.DoesNotContain(problems, p => p.Contains(":p@", StringComparison.Ordinal));
    }
}
