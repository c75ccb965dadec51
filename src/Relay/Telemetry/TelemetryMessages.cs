using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Pinhole.Relay.Telemetry;

/// <summary>One sensor reading as the device published it on <c>PREFIX/DEVICE/sensors/NAME</c>.</summary>
/// <param name="Device">Device id (topic level 2).</param>
/// <param name="Sensor">Sensor name (topic level 4).</param>
/// <param name="Seq">Per-sensor sequence number; with device and sensor it identifies the reading.</param>
/// <param name="Timestamp">When the device took the reading (<c>ts</c>), never the time it arrived.</param>
/// <param name="Value">The value (GPIO: 0 or 1; counts and states are numbers too).</param>
/// <param name="Unit">Unit, possibly empty.</param>
public sealed record TelemetryReading(string Device, string Sensor, long Seq, DateTimeOffset Timestamp, double Value, string Unit);

/// <summary>What a topic under the prefix is.</summary>
public enum TelemetryTopicKind
{
    /// <summary>Not one of ours.</summary>
    None,

    /// <summary><c>PREFIX/DEVICE/sensors/NAME</c>.</summary>
    Sensor,

    /// <summary><c>PREFIX/DEVICE/status</c>.</summary>
    Status,
}

/// <summary>A payload that is not a reading: the message is counted and dropped, the ingest goes on.</summary>
public sealed class TelemetryFormatException(string message) : Exception(message);

/// <summary>
/// The wire format of the devices' telemetry (docs/telemetry.md, "MQTT topics"), pure: topic and
/// payload bytes in, a reading out, <see cref="TelemetryFormatException"/> for anything malformed.
/// </summary>
public static class TelemetryMessages
{
    /// <summary>Payloads larger than this are refused before parsing.</summary>
    public const int MaxPayloadBytes = 4096;

    /// <summary>Splits a topic into its kind, device and sensor.</summary>
    public static TelemetryTopicKind ParseTopic(string prefix, string topic, out string device, out string sensor)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentNullException.ThrowIfNull(topic);
        device = sensor = "";
        if (!topic.StartsWith(prefix, StringComparison.Ordinal) || topic.Length <= prefix.Length || topic[prefix.Length] != '/')
            return TelemetryTopicKind.None;
        var levels = topic[(prefix.Length + 1)..].Split('/');
        if (levels.Length == 2 && levels[1] == "status" && IsName(levels[0]))
        {
            device = levels[0];
            return TelemetryTopicKind.Status;
        }
        if (levels.Length == 3 && levels[1] == "sensors" && IsName(levels[0]) && IsName(levels[2]))
        {
            device = levels[0];
            sensor = levels[2];
            return TelemetryTopicKind.Sensor;
        }
        return TelemetryTopicKind.None;
    }

    private static bool IsName(string s) => s.Length is > 0 and <= 64 && !s.Any(char.IsControl);

    /// <summary>Parses <c>{"value": 23.4, "unit": "°C", "ts": "…Z", "seq": 42}</c>. Unknown members are ignored (newer devices may add some).</summary>
    public static TelemetryReading ParseReading(string device, string sensor, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > MaxPayloadBytes) throw new TelemetryFormatException($"payload of {payload.Length} bytes is over {MaxPayloadBytes}");
        double? value = null;
        long? seq = null;
        DateTimeOffset? ts = null;
        var unit = "";
        try
        {
            var reader = new Utf8JsonReader(payload, new JsonReaderOptions { MaxDepth = 4 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) throw new TelemetryFormatException("payload is not a JSON object");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString();
                if (!reader.Read()) break;
                switch (name)
                {
                    case "value":
                        value = reader.TokenType switch
                        {
                            JsonTokenType.Number when reader.TryGetDouble(out var d) && double.IsFinite(d) => d,
                            JsonTokenType.True => 1,
                            JsonTokenType.False => 0,
                            _ => throw new TelemetryFormatException("\"value\" must be a finite number (or true/false)"),
                        };
                        break;
                    case "seq":
                        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var s) || s < 0)
                            throw new TelemetryFormatException("\"seq\" must be a whole number ≥ 0");
                        seq = s;
                        break;
                    case "ts":
                        if (reader.TokenType != JsonTokenType.String
                            || !DateTimeOffset.TryParse(reader.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t))
                            throw new TelemetryFormatException("\"ts\" must be an ISO 8601 time");
                        ts = t;
                        break;
                    case "unit":
                        unit = reader.TokenType == JsonTokenType.String ? reader.GetString()! : throw new TelemetryFormatException("\"unit\" must be a string");
                        if (unit.Length > 32) throw new TelemetryFormatException("\"unit\" is longer than 32 characters");
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }
        }
        catch (JsonException e)
        {
            throw new TelemetryFormatException("payload is not valid JSON: " + e.Message);
        }
        catch (InvalidOperationException e)
        {
            throw new TelemetryFormatException("payload is not valid JSON: " + e.Message);
        }
        if (value is null) throw new TelemetryFormatException("\"value\" is missing");
        if (seq is null) throw new TelemetryFormatException("\"seq\" is missing");
        if (ts is null) throw new TelemetryFormatException("\"ts\" is missing");
        return new TelemetryReading(device, sensor, seq.Value, ts.Value, value.Value, unit);
    }

    /// <summary>Reads a status payload: <c>online</c> or <c>offline</c> (anything else is kept as sent, up to 32 characters).</summary>
    public static string ParseStatus(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > 32) throw new TelemetryFormatException("status payload longer than 32 bytes");
        try
        {
            return new UTF8Encoding(false, true).GetString(payload).Trim();
        }
        catch (DecoderFallbackException)
        {
            throw new TelemetryFormatException("status payload is not UTF-8");
        }
    }
}
