using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Rtsp;
using Pinhole.Streaming.Rtsp;
using Pinhole.Relay.Security;
using Pinhole.Streaming;
using Pinhole.Relay.Telemetry;
using Pinhole.Relay.Tunnels;
using Pinhole.Relay.Uplink;
using Pinhole.Relay.Viewers;
using Pinhole.Relay.Web;
using Pinhole.Relay.WebRtc;
using Pinhole.Metrics;
using Pinhole.Transport.Metrics;
using Pinhole.Transport.Sockets;

namespace Pinhole.Relay;

/// <summary>
/// The relay as one object: builds the ASP.NET Core application from a validated
/// <see cref="RelayConfig"/>, starts it, and tells where it listens. Used by <c>Program</c> and by
/// tests that run a relay in-process on free loopback ports.
/// </summary>
public sealed class RelayApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private RelayApp(WebApplication app, RelayConfig config)
    {
        _app = app;
        Config = config;
    }

    /// <summary>The configuration the relay runs with.</summary>
    public RelayConfig Config { get; }

    /// <summary>The application's services (registry, metrics, devices…).</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>The HTTP(S) base address actually bound (the port is resolved when the config said 0).</summary>
    public Uri HttpUri { get; private set; } = null!;

    /// <summary>The WebSocket address devices dial: <c>ws(s)://HOST:PORT/uplink</c>.</summary>
    public Uri UplinkUri => new UriBuilder(HttpUri) { Scheme = HttpUri.Scheme == "https" ? "wss" : "ws", Path = "/uplink" }.Uri;

    /// <summary>Builds the application without starting it.</summary>
    public static RelayApp Create(RelayConfig config, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            ContentRootPath = AppContext.BaseDirectory,
            EnvironmentName = Environments.Production,
        });
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);

        var http = new Uri(config.Http);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            k.Limits.MaxRequestBodySize = 1024 * 1024;
            k.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(60);
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(15);
            // One client address may hold only so many connections (a flood or a slowloris must not take
            // every slot from viewers and devices); refused before the TLS handshake costs anything.
            var perAddress = config.Limits.HttpConnectionsPerAddress > 0 ? new ConnectionsPerAddress(config.Limits.HttpConnectionsPerAddress) : null;
            void Listen(ListenOptions o)
            {
                if (perAddress is not null) o.Use(next => async connection =>
                {
                    if ((connection.RemoteEndPoint as IPEndPoint)?.Address is not { } address)
                    {
                        await next(connection);
                        return;
                    }
                    if (!perAddress.TryEnter(address))
                    {
                        o.ApplicationServices.GetService<RefusalLog>()?.Refused("http-connections-per-address", address.ToString(),
                            $"{perAddress.Max} HTTP connections from this address already (limits.httpConnectionsPerAddress)");
                        connection.Abort();
                        return;
                    }
                    try
                    {
                        await next(connection);
                    }
                    finally
                    {
                        perAddress.Leave(address);
                    }
                });
                if (http.Scheme == "https" && config.Tls is { } tls)
                    o.UseHttps(X509Certificate2.CreateFromPemFile(tls.Certificate, tls.Key));
            }
            switch (http.Host)
            {
                case "0.0.0.0" or "*" or "+": k.ListenAnyIP(http.Port, Listen); break;
                case "localhost": k.Listen(IPAddress.Loopback, http.Port, Listen); break;
                default:
                    if (!IPAddress.TryParse(http.Host.Trim('[', ']'), out var ip))
                        throw new InvalidOperationException($"http: \"{http.Host}\" must be an IP address, localhost or 0.0.0.0");
                    k.Listen(ip, http.Port, Listen);
                    break;
            }
        });

        builder.Services.AddSingleton(config);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddPrometheusExport(PinholeMeters.Relay);
        var limits = config.Limits;
        builder.Services.AddSingleton(sp => new MediaStreamRegistry(new MediaStreamLimits
        {
            MaxViewersPerUser = limits.ViewersPerUser,
            MaxCamerasPerDevice = limits.CamerasPerDevice,
            GopCacheMemory = limits.GopCacheMemory,
        }, maxViewersTotal: limits.Viewers, time: sp.GetRequiredService<TimeProvider>()));
        builder.Services.AddSingleton<RefusalLog>();
        if (config.Database.Kind == DatabaseKind.Postgres)
        {
            // One store object serves the fleet, shared browser sessions and device ownership (docs/scale-out.md).
            builder.Services.AddSingleton(_ => new PostgresFleetStore(config.Database));
            builder.Services.AddSingleton<IFleetStore>(sp => sp.GetRequiredService<PostgresFleetStore>());
            builder.Services.AddSingleton<ISessionBackend>(sp => sp.GetRequiredService<PostgresFleetStore>());
            builder.Services.AddSingleton<IDeviceOwnership>(sp => sp.GetRequiredService<PostgresFleetStore>());
        }
        else
        {
            builder.Services.AddSingleton<IFleetStore>(_ => new SqliteFleetStore(config.DataDir));
        }
        builder.Services.AddSingleton<DeviceOwnershipService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<DeviceOwnershipService>());
        builder.Services.AddSingleton(sp => new DeviceRegistry(sp.GetRequiredService<IFleetStore>(), config.Devices));
        builder.Services.AddSingleton<IDeviceAuthenticator>(sp => sp.GetRequiredService<DeviceRegistry>());
        builder.Services.AddSingleton(new ViewerDirectory(config.Viewers));
        // Features register their services here: uplink, RTSP server, browser viewing.
        // A device whose MQTT cannot get through (a proxy strips Upgrade) carries it through its uplink to the broker
        // the relay ingests from (docs/telemetry.md, "Through the uplink").
        builder.Services.AddUplink(o =>
        {
            if (config.Telemetry is { } t && Uri.TryCreate(t.Mqtt, UriKind.Absolute, out var broker))
                o.DeviceServices["mqtt"] = ct => BrokerStream.ConnectAsync(broker, ct);
        });
        // WAN to LAN media: RTSP ANNOUNCE/RECORD to /ID/in/NAME goes down the device's uplink.
        builder.Services.AddSingleton(sp => new Inbound.InboundMediaHub(sp.GetRequiredService<ViewerDirectory>(),
            sp.GetRequiredService<DeviceRegistry>().Exists, sp.GetRequiredService<UplinkSessionRegistry>(),
            sp.GetService<Microsoft.Extensions.Logging.ILogger<Inbound.InboundMediaHub>>()));
        builder.Services.AddSingleton<IRtspPublishHandler>(sp => sp.GetRequiredService<Inbound.InboundMediaHub>());
        builder.Services.AddRtspServer();
        builder.Services.AddBrowserViewing(o => o.ApplyRelayConfig(config));
        builder.Services.AddWebRtc(config);
        // Updates (docs/updates.md): release bundles in dataDir/releases (and in the shared PostgreSQL, copied from there
        // on first use), rollouts in relay.db or the shared PostgreSQL.
        builder.Services.AddSingleton(_ => Updates.UpdateStore.Open(config));
        builder.Services.AddSingleton(_ => Updates.ReleaseStore.Open(config));
        builder.Services.AddSingleton<Updates.UpdateService>();
        builder.Services.AddHostedService<Updates.UpdateWatcher>();
        builder.Services.AddSingleton<FleetService>();
        builder.Services.AddSingleton(sp => new TunnelMetrics(sp.GetRequiredService<System.Diagnostics.Metrics.Meter>()));
        // The device page through the uplink (/devices/ID/ui/, docs/tunnels.md): YARP's forwarder over tunnel streams.
        builder.Services.AddHttpForwarder();
        builder.Services.AddSingleton<DevicePageClients>();
        builder.Services.AddSingleton<IUplinkSessionObserver>(sp => sp.GetRequiredService<FleetService>());
        builder.Services.AddHostedService<FleetWatcher>();
        // Several relays on one PostgreSQL split or share the readings: alert state lives there too (docs/scale-out.md).
        builder.Services.AddSingleton(_ => new AlertEngine(config.Telemetry?.Alerts ?? [],
            config.Telemetry is { Alerts.Count: > 0 } && config.Database.Kind == DatabaseKind.Postgres ? new SharedAlertStates(config.Database) : null));
        if (config.Telemetry is { } telemetry)
        {
            var retention = new TelemetryRetention(telemetry.RawRetention, telemetry.MinuteRetention, telemetry.HourRetention);
            builder.Services.AddSingleton(retention);
            builder.Services.AddSingleton(telemetry);
            builder.Services.AddSingleton<ITelemetryStore>(_ => config.Database.Kind == DatabaseKind.Postgres
                ? new PostgresTelemetryStore(config.Database, retention)
                : new SqliteTelemetryStore(config.DataDir, retention));
            builder.Services.AddSingleton<TelemetryIngest>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<TelemetryIngest>());
            builder.Services.AddHostedService<TelemetryPruner>();
        }
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(15) });
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        // Prometheus text format from OpenTelemetry's exporter, behind the access check (src/Metrics; the check and the relay's own series in Telemetry/MetricsExport.cs).
        app.UseRelayMetrics(config);
        // Several relays on one database: requests for a device held by another relay go there (docs/scale-out.md).
        app.UseOwnerRedirects();
        // Sign-in and the policies (Web/RelayAccess.cs) after those redirects: the owner relay checks the caller.
        app.UseAuthentication();
        app.UseAuthorization();
        // Features map their endpoints here.
        app.MapUplink();
        app.MapBrowserViewing();
        app.MapWhep();
        app.MapTelemetry();
        app.MapFleet();
        app.MapTunnels();
        app.MapDevicePage();
        return new RelayApp(app, config);
    }

    /// <summary>Builds and starts a relay.</summary>
    public static async Task<RelayApp> StartAsync(RelayConfig config, Action<WebApplicationBuilder>? configure = null, CancellationToken cancellationToken = default)
    {
        var relay = Create(config, configure);
        await relay.StartAsync(cancellationToken).ConfigureAwait(false);
        return relay;
    }

    /// <summary>Starts listening.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        RelaySignIn.PrepareKeyRing(_app.Services);
        await _app.StartAsync(cancellationToken).ConfigureAwait(false);
        var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()
            ?? throw new InvalidOperationException("the web server reports no addresses");
        var address = addresses.Addresses.First();
        // Kestrel reports wildcard binds as http://[::]:port; a client needs a dialable address.
        HttpUri = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
        var rtsp = _app.Services.GetService<RtspServer>()?.LocalEndPoint;
        _app.Services.GetRequiredService<DeviceOwnershipService>().SetBoundAddresses(HttpUri, rtsp is null ? null : new IPEndPoint(rtsp.Address.Equals(IPAddress.Any) ? IPAddress.Loopback : rtsp.Address, rtsp.Port).ToString());
    }

    /// <summary>Runs until the process is asked to stop (SIGTERM, Ctrl+C).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    /// <summary>Stops gracefully.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _app.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping took too long; disposing below tears down what is left.
        }
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
