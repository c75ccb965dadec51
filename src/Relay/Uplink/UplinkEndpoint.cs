using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Security;
using Pinhole.Streaming;
using System.Diagnostics.Metrics;
using Pinhole.Relay.Telemetry;
using Pinhole.Transport.Uplink;
using Pinhole.Transport.Security;

namespace Pinhole.Relay.Uplink;

/// <summary>Wires the device uplink endpoint into the relay.</summary>
public static class UplinkEndpoint
{
    /// <summary>Registers the uplink services (session registry, options, and defaults for the time provider and metrics).
    /// The host must also register <see cref="MediaStreamRegistry"/> and an <see cref="IDeviceAuthenticator"/>.</summary>
    public static IServiceCollection AddUplink(this IServiceCollection services, Action<UplinkEndpointOptions>? configure = null)
    {
        var options = new UplinkEndpointOptions();
        configure?.Invoke(options);
        services.TryAddSingleton(options);
        services.TryAddSingleton<UplinkSessionRegistry>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddRelayMeter();
        services.TryAddSingleton<RefusalLog>();
        services.TryAddSingleton(sp => new UplinkMetrics(sp.GetRequiredService<Meter>()));
        return services;
    }

    /// <summary>Maps the <c>/uplink</c> WebSocket endpoint (see docs/uplink-protocol.md). Needs <c>app.UseWebSockets()</c>.</summary>
    public static IEndpointRouteBuilder MapUplink(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var sp = endpoints.ServiceProvider;
        var options = sp.GetService<UplinkEndpointOptions>() ?? new UplinkEndpointOptions();
        var sessions = sp.GetService<UplinkSessionRegistry>() ?? new UplinkSessionRegistry();
        var meter = sp.GetRequiredService<UplinkMetrics>().Meter;
        // Wrong device tokens are slowed per address: a device token names no account to lock.
        var throttle = LoginThrottle.PerAddress(sp.GetService<TimeProvider>() ?? TimeProvider.System);
        meter.CreateObservableGauge("pinhole_uplinks_connected", () => sessions.Count, description: "Devices with a live uplink.");
        meter.CreateObservableGauge("pinhole_uplinks_http", () => sessions.CountOver(UplinkTransport.Http),
            description: "Devices whose live uplink uses the HTTP fallback (docs/uplink-protocol.md §1a).");
        var pending = new HttpUplinkSessions();
        endpoints.Map(options.Path, context => HandleAsync(context, options, sessions, throttle, pending));
        return endpoints;
    }

