using System.Text;
using Pinhole.Relay.Telemetry;

namespace Pinhole.Relay.Tests.Telemetry;

public sealed class TelemetryMessagesTests
{
    // Exactly what the edge publishes (TelemetryPayloads.Reading, interface.md).
    private const string Payload = """{"value": 23.4, "unit": "°C", "ts": "2026-11-21T12:00:00.000Z", "seq": 42}""";

    [Fact]
    public void The_interface_payload_parses_to_its_values()
    {
        var r = TelemetryMessages.ParseReading("gw1", "cpu_temp", Encoding.UTF8.GetBytes(Payload));
        Assert.Equal(new TelemetryReading("gw1", "cpu_temp", 42, new DateTimeOffset(2026, 11, 21, 12, 0, 0, TimeSpan.Zero), 23.4, "°C"), r);
    }

    [Fact]
    public void Milliseconds_of_ts_are_kept()
    {
        var r = TelemetryMessages.ParseReading("gw1", "s", """{"value": 1, "unit": "", "ts": "2026-11-21T12:00:00.123Z", "seq": 1}"""u8);
        Assert.Equal(123, r.Timestamp.Millisecond);
    }

    [Theory]
    [InlineData("pinhole/gw1/sensors/cpu_temp", TelemetryTopicKind.Sensor, "gw1", "cpu_temp")]
    [InlineData("pinhole/gw1/status", TelemetryTopicKind.Status, "gw1", "")]
    [InlineData("pinhole/gw1/alerts/cpu_temp", TelemetryTopicKind.None, "", "")]
    [InlineData("pinhole/gw1/sensors/a/b", TelemetryTopicKind.None, "", "")]
    [InlineData("pinholex/gw1/status", TelemetryTopicKind.None, "", "")]
    [InlineData("homeassistant/sensor/x/config", TelemetryTopicKind.None, "", "")]
    [InlineData("pinhole//status", TelemetryTopicKind.None, "", "")]
    public void Topics_are_told_apart(string topic, TelemetryTopicKind kind, string device, string sensor)
    {
        Assert.Equal(kind, TelemetryMessages.ParseTopic("pinhole", topic, out var d, out var s));
        Assert.Equal(device, d);
        Assert.Equal(sensor, s);
    }

    [Theory]
    [InlineData("", "not valid JSON")]
    [InlineData("[]", "not a JSON object")]
    [InlineData("""{"unit": "", "ts": "2026-11-21T12:00:00.000Z", "seq": 1}""", "\"value\" is missing")]
    [InlineData("""{"value": 1, "unit": "", "ts": "2026-11-21T12:00:00.000Z"}""", "\"seq\" is missing")]
    [InlineData("""{"value": 1, "unit": "", "seq": 1}""", "\"ts\" is missing")]
    [InlineData("""{"value": "hot", "unit": "", "ts": "2026-11-21T12:00:00.000Z", "seq": 1}""", "finite number")]
    [InlineData("""{"value": 1, "unit": "", "ts": "yesterday", "seq": 1}""", "ISO 8601")]
    [InlineData("""{"value": 1, "unit": "", "ts": "2026-11-21T12:00:00.000Z", "seq": -1}""", "seq")]
    [InlineData("""{"value": 1, "unit": "", "ts": "2026-11-21T12:00:00.000Z", "seq": 1.5}""", "seq")]
    [InlineData("""{"value": 1e999, "unit": "", "ts": "2026-11-21T12:00:00.000Z", "seq": 1}""", "finite")]
    public void Malformed_payloads_are_refused_with_a_reason(string payload, string reason)
    {
        var e = Assert.Throws<TelemetryFormatException>(() => TelemetryMessages.ParseReading("gw1", "s", Encoding.UTF8.GetBytes(payload)));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_truncation_of_a_payload_is_refused_with_the_protocol_exception_only()
    {
        var bytes = Encoding.UTF8.GetBytes(Payload);
        for (var n = 0; n < bytes.Length; n++)
            Assert.Throws<TelemetryFormatException>(() => TelemetryMessages.ParseReading("gw1", "s", bytes.AsSpan(0, n)));
    }

    [Fact]
    public void Oversized_payloads_are_refused_before_parsing()
    {
        var big = new byte[TelemetryMessages.MaxPayloadBytes + 1];
        Assert.Throws<TelemetryFormatException>(() => TelemetryMessages.ParseReading("gw1", "s", big));
    }

    [Fact]
    public void Gpio_booleans_and_unknown_members_are_accepted()
    {
        var r = TelemetryMessages.ParseReading("gw1", "door", """{"value": true, "unit": "", "ts": "2026-11-21T12:00:00.000Z", "seq": 7, "extra": {"a": [1]}}"""u8);
        Assert.Equal(1, r.Value);
        Assert.Equal(7, r.Seq);
    }
}
