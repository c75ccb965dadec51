using System.Globalization;
using System.Text.Json.Nodes;
using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Telemetry;

/// <summary>An alert's state change, to publish retained on <c>PREFIX/DEVICE/alerts/SENSOR</c>.</summary>
/// <param name="Device">Device id.</param>
/// <param name="Sensor">Sensor (the alert's name).</param>
/// <param name="Raised">True: raised; false: cleared.</param>
/// <param name="Value">The reading that changed it.</param>
/// <param name="Timestamp">That reading's time.</param>
/// <param name="Rule">The threshold in words (<c>above 80 for 30s</c>).</param>
public sealed record AlertChange(string Device, string Sensor, bool Raised, double Value, DateTimeOffset Timestamp, string Rule)
{
    /// <summary>The retained payload: <c>{"state": "raised", "value": 81.2, "ts": "…", "rule": "above 80 for 30s"}</c>.</summary>
    public string ToPayload() => new JsonObject
    {
        ["state"] = Raised ? "raised" : "cleared",
        ["value"] = Value,
        ["ts"] = Timestamp.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
        ["rule"] = Rule,
    }.ToJsonString();
}

/// <summary>
/// Thresholds per sensor (relay.json <c>telemetry.alerts</c>): an alert is raised when a sensor's readings
/// stay above <c>above</c> (or below <c>below</c>) for at least <c>for</c>, measured on the readings' own
/// timestamps, and cleared when they stay back inside as long. The first reading after the relay starts
/// settles a sensor's state, so a retained alert left "raised" by an earlier run is cleared when no longer true.
/// </summary>
public sealed class AlertEngine
{
    private readonly IReadOnlyList<AlertRuleConfig> _rules;
    private readonly Dictionary<(string Device, string Sensor), State> _states = [];
    private readonly Lock _lock = new();

    private sealed class State
    {
        public bool? Active;
        public DateTimeOffset? Since;
        public DateTimeOffset Last = DateTimeOffset.MinValue;
        public double Value;
        public DateTimeOffset At;
    }

    /// <summary>An engine over the configured rules.</summary>
    public AlertEngine(IReadOnlyList<AlertRuleConfig> rules) => _rules = rules ?? [];

    /// <summary>Rules that apply to a device's sensor (device rules first, then <c>*</c>).</summary>
    public AlertRuleConfig? RuleFor(string device, string sensor) =>
        _rules.FirstOrDefault(r => r.Sensor == sensor && r.Device == device) ?? _rules.FirstOrDefault(r => r.Sensor == sensor && r.Device == "*");

    /// <summary>Feeds newly stored readings (any order); returns the state changes to publish.</summary>
    public IReadOnlyList<AlertChange> Observe(IEnumerable<TelemetryReading> readings)
    {
        var changes = new List<AlertChange>();
        lock (_lock)
        {
            foreach (var r in readings.OrderBy(r => r.Timestamp))
            {
                if (RuleFor(r.Device, r.Sensor) is not { } rule) continue;
                if (!_states.TryGetValue((r.Device, r.Sensor), out var s)) _states[(r.Device, r.Sensor)] = s = new State();
                // A backfilled reading older than what was already judged does not rewrite the present.
                if (r.Timestamp < s.Last) continue;
                s.Last = r.Timestamp;
                var outside = (rule.Above is { } above && r.Value > above) || (rule.Below is { } below && r.Value < below);
                if (s.Active == outside)
                {
                    s.Since = null;
                    continue;
                }
                s.Since ??= r.Timestamp;
                // From unknown (just started) to inside: settle at once, publishing "cleared".
                if (s.Active is null && !outside || r.Timestamp - s.Since.Value >= rule.For)
                {
                    s.Active = outside;
                    s.Since = null;
                    s.Value = r.Value;
                    s.At = r.Timestamp;
                    changes.Add(new AlertChange(r.Device, r.Sensor, outside, r.Value, r.Timestamp, Describe(rule)));
                }
            }
        }
        return changes;
    }

    /// <summary>The device's raised alerts.</summary>
    public IReadOnlyList<AlertChange> Active(string device)
    {
        lock (_lock)
        {
            return [.. _states.Where(kv => kv.Key.Device == device && kv.Value.Active == true)
                .Select(kv => new AlertChange(device, kv.Key.Sensor, true, kv.Value.Value, kv.Value.At, Describe(RuleFor(device, kv.Key.Sensor)!)))
                .OrderBy(a => a.Sensor, StringComparer.Ordinal)];
        }
    }

    /// <summary>The rule in words.</summary>
    public static string Describe(AlertRuleConfig rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        var parts = new List<string>();
        if (rule.Above is { } a) parts.Add("above " + a.ToString(CultureInfo.InvariantCulture));
        if (rule.Below is { } b) parts.Add("below " + b.ToString(CultureInfo.InvariantCulture));
        var text = string.Join(" or ", parts);
        return rule.For > TimeSpan.Zero ? $"{text} for {rule.For.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s" : text;
    }
}
