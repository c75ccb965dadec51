using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Fleet;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Systemd;
using Pinhole.EdgeHost.Cameras;
using Pinhole.EdgeHost.Uplink;
using Pinhole.EdgeHost.Web;
using System.Diagnostics.Metrics;
using Pinhole.EdgeHost.Telemetry;
using Pinhole.Metrics;
using Pinhole.Transport.Metrics;
using Pinhole.Transport.Security;

namespace Pinhole.EdgeHost;

/// <summary>
/// Composes the edge host: Generic Host + Kestrel for the local page, the pipeline supervisor,
/// the systemd integration and the features' pipeline factories.
/// </summary>
public static partial class EdgeApp
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "web.password is not set: nobody can log in to the local page until it is")]
    private static partial void LogNoPassword(ILogger logger);

    /// <summary>
    /// Each feature adds its factory here (one line per feature), e.g.
    /// <c>services.AddPipelineFactory&lt;UplinkPipelineFactory&gt;();</c>.
    /// </summary>
    public static void AddFeatures(IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);

        // Video: one uplink client for the process (it owns the send queue and the per-camera sinks,
        // which outlive pipeline restarts); the supervisor gets a fresh uplink pipeline per (re)start
        // and one pipeline per camera writing into it.
        // Fleet: the relay's desired configuration arrives on the uplink's data channel (docs/fleet.md).
        // Updates (docs/updates.md): only when edge.json has an "update" section; they share the data channel.
        services.AddSingleton<FleetAgent>();
        services.AddSingleton(sp => sp.GetRequiredService<EdgeConfig>().RtspServer is { } rtsp
            ? new Inbound.InboundRtspServer(rtsp, sp.GetRequiredService<Meter>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>())
            : null!);
        services.AddSingleton<IHostedService>(sp => (IHostedService?)sp.GetService<Inbound.InboundRtspServer>() ?? new NothingHostedService());
        services.AddSingleton(sp => new Tunnels.TunnelAgent(sp.GetRequiredService<EdgeConfig>().Expose, sp.GetRequiredService<Meter>(),
            sp.GetRequiredService<ILogger<Tunnels.TunnelAgent>>())
        {
            // The relay's /devices/ID/ui/ reaches the page through the reserved tunnel name "ui" (docs/tunnels.md).
            PageEndPoint = () => PageEndPoint(sp),
        });
        services.AddSingleton(sp =>
        {
            var config = sp.GetRequiredService<EdgeConfig>();
            var client = new UplinkClient(UplinkClientOptions.FromConfig(config),
                sp.GetRequiredService<Meter>(), sp.GetRequiredService<ILoggerFactory>(), sp.GetRequiredService<TimeProvider>());
            var fleet = sp.GetRequiredService<FleetAgent>();
            fleet.LinkRate = () => client.LinkBytesPerSecond;
            // Tunnels (docs/tunnels.md): offered always, so the relay hears "not exposed" rather than "not supported".
            client.TunnelHandler = sp.GetRequiredService<Tunnels.TunnelAgent>().OnOpen;
            // WAN to LAN media (docs/rtsp.md): offered only with an "rtspServer" section.
            client.InboundMedia = sp.GetService<Inbound.InboundRtspServer>();
            if (config.Update is null)
            {
                client.DataHandler = fleet;
                return client;
            }
            var updates = new Updates.UpdateAgent(config, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<Updates.UpdateAgent>>(),
                client, sp.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>());
            client.DataHandler = new UplinkDataHandlers(fleet, updates);
            client.DataFeatures = Transport.Uplink.UplinkCapabilities.Updates;
            return client;
        });
        services.AddSingleton(sp => ((sp.GetRequiredService<UplinkClient>().DataHandler as UplinkDataHandlers)?.Handlers.OfType<Updates.UpdateAgent>().FirstOrDefault())!);
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<EdgeConfig>().Update is null
            ? new NothingHostedService()
            : ActivatorUtilities.CreateInstance<Updates.TrialMonitor>(sp));
        services.AddPipelineFactory((sp, config) =>
        {
            var uplink = sp.GetRequiredService<UplinkClient>();
            var logs = sp.GetRequiredService<ILoggerFactory>();
            var meter = sp.GetRequiredService<Meter>();
            return
            [
                PipelineSpec.For("uplink", new { config.DeviceId, config.Token, config.Relays, config.TrustedCa, config.Proxy, config.Uplink.Transport },
                    () => uplink.CreatePipeline(UplinkClientOptions.FromConfig(config))),
                .. config.Cameras.Select(c =>
                {
                    // One source per spec, shared by every restart of the camera's pipeline, so an rtsp://
                    // camera remembers the transport that worked; a config change makes a new spec and
                    // starts afresh. Created at the first start, as before, so a bad source fails the pipeline.
                    var source = new Lazy<Drivers.Cameras.CameraSource>(() => CameraPipeline.CreateSource(c, logs));
                    return PipelineSpec.For($"camera/{c.Name}", c, () => CameraPipeline.Create(c, source.Value, uplink, meter));
                }),
            ];
        });

        // Telemetry: sensor pollers and the MQTT session around one disk-backed outbox.
        services.AddPipelineFactory<Telemetry.TelemetryPipelineFactory>();
    }

    /// <summary>
    /// The page listener as a loopback address the device can dial itself (Kestrel reports what it bound:
    /// a wildcard or localhost becomes 127.0.0.1); null before it listens.
    /// </summary>
    internal static IPEndPoint? PageEndPoint(IServiceProvider services)
    {
        var addresses = services.GetService<Microsoft.AspNetCore.Hosting.Server.IServer>()?.Features
            .Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()?.Addresses;
        foreach (var address in addresses ?? [])
        {
            if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Port <= 0) continue;
            var host = uri.Host.Trim('[', ']');
            if (host is "localhost" or "0.0.0.0" or "::" or "+" or "*") return new IPEndPoint(IPAddress.Loopback, uri.Port);
            if (IPAddress.TryParse(host, out var ip)) return new IPEndPoint(ip, uri.Port);
        }
        return null;
    }

    /// <summary>Builds (does not start) the host.</summary>
    public static WebApplication Build(EdgeHostOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            ContentRootPath = AppContext.BaseDirectory,
            EnvironmentName = Environments.Production,
        });

        ConfigureLogging(builder.Logging, options);
        builder.Services.Configure<HostOptions>(h =>
        {
            // systemd's TimeoutStopSec is 10 s; finish well inside the 5 s the product promises.
            h.ShutdownTimeout = TimeSpan.FromSeconds(4);
        });

        if (!WebListen.TryParse(options.Config.Web.Listen, out var listen, out var listenError))
            throw new InvalidOperationException(listenError);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = 64 * 1024;
            k.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
            k.Limits.MaxConcurrentConnections = 64;
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
            // Kestrel's default (130 s) let 64 idle connections lock the owner out for minutes; requests
            // without a session also get "Connection: close" (see EdgePage).
            k.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(15);
            var perAddress = new ConnectionsPerAddress(options.WebConnectionsPerAddress);
            if (listen.Localhost) k.ListenLocalhost(listen.Port, perAddress.Apply);
            else if (listen.Address!.Equals(IPAddress.Any)) k.ListenAnyIP(listen.Port, perAddress.Apply);
            else k.Listen(listen.Address, listen.Port, perAddress.Apply);
        });

        var services = builder.Services;
        services.AddSingleton(options);
        services.AddSingleton(options.Time);
        services.AddSingleton(options.Systemd);
        services.AddSingleton(options.Supervisor);
        services.AddPrometheusExport(PinholeMeters.Edge);
        services.AddSingleton(sp => new TelemetryCounters(sp.GetRequiredService<Meter>()));
        services.AddSingleton(options.Config);
        services.AddSingleton<PipelineSupervisor>();
        services.AddSingleton(sp => new EdgeConfigStore(options.ConfigPath, options.Config,
            sp.GetRequiredService<PipelineSupervisor>(), sp.GetRequiredService<ILogger<EdgeConfigStore>>()));
        services.AddSingleton(sp => new LoginThrottle(options.LoginThrottle, options.Time));
        services.AddPageSignIn();
        services.AddSingleton<PageAuthenticator>();
        services.AddHostedService<SupervisorHostedService>();
        AddSystemd(services, options.Systemd);
        services.AddHostedService<ReloadOnSighup>();

        if (options.IncludeFeatures) AddFeatures(services);
        options.ConfigureServices?.Invoke(services);

        var app = builder.Build();
        EdgePage.Map(app);
        if (options.Config.Web.Password is null)
            LogNoPassword(app.Logger);
        return app;
    }

    /// <summary>
    /// systemd's <c>Type=notify</c> through Microsoft.Extensions.Hosting.Systemd: its <see cref="SystemdLifetime"/>
    /// (READY=1, STOPPING=1, SIGTERM) and <see cref="SystemdNotifier"/>, plus <see cref="SystemdService"/> for
    /// STATUS= and the supervisor-gated WATCHDOG=1. Nothing at all without a NOTIFY_SOCKET (a shell, the tests).
    /// </summary>
    /// <remarks>
    /// Not the package's <c>UseSystemd()</c>/<c>AddSystemd()</c>: they switch on only when systemd is the
    /// parent process, and while an update is on trial the parent is pinhole-launch (the unit has
    /// <c>NotifyAccess=all</c> for that, docs/updates.md). READY=1 would then never come, systemd would time
    /// the start out and the launcher roll back every update. sd_notify(3) itself goes by NOTIFY_SOCKET, so
    /// that decides here; what is registered is what <c>AddSystemd()</c> registers. The journald log format
    /// follows JOURNAL_STREAM (see <see cref="ConfigureLogging"/>).
    /// </remarks>
    private static void AddSystemd(IServiceCollection services, SystemdEnvironment systemd)
    {
        if (systemd.NotifySocket is null) return;
        services.AddSingleton<SystemdNotifier>();
        services.AddSingleton<ISystemdNotifier>(sp => ActivatorUtilities.CreateInstance<SupervisorStatusNotifier>(sp, sp.GetRequiredService<SystemdNotifier>()));
        services.AddSingleton<IHostLifetime, SystemdLifetime>();
        services.AddHostedService<SystemdService>();
    }

    private static void ConfigureLogging(ILoggingBuilder logging, EdgeHostOptions options)
    {
        logging.ClearProviders();
        logging.SetMinimumLevel(options.LogLevel);
        logging.AddFilter("Microsoft", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
        if (options.Systemd.JournalStream)
        {
            // stdout is connected to journald (systemd.exec(5)): the systemd console format, as the package's
            // AddSystemd() picks: one line per entry, priority as a "<N>" prefix (sd-daemon(3)), no timestamps
            // (journald adds its own).
            logging.AddSystemdConsole(o => o.IncludeScopes = false);
        }
        else
        {
            logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                o.UseUtcTimestamp = true;
            });
        }
    }

    /// <summary>Closes a connection at once when its address already holds the most it may: one client cannot take every slot.</summary>
    private sealed class ConnectionsPerAddress(int max)
    {
        private readonly Transport.Sockets.ConnectionsPerAddress _open = new(max);

        public void Apply(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions listen) => listen.Use(next => async connection =>
        {
            var address = (connection.RemoteEndPoint as IPEndPoint)?.Address;
            if (address is null)
            {
                await next(connection);
                return;
            }
            if (!_open.TryEnter(address))
            {
                connection.Abort();
                return;
            }
            try
            {
                await next(connection);
            }
            finally
            {
                _open.Leave(address);
            }
        });
    }

    /// <summary>SIGHUP (<c>systemctl reload</c>) re-reads edge.json and applies it, like a save from the page.</summary>
    private sealed partial class ReloadOnSighup(EdgeConfigStore store, ILogger<ReloadOnSighup> logger) : IHostedService, IDisposable
    {
        private System.Runtime.InteropServices.PosixSignalRegistration? _registration;

        public Task StartAsync(CancellationToken cancellationToken)
        {
            if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
            {
                // A parent may hand SIGHUP down as ignored (nohup, some supervisors), and .NET then
                // never delivers it to the registration below. Here SIGHUP means "reload", as for
                // nginx or sshd, so take it back to the default first.
                const int SigHup = 1;
                if (SetSignalHandler(SigHup, 0 /* SIG_DFL */) == 1 /* it was SIG_IGN */) LogWasIgnored(logger);
                _registration = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGHUP, context =>
                {
                    context.Cancel = true;
                    LogReloading(logger);
                    _ = Task.Run(store.ReloadAsync);
                });
            }
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Dispose() => _registration?.Dispose();

        [LoggerMessage(Level = LogLevel.Information, Message = "SIGHUP: reloading the config")]
        private static partial void LogReloading(ILogger logger);

        [LoggerMessage(Level = LogLevel.Debug, Message = "SIGHUP was inherited as ignored (nohup?); it reloads the config all the same")]
        private static partial void LogWasIgnored(ILogger logger);

        // signal(2): returns the previous handler (SIG_IGN is 1).
        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "signal")]
        private static extern nint SetSignalHandler(int signal, nint handler);
    }

    /// <summary>Starts the supervisor with the host and stops it (within the shutdown timeout) with the host.</summary>
    private sealed class SupervisorHostedService(PipelineSupervisor supervisor, EdgeConfigStore store) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => supervisor.StartAsync(store.Current);

        public Task StopAsync(CancellationToken cancellationToken) => supervisor.StopAsync().WaitAsync(cancellationToken);
    }
}
