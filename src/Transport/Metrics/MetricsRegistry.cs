using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Pinhole.Transport.Metrics;

/// <summary>
/// A small, lock-free registry of counters and gauges that renders the Prometheus text exposition
/// format (version 0.0.4). Shared by the edge and the relay for their <c>/metrics</c> endpoints.
/// </summary>
public sealed class MetricsRegistry
{
    private readonly ConcurrentDictionary<string, Family> _families = new(StringComparer.Ordinal);

    /// <summary>Gets or creates a monotonically increasing counter.</summary>
    /// <param name="name">Metric name, for example <c>pinhole_frames_total</c>.</param>
    /// <param name="help">One line of help text.</param>
    /// <param name="labels">Label pairs identifying this series, for example <c>("camera", "door")</c>.</param>
    public Counter Counter(string name, string help, params (string Name, string Value)[] labels) =>
        (Counter)GetFamily(name, help, "counter").Series.GetOrAdd(LabelKey(labels), _ => new Counter());

    /// <summary>Gets or creates a gauge whose value is set explicitly.</summary>
    public Gauge Gauge(string name, string help, params (string Name, string Value)[] labels) =>
        (Gauge)GetFamily(name, help, "gauge").Series.GetOrAdd(LabelKey(labels), _ => new Gauge());

    /// <summary>Registers (or replaces) a gauge read from a callback at scrape time.</summary>
    public void ObservableGauge(string name, string help, Func<double> read, params (string Name, string Value)[] labels) =>
        GetFamily(name, help, "gauge").Series[LabelKey(labels)] = new CallbackGauge(read);

    /// <summary>Removes one series, for example when a camera is removed from the config.</summary>
    public void Remove(string name, params (string Name, string Value)[] labels)
    {
        if (_families.TryGetValue(name, out var family))
            family.Series.TryRemove(LabelKey(labels), out _);
    }

    /// <summary>Renders every series in the Prometheus text format.</summary>
    public string Render()
    {
        var sb = new StringBuilder();
        foreach (var (name, family) in _families.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            sb.Append("# HELP ").Append(name).Append(' ').Append(family.Help).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(' ').Append(family.Type).Append('\n');
            foreach (var (labels, series) in family.Series.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                sb.Append(name).Append(labels).Append(' ')
                  .Append(series.Value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
            }
        }
        return sb.ToString();
    }

    private Family GetFamily(string name, string help, string type)
    {
        var family = _families.GetOrAdd(name, _ => new Family(help, type));
        if (family.Type != type)
            throw new InvalidOperationException($"metric {name} is already registered as a {family.Type}");
        return family;
    }

    private static string LabelKey((string Name, string Value)[] labels)
    {
        if (labels.Length == 0) return "";
        var sb = new StringBuilder("{");
        for (var i = 0; i < labels.Length; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append(labels[i].Name).Append("=\"");
            foreach (var c in labels[i].Value)
            {
                // Text format escaping: backslash, double quote and line feed.
                switch (c)
                {
                    case '\\': sb.Append("\\\\"); break;
                    case '"': sb.Append("\\\""); break;
                    case '\n': sb.Append("\\n"); break;
                    default: sb.Append(c); break;
                }
            }
            sb.Append('"');
        }
        return sb.Append('}').ToString();
    }

    private sealed record Family(string Help, string Type)
    {
        public ConcurrentDictionary<string, Series> Series { get; } = new(StringComparer.Ordinal);
    }
}

/// <summary>One time series.</summary>
public abstract class Series
{
    /// <summary>The current value.</summary>
    public abstract double Value { get; }
}

/// <summary>A counter: only goes up.</summary>
public sealed class Counter : Series
{
    private long _value;

    /// <summary>Adds <paramref name="amount"/> (default 1).</summary>
    public void Inc(long amount = 1) => Interlocked.Add(ref _value, amount);

    /// <summary>The count so far.</summary>
    public long Count => Interlocked.Read(ref _value);

    /// <inheritdoc />
    public override double Value => Count;
}

/// <summary>A gauge: set to any value.</summary>
public sealed class Gauge : Series
{
    private double _value;

    /// <summary>Sets the value.</summary>
    public void Set(double value) => Volatile.Write(ref _value, value);

    /// <inheritdoc />
    public override double Value => Volatile.Read(ref _value);
}

internal sealed class CallbackGauge(Func<double> read) : Series
{
    public override double Value => read();
}
