using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Security;
using Pinhole.Relay.Web;
using Pinhole.Streaming;
using Pinhole.Streaming.Rtsp;
using Pinhole.Relay.Viewers;
using System.Diagnostics.Metrics;
using Pinhole.Relay.Telemetry;
using Pinhole.Transport.Security;

namespace Pinhole.Relay.Rtsp;

/// <summary>Registers the RTSP server with the relay host.</summary>
public static class RtspServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="RtspServer"/> as a singleton and a hosted service. Uses the registered
    /// <see cref="RtspServerOptions"/>, or builds them from <see cref="RelayConfig.Rtsp"/>; the
    /// stream registry, viewer directory, metrics and clock are taken from the container, with
    /// defaults (no viewers, a fresh registry) only when the host registered none.
    /// </summary>
    public static IServiceCollection AddRtspServer(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        // Registering twice would start the same server twice.
        if (services.Any(d => d.ServiceType == typeof(RtspServer))) return services;
        services.TryAddSingleton(TimeProvider.System);
        services.AddRelayMeter();
        services.TryAddSingleton(_ => new MediaStreamRegistry());
        services.TryAddSingleton(sp => new ViewerDirectory(sp.GetService<RelayConfig>()?.Viewers ?? []));
        services.TryAddSingleton(sp =>
        {
            var config = sp.GetService<RelayConfig>();
            if (config is null) return new RtspServerOptions();
            // The loader has validated the address already; this only repeats its parse.
            if (!RelayConfigLoader.TryParseEndPoint(config.Rtsp, out var endPoint))
                throw new InvalidOperationException($"rtsp: \"{config.Rtsp}\" is not HOST:PORT");
            IPEndPoint? tlsEndPoint = null;
            if (config.Rtsps is { } rtsps && !RelayConfigLoader.TryParseEndPoint(rtsps, out tlsEndPoint))
                throw new InvalidOperationException($"rtsps: \"{rtsps}\" is not HOST:PORT");
            return new RtspServerOptions
            {
                EndPoint = endPoint,
                MaxConnections = config.Limits.RtspConnections,
                MaxConnectionsPerAddress = config.Limits.RtspConnectionsPerAddress,
                AnonymousViewing = config.AnonymousViewing,
                AllowBasicOnPlaintext = config.RtspBasicOverPlaintext,
                TlsEndPoint = tlsEndPoint,
                TlsCertificate = tlsEndPoint is not null && config.Tls is { } tls ? LoadCertificate(tls) : null,
            };
        });
        services.TryAddSingleton(sp => new RtspServer(
            sp.GetRequiredService<RtspServerOptions>(),
            sp.GetRequiredService<MediaStreamRegistry>(),
            sp.GetRequiredService<ViewerDirectory>(),
            sp.GetRequiredService<Meter>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<RtspServer>>(),
            new RtspLoginThrottle(sp.GetService<LoginThrottle>() ?? new LoginThrottle(new BrowserViewingOptions().LoginThrottle(), sp.GetRequiredService<TimeProvider>())),
            sp.GetService<RefusalLog>() ?? new RefusalLog(sp.GetRequiredService<Meter>(), sp.GetRequiredService<TimeProvider>()),
            sp.GetService<IRtspPublishHandler>()));
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<RtspServer>());
        return services;
    }

    // SslStream on Linux needs the key in a persisted (PKCS#12) form, not the ephemeral one PEM loading gives.
    private static X509Certificate2 LoadCertificate(TlsConfig tls)
    {
        using var pem = X509Certificate2.CreateFromPemFile(tls.Certificate, tls.Key);
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }
}
