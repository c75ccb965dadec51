using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;

namespace Pinhole.Metrics;

/// <summary>
/// An app's metrics, the same way in the edge and the relay: one <see cref="Meter"/> from the host's
/// <see cref="IMeterFactory"/> (registered as the singleton <see cref="Meter"/> its features create
/// instruments on), exported at <c>/metrics</c> in Prometheus text format by OpenTelemetry's exporter.
/// </summary>
public static class PrometheusExport
{
    /// <summary>The path both apps serve their metrics at (docs/interface: <c>/metrics</c>).</summary>
    public const string Path = "/metrics";

    /// <summary>
    /// Registers the meter <paramref name="meterName"/> unless the caller registered a <see cref="Meter"/>
    /// already (features call this, so each works in a host of its own).
    /// </summary>
    public static IServiceCollection AddPinholeMeter(this IServiceCollection services, string meterName)
    {
        ArgumentException.ThrowIfNullOrEmpty(meterName);
        services.AddMetrics();
        services.TryAddSingleton(sp => sp.GetRequiredService<IMeterFactory>().Create(meterName));
        return services;
    }

    /// <summary>Registers the meter <paramref name="meterName"/> and the Prometheus exporter of its instruments.</summary>
    public static IServiceCollection AddPrometheusExport(this IServiceCollection services, string meterName)
    {
        services.AddPinholeMeter(meterName);
        services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter(meterName);
            // A MeterProvider listens to every meter of that name in the process; tests run several
            // hosts in one process, so export only the instruments of this host's meter factory.
            ((IDeferredMeterProviderBuilder)metrics).Configure((sp, builder) =>
            {
                var factory = sp.GetRequiredService<IMeterFactory>();
                builder.AddView(i => ReferenceEquals(i.Meter.Scope, factory) ? null : MetricStreamConfiguration.Drop);
            });
            metrics.AddPrometheusExporter(o =>
            {
                // Keep the documented names and series: counters are already named *_total, no
                // scope label or target_info, and every scrape reads fresh values.
                o.DisableTotalNameSuffixForCounters = true;
                o.ScopeInfoEnabled = false;
                o.TargetInfoEnabled = false;
                o.ScrapeResponseCacheDurationMilliseconds = 0;
            });
        });
        return services;
    }

    /// <summary>
    /// Serves <see cref="Path"/> from this point of the request pipeline (a branch, so the middleware
    /// added before it applies and the endpoints after it do not see the request).
    /// </summary>
    /// <param name="app">The app's pipeline.</param>
    /// <param name="refuse">Asked first for each request; a result it returns is sent instead of the
    /// metrics (e.g. 401 without a token). Null serves everyone.</param>
    public static IApplicationBuilder UsePrometheusExport(this IApplicationBuilder app, Func<HttpContext, Task<IResult?>>? refuse = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.UseOpenTelemetryPrometheusScrapingEndpoint(
            meterProvider: null,
            predicate: context => context.Request.Path == Path,
            path: null,
            configureBranchedPipeline: refuse is null ? null : branch => branch.Use(async (context, next) =>
            {
                if (await refuse(context).ConfigureAwait(false) is { } refusal)
                {
                    await refusal.ExecuteAsync(context).ConfigureAwait(false);
                    return;
                }
                await next(context).ConfigureAwait(false);
            }),
            optionsName: null);
    }
}
