using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Pinhole.Testing;

/// <summary>
/// Reads one <see cref="Meter"/>'s instruments in a test that has no <c>/metrics</c> endpoint (a
/// component built without its host). <see cref="Render"/> writes one line per series the way
/// OpenTelemetry's Prometheus exporter does with the apps' settings: <c>name{a="1",b="2"} value</c>,
/// labels sorted by name, <c>name{} value</c> without labels. Counters count from the probe's
/// creation, so create it before the component does anything.
/// </summary>
public sealed class MeterProbe : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, double> _sums = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, double> _last = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, double> _observed = new(StringComparer.Ordinal);
    private readonly Lock _observe = new();

    /// <summary>Starts listening to <paramref name="meter"/>.</summary>
    public MeterProbe(Meter meter)
    {
        ArgumentNullException.ThrowIfNull(meter);
        Meter = meter;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter)) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    /// <summary>The meter listened to.</summary>
    public Meter Meter { get; }

    /// <summary>Every series now, one line each, sorted.</summary>
    public string Render()
    {
        var lines = new List<string>();
        lock (_observe)
        {
            _observed.Clear();
            _listener.RecordObservableInstruments();
            foreach (var map in new[] { _sums, _last, _observed })
                foreach (var (series, value) in map)
                    lines.Add(series + " " + value.ToString("R", CultureInfo.InvariantCulture));
        }
        lines.Sort(StringComparer.Ordinal);
        return string.Concat(lines.Select(l => l + "\n"));
    }

    /// <summary>The value of one series, or null when it is not reported.</summary>
    public double? Value(string name, params (string Name, string Value)[] labels)
    {
        var prefix = Series(name, labels.Select(l => new KeyValuePair<string, object?>(l.Name, l.Value)).ToArray()) + " ";
        var line = Render().Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null ? null : double.Parse(line[prefix.Length..], CultureInfo.InvariantCulture);
    }

    /// <inheritdoc />
    public void Dispose() => _listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var series = Series(instrument.Name, tags.ToArray());
        switch (instrument)
        {
            case ObservableCounter<long> or ObservableCounter<int> or ObservableCounter<double>
                or ObservableGauge<long> or ObservableGauge<int> or ObservableGauge<double>
                or ObservableUpDownCounter<long> or ObservableUpDownCounter<double>:
                _observed[series] = value;
                break;
            case Counter<long> or Counter<int> or Counter<double> or UpDownCounter<long> or UpDownCounter<int> or UpDownCounter<double>:
                _sums.AddOrUpdate(series, value, (_, sum) => sum + value);
                break;
            default:
                _last[series] = value;
                break;
        }
    }

    private static string Series(string name, KeyValuePair<string, object?>[] tags)
    {
        var sb = new StringBuilder(name).Append('{');
        var first = true;
        foreach (var (key, value) in tags.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            if (!first) sb.Append(',');
            first = false;
            sb.Append(key).Append("=\"").Append(Convert.ToString(value, CultureInfo.InvariantCulture)?
                .Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('"');
        }
        return sb.Append('}').ToString();
    }
}
