using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace Pinhole.Transport.Metrics;

/// <summary>
/// One observable instrument whose series come and go: each series reads a value the domain keeps
/// (a plain field, a queue length) when the exporter scrapes, and a removed series is no longer
/// reported. <c>System.Diagnostics.Metrics</c> cannot drop one label set of an instrument, so things
/// that are added and removed at run time (pipelines, viewers, cameras) register here.
/// </summary>
/// <remarks>One instance per meter and name (<see cref="Gauge"/> and <see cref="Counter"/> return the
/// same one for the same meter and name), so every owner of a series shares the instrument.</remarks>
public sealed class ObservedSeries
{
    private static readonly ConditionalWeakTable<Meter, ConcurrentDictionary<string, ObservedSeries>> ByMeter = [];
    private readonly ConcurrentDictionary<string, (KeyValuePair<string, object?>[] Tags, Func<double> Read)> _series = new(StringComparer.Ordinal);

    private ObservedSeries() { }

    /// <summary>Gets or creates the observable gauge <paramref name="name"/> of <paramref name="meter"/>.</summary>
    public static ObservedSeries Gauge(Meter meter, string name, string description) => GetOrCreate(meter, name, description, counter: false);

    /// <summary>Gets or creates the observable counter <paramref name="name"/> of <paramref name="meter"/>
    /// (each series reads a value that only goes up).</summary>
    public static ObservedSeries Counter(Meter meter, string name, string description) => GetOrCreate(meter, name, description, counter: true);

    /// <summary>Adds (or replaces) the series with these labels.</summary>
    public void Set(Func<double> read, params (string Name, string Value)[] labels)
    {
        ArgumentNullException.ThrowIfNull(read);
        ArgumentNullException.ThrowIfNull(labels);
        _series[Key(labels)] = ([.. labels.Select(l => new KeyValuePair<string, object?>(l.Name, l.Value))], read);
    }

    /// <summary>Stops reporting the series with these labels.</summary>
    public void Remove(params (string Name, string Value)[] labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        _series.TryRemove(Key(labels), out _);
    }

    private IEnumerable<Measurement<double>> Observe()
    {
        foreach (var (_, (tags, read)) in _series)
            yield return new Measurement<double>(read(), tags);
    }

    private static ObservedSeries GetOrCreate(Meter meter, string name, string description, bool counter)
    {
        ArgumentNullException.ThrowIfNull(meter);
        var byName = ByMeter.GetValue(meter, _ => new ConcurrentDictionary<string, ObservedSeries>(StringComparer.Ordinal));
        return byName.GetOrAdd(name, n =>
        {
            var series = new ObservedSeries();
            if (counter) meter.CreateObservableCounter(n, series.Observe, description: description);
            else meter.CreateObservableGauge(n, series.Observe, description: description);
            return series;
        });
    }

    private static string Key((string Name, string Value)[] labels) =>
        string.Join('\0', labels.Select(l => l.Name + "\u0001" + l.Value));
}