    private static async Task HandleAsync(HttpContext context, UplinkEndpointOptions options, UplinkSessionRegistry sessions, LoginThrottle throttle, HttpUplinkSessions pending)
    {
        var sp = context.RequestServices;
        var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Pinhole.Relay.Uplink");
        var metrics = sp.GetRequiredService<UplinkMetrics>();
        var remote = context.Connection.RemoteIpAddress?.ToString();

        // A WebSocket upgrade, or one half of the HTTP fallback (docs/uplink-protocol.md §1a): the GET that
        // streams down (asked for with Pinhole-Transport: http) and the POST that streams up (naming its session).
        var httpDown = !context.WebSockets.IsWebSocketRequest && HttpMethods.IsGet(context.Request.Method)
            && context.Request.Headers[UplinkProtocol.TransportHeader].ToString().Equals("http", StringComparison.OrdinalIgnoreCase);
        var httpUp = !context.WebSockets.IsWebSocketRequest && HttpMethods.IsPost(context.Request.Method)
            && context.Request.Headers[UplinkProtocol.SessionHeader].ToString().Length > 0;
        if (!context.WebSockets.IsWebSocketRequest && !httpDown && !httpUp)
        {
            await RefuseAsync(context, StatusCodes.Status400BadRequest, UplinkReason.BadRequest, "the uplink is a WebSocket endpoint; send a WebSocket upgrade", logger, metrics, remote);
            return;
        }

        var deviceId = context.Request.Headers[UplinkProtocol.DeviceHeader].ToString();
        var authorization = context.Request.Headers.Authorization.ToString();
        const string bearer = "Bearer ";
        if (deviceId.Length == 0 || !authorization.StartsWith(bearer, StringComparison.OrdinalIgnoreCase) || authorization.Length == bearer.Length)
        {
            await RefuseAsync(context, StatusCodes.Status401Unauthorized, UplinkReason.Unauthorized,
                $"send the device id in the {UplinkProtocol.DeviceHeader} header and the token as Authorization: Bearer", logger, metrics, remote);
            return;
        }

        var versions = context.Request.Headers[UplinkProtocol.VersionHeader].ToString();
        if (versions.Length > 0 && !UplinkSession.OffersOurVersion(versions))
        {
            await RefuseAsync(context, StatusCodes.Status400BadRequest, UplinkReason.UnsupportedVersion,
                $"device offers protocol version(s) {Sanitize(versions)}; this relay speaks {UplinkProtocol.Version}", logger, metrics, remote);
            return;
        }

        var refusals = sp.GetRequiredService<RefusalLog>();
        var address = remote ?? "unknown";
        var wait = throttle.RetryAfter(address);
        if (wait > TimeSpan.Zero)
        {
            // Not even looked at: this address sent wrong tokens too often.
            var seconds = (int)Math.Ceiling(wait.TotalSeconds);
            refusals.Refused("uplink-token-throttled", address, $"too many wrong device tokens; next attempt admitted in {seconds} s");
            metrics.Reject("throttled");
            context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
            context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            context.Response.Headers[UplinkProtocol.RejectHeader] = UplinkReason.Unauthorized.ToToken();
            await context.Response.WriteAsync($"uplink refused: too many wrong tokens from this address; retry in {seconds} s\n", context.RequestAborted);
            return;
        }
        var authenticator = sp.GetRequiredService<IDeviceAuthenticator>();
        if (!await authenticator.AuthenticateAsync(deviceId, authorization[bearer.Length..].Trim(), context.RequestAborted))
        {
            throttle.Failed(address);
            // Unknown device and wrong token get the same answer so nobody can probe for device ids.
            await RefuseAsync(context, StatusCodes.Status401Unauthorized, UplinkReason.Unauthorized,
                $"device '{Sanitize(deviceId)}' is unknown or its token is wrong", logger, metrics, remote);
            return;
        }

        throttle.Succeeded(address);
        if (httpUp)
        {
            await HttpUplink.JoinUpstreamAsync(context, deviceId, pending, logger, metrics, remote);
            return;
        }
        if (httpDown)
        {
            await HttpUplink.RunDownstreamAsync(context, deviceId, pending, options, sessions, logger, metrics, remote, refusals);
            return;
        }
        var subProtocol = context.WebSockets.WebSocketRequestedProtocols.Contains(UplinkProtocol.SubProtocol) ? UplinkProtocol.SubProtocol : null;
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            SubProtocol = subProtocol,
            KeepAliveInterval = TimeSpan.Zero, // the protocol has its own heartbeats
        });
        var session = new RelayUplinkSession(deviceId, remote, socket, options, sp.GetRequiredService<MediaStreamRegistry>(), sessions,
            metrics, sp.GetService<TimeProvider>() ?? TimeProvider.System, logger, sp.GetService<IUplinkSessionObserver>(), refusals);
        await session.RunAsync(context.RequestAborted);
    }

    internal static async Task RefuseAsync(HttpContext context, int status, UplinkReason reason, string detail, ILogger logger, UplinkMetrics metrics, string? remote)
    {
        UplinkLog.Refused(logger, remote, reason.ToToken(), detail);
        metrics.Reject(reason.ToToken());
        context.Response.StatusCode = status;
        context.Response.Headers[UplinkProtocol.RejectHeader] = reason.ToToken();
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync($"uplink refused: {reason.ToToken()}: {detail}\n", context.RequestAborted);
    }

    // Header values are echoed into logs and responses: keep them short and printable.
    private static string Sanitize(string value)
    {
        var s = new string([.. value.Take(64).Select(c => c is >= ' ' and < (char)127 ? c : '?')]);
        return value.Length > 64 ? s + "…" : s;
    }
}
