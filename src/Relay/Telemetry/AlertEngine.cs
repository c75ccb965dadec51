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
/// One relay keeps the state in memory; relays sharing a PostgreSQL database keep it there and judge the shared
/// history (<see cref="SharedAlertStates"/>), so each sees every reading of a sensor whichever relay received it.
/// </summary>
public sealed class AlertEngine : IDisposable
{
    private readonly IReadOnlyList<AlertRuleConfig> _rules;
    private readonly Dictionary<(string Device, string Sensor), AlertState> _states = [];
    private readonly Lock _lock = new();
    private readonly SharedAlertStates? _shared;

    /// <summary>An engine over the configured rules; with <paramref name="shared"/> the state is in the shared database.</summary>
    public AlertEngine(IReadOnlyList<AlertRuleConfig> rules, SharedAlertStates? shared = null)
    {
        _rules = rules ?? [];
        _shared = shared;
    }

    /// <summary>True when the state is in the shared database.</summary>
    public bool IsShared => _shared is not null;

    /// <summary>Rules that apply to a device's sensor (device rules first, then <c>*</c>).</summary>
    public AlertRuleConfig? RuleFor(string device, string sensor) =>
        _rules.FirstOrDefault(r => r.Sensor == sensor && r.Device == device) ?? _rules.FirstOrDefault(r => r.Sensor == sensor && r.Device == "*");

    /// <summary>
    /// Feeds newly stored readings (any order); returns the state changes to publish. With a shared database it judges
    /// each of their sensors on the shared history instead (every reading stored since it was last judged, by any relay).
    /// </summary>
    /// <exception cref="System.Data.Common.DbException">The shared database could not be used (the next batch catches up).</exception>
    public IReadOnlyList<AlertChange> Observe(IEnumerable<TelemetryReading> readings)
    {
        ArgumentNullException.ThrowIfNull(readings);
        var changes = new List<AlertChange>();
        if (_shared is not null)
        {
            foreach (var sensor in readings.GroupBy(r => (r.Device, r.Sensor)).OrderBy(g => g.Key.Device, StringComparer.Ordinal).ThenBy(g => g.Key.Sensor, StringComparer.Ordinal))
            {
                if (RuleFor(sensor.Key.Device, sensor.Key.Sensor) is not { } rule) continue;
                changes.AddRange(_shared.Evaluate(sensor.Key.Device, sensor.Key.Sensor, sensor.Min(r => r.Timestamp),
                    (state, ts, value) => Step(state, rule, sensor.Key.Device, sensor.Key.Sensor, ts, value)));
            }
            return changes;
        }
        lock (_lock)
        {
            foreach (var r in readings.OrderBy(r => r.Timestamp))
            {
                if (RuleFor(r.Device, r.Sensor) is not { } rule) continue;
                if (!_states.TryGetValue((r.Device, r.Sensor), out var s)) _states[(r.Device, r.Sensor)] = s = new AlertState();
                if (Step(s, rule, r.Device, r.Sensor, r.Timestamp, r.Value) is { } change) changes.Add(change);
            }
        }
        return changes;
    }

    /// <summary>One reading through a sensor's state: the change it makes, or null.</summary>
    private static AlertChange? Step(AlertState s, AlertRuleConfig rule, string device, string sensor, DateTimeOffset timestamp, double value)
    {
        // A backfilled reading older than what was already judged does not rewrite the present.
        if (timestamp < s.Last) return null;
        s.Last = timestamp;
        var outside = (rule.Above is { } above && value > above) || (rule.Below is { } below && value < below);
        if (s.Active == outside)
        {
            s.Since = null;
            return null;
        }
        s.Since ??= timestamp;
        // From unknown (just started) to inside: settle at once, publishing "cleared".
        if (s.Active is null && !outside || timestamp - s.Since.Value >= rule.For)
        {
            s.Active = outside;
            s.Since = null;
            s.Value = value;
            s.At = timestamp;
            return new AlertChange(device, sensor, outside, value, timestamp, Describe(rule));
        }
        return null;
    }

    /// <summary>The device's raised alerts.</summary>
    /// <exception cref="System.Data.Common.DbException">The shared database could not be asked.</exception>
    public IReadOnlyList<AlertChange> Active(string device)
    {
        if (_shared is not null)
            return [.. _shared.Raised(device).Where(a => RuleFor(device, a.Sensor) is not null)
                .Select(a => new AlertChange(device, a.Sensor, true, a.Value, a.At, Describe(RuleFor(device, a.Sensor)!)))];
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

    /// <inheritdoc />
    public void Dispose() => _shared?.Dispose();
}
