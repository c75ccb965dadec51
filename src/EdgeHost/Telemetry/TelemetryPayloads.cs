using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Pinhole.EdgeHost.Telemetry.Outbox;

namespace Pinhole.EdgeHost.Telemetry;

/// <summary>Topics and payloads of the public MQTT interface (see interface.md).</summary>
internal sealed class TelemetryTopics(string prefix, string deviceId)
{
    public string Prefix { get; } = prefix;
    public string DeviceId { get; } = deviceId;
    public string Status => $"{Prefix}/{DeviceId}/status";
    public string Sensor(string name) => $"{Prefix}/{DeviceId}/sensors/{name}";
    public static string HomeAssistantStatus => "homeassistant/status";
    public string Discovery(string sensor) => $"homeassistant/sensor/pinhole_{DeviceId}_{sensor}/config";
    public string UniqueId(string sensor) => $"pinhole_{DeviceId}_{sensor}";
}

internal static class TelemetryPayloads
{
    public const string Online = "online";
    public const string Offline = "offline";

    // Non-ASCII units (°C, µg/m³) stay UTF-8 rather than \u escapes: the payload is read by people too.
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary><c>{"value": 23.4, "unit": "°C", "ts": "2026-11-21T12:00:00.000Z", "seq": 42}</c>, spaced exactly so.</summary>
    public static byte[] Reading(OutboxRecord r)
    {
        var sb = new StringBuilder(96);
        sb.Append("{\"value\": ").Append(FormatNumber(r.Value))
          .Append(", \"unit\": \"").Append(JsonEncodedText.Encode(r.Unit, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).Value)
          .Append("\", \"ts\": \"").Append(r.Timestamp.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture))
          .Append("\", \"seq\": ").Append(r.Sequence.ToString(CultureInfo.InvariantCulture))
          .Append('}');
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    /// <summary>The retained Home Assistant MQTT discovery config of one reading; <paramref name="deviceClass"/> null guesses it from the unit.</summary>
    public static byte[] Discovery(TelemetryTopics topics, string sensor, string unit, string? deviceClass = null)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("name", sensor);
            w.WriteString("state_topic", topics.Sensor(sensor));
            if (unit.Length > 0)
            {
                w.WriteString("unit_of_measurement", unit);
                if ((deviceClass ?? DeviceClass(unit)) is { } cls) w.WriteString("device_class", cls);
                w.WriteString("state_class", "measurement");
            }
            w.WriteString("value_template", "{{ value_json.value }}");
            w.WriteString("unique_id", topics.UniqueId(sensor));
            w.WriteString("object_id", topics.UniqueId(sensor));
            w.WriteString("availability_topic", topics.Status);
            w.WriteString("payload_available", Online);
            w.WriteString("payload_not_available", Offline);
            w.WriteStartObject("device");
            w.WriteStartArray("identifiers");
            w.WriteStringValue($"pinhole_{topics.DeviceId}");
            w.WriteEndArray();
            w.WriteString("name", $"Pinhole {topics.DeviceId}");
            w.WriteString("manufacturer", "Pinhole");
            w.WriteString("model", "pinhole-edge");
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return stream.ToArray();
    }

    // Sensor values are measurements: 15 significant digits drop the binary noise of scaling
    // (48312 * 0.001 = 48.312000000000005) without losing anything a sensor resolves.
    internal static string FormatNumber(double value)
    {
        var text = value.ToString("G15", CultureInfo.InvariantCulture);
        return text.Contains('E', StringComparison.Ordinal) ? value.ToString("R", CultureInfo.InvariantCulture) : text;
    }

    private static string? DeviceClass(string unit) => unit switch
    {
        "°C" or "°F" or "K" => "temperature",
        "%" or "%RH" => null, // humidity or battery: ambiguous, leave to the user
        "hPa" or "kPa" or "Pa" or "mbar" or "bar" => "pressure",
        "V" or "mV" => "voltage",
        "A" or "mA" => "current",
        "W" or "kW" => "power",
        "lx" => "illuminance",
        _ => null,
    };
}
