using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;
using Pinhole.Transport.Metrics;

namespace Pinhole.EdgeHost.Telemetry;

/// <summary>
/// The edge's metrics: one <see cref="Meter"/> (<see cref="PinholeMeters.Edge"/>) from the host's
/// <see cref="IMeterFactory"/>, exported at <c>/metrics</c> by OpenTelemetry's Prometheus exporter.
/// The relay's <c>MetricsExport</c> is the same with its own meter. See docs/telemetry.md, "Metrics".
/// </summary>
internal static class MetricsExport
{
    /// <summary>Registers the meter (unless the caller registered one) and the exporter.</summary>
    public static IServiceCollection AddEdgeMetrics(this IServiceCollection services)
    {
        services.AddMetrics();
        services.TryAddSingleton(sp => sp.GetRequiredService<IMeterFactory>().Create(PinholeMeters.Edge));
        services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter(PinholeMeters.Edge);
            // A MeterProvider listens to every meter of that name in the process; tests run several
            // hosts in one process, so export only the instruments of this host's meter factory.
            ((IDeferredMeterProviderBuilder)metrics).Configure((sp, builder) =>
            {
                var factory = sp.GetRequiredService<IMeterFactory>();
                builder.AddView(i => ReferenceEquals(i.Meter.Scope, factory) ? null : MetricStreamConfiguration.Drop);
            });
            metrics.AddPrometheusExporter(o =>
            {
                // Keep the documented names and series as they were: counters are already named
                // *_total, no scope label or target_info, and every scrape reads fresh values.
                o.DisableTotalNameSuffixForCounters = true;
                o.ScopeInfoEnabled = false;
                o.TargetInfoEnabled = false;
                o.ScrapeResponseCacheDurationMilliseconds = 0;
            });
        });
        return services;
    }
}
