using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.Extensions.Primitives;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Uplink;
using Pinhole.Relay.Web;
using Pinhole.Transport.Uplink;
using Yarp.ReverseProxy.Forwarder;

namespace Pinhole.Relay.Tunnels;

/// <summary>
/// <c>/devices/ID/ui/</c> (docs/tunnels.md, "The device page"): the device's own local page, for admins,
/// through YARP's <see cref="IHttpForwarder"/> over tunnel streams to the reserved tunnel name
/// <c>ui</c>, which the device maps to its page listener and nothing else. WebSocket upgrades (the
/// page's live status) go through as well. The page's own login still applies on top of the relay's
/// admin check.
/// </summary>
/// <remarks>
/// Under the prefix: the request path loses it (<c>/devices/ID/ui/X</c> → <c>/X</c>), <c>Location</c>
/// gains it, device cookies are renamed <c>ui_NAME</c> and scoped to the prefix (no <c>Domain</c>), and only
/// those go back to the device — the relay's own cookies and <c>Authorization</c> never reach it. The
/// device page uses relative URLs, so its HTML is passed through untouched. The Host header is the relay's,
/// so the page's own Origin checks compare like with like.
/// </remarks>
public static partial class DevicePageProxy
{
    /// <summary>Prefix of the device's cookies as the browser stores them (keeps them apart from the relay's).</summary>
    public const string CookiePrefix = "ui_";

    /// <summary>Maps the endpoints.</summary>
    public static IEndpointRouteBuilder MapDevicePage(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        // Also matches /devices/ID/ui itself (the catch-all may be empty); that one is sent to the slash.
        endpoints.Map("/devices/{id}/ui/{**rest}", HandleAsync).RequireAccess(RelayAccess.AdminPolicy, Refuse);
        return endpoints;
    }

    /// <summary>The page's path prefix on the relay, <c>/devices/ID/ui</c> (no trailing slash).</summary>
    public static string Prefix(string id) => "/devices/" + Uri.EscapeDataString(id) + "/ui";

    private static async Task HandleAsync(HttpContext http, string id, DeviceRegistry devices, UplinkSessionRegistry sessions,
        IHttpForwarder forwarder, DevicePageClients clients, ILoggerFactory logs)
    {
        if (!http.Request.Path.Value!.EndsWith('/') && http.Request.Path.Value.EndsWith("/ui", StringComparison.Ordinal)
            && http.Request.Path.Equals(Prefix(id), StringComparison.OrdinalIgnoreCase))
        {
            // Relative URLs in the page resolve against the directory: /devices/ID/ui/ is its root.
            http.Response.Redirect(Prefix(id) + "/" + http.Request.QueryString);
            return;
        }
        var caller = http.User.Identity!.Name!;
        // A session cookie is ambient: another site's page must not drive the device page with it.
        if (!RelayAccess.IsToken(http.User) && !BrowserViewing.IsSameOrigin(http, http.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<BrowserViewingOptions>>().Value))
        {
            await ProblemAsync(http, caller, StatusCodes.Status403Forbidden, "Not allowed", "The device page must be used from the relay's own pages (Origin).");
            return;
        }
        if (!devices.Exists(id))
        {
            await ProblemAsync(http, caller, StatusCodes.Status404NotFound, "Not found", $"There is no device \"{id}\".");
            return;
        }
        if (!sessions.TryGet(id, out var session))
        {
            await ProblemAsync(http, caller, StatusCodes.Status503ServiceUnavailable, "Device offline", $"Device \"{id}\" is offline: its page can be shown once it is connected again.");
            return;
        }
        if (session.Tunnels is null)
        {
            await ProblemAsync(http, caller, StatusCodes.Status502BadGateway, "No device page",
                $"Device \"{id}\" runs an older pinhole-edge without tunnels, so its page cannot be shown through the relay: update it.");
            return;
        }

        var actor = RelayAccess.Actor(http.User);
        var client = clients.For(id, actor);
        var error = await forwarder.SendAsync(http, DevicePageClients.Destination, client,
            DevicePageClients.RequestConfig, new PrefixTransformer(id));
        if (error == ForwarderError.None) return;

        var exception = http.Features.Get<IForwarderErrorFeature>()?.Exception;
        var logger = logs.CreateLogger("Pinhole.Relay.Tunnels.DevicePage");
        Failed(logger, id, actor, error.ToString(), exception?.Message ?? "");
        if (http.Response.HasStarted) return; // mid-body: the connection is aborted, nothing more to say
        var (status, title, message) = Describe(id, error, exception);
        http.Response.Clear();
        await ProblemAsync(http, caller, status, title, message);
    }

    // Not logged in: a browser goes to the relay's login and comes back, a tool gets 401. A viewer: 403.
    private static IResult Refuse(HttpContext http, string? user)
    {
        if (user is not null)
            return Problem(http, user, StatusCodes.Status403Forbidden, "Not allowed", $"{user} is not an admin: the device page is for admins.");
        if (HttpMethods.IsGet(http.Request.Method) && !http.WebSockets.IsWebSocketRequest
            && http.Request.Headers.Accept.ToString().Contains("text/html", StringComparison.OrdinalIgnoreCase))
            return Results.Redirect("/login?next=" + Uri.EscapeDataString((http.Request.PathBase + http.Request.Path).ToString()));
        http.Response.Headers.WWWAuthenticate = "Bearer";
        return Problem(http, null, StatusCodes.Status401Unauthorized, "Log in", "The device page is for admins: log in at /login first.");
    }

    internal static (int Status, string Title, string Message) Describe(string id, ForwarderError error, Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is TunnelResetException reset)
            {
                return reset.Code switch
                {
                    TunnelResetCode.NotExposed => (StatusCodes.Status502BadGateway, "No device page",
                        $"Device \"{id}\" does not serve its page through the relay (its pinhole-edge is older): update it."),
                    TunnelResetCode.Limit => (StatusCodes.Status429TooManyRequests, "Too many streams", $"Device \"{id}\": {reset.Message}"),
                    TunnelResetCode.Timeout => (StatusCodes.Status504GatewayTimeout, "No answer", $"Device \"{id}\" did not answer: {reset.Message}"),
                    _ => (StatusCodes.Status502BadGateway, "Device page unavailable", $"Device \"{id}\": {reset.Message}"),
                };
            }
            if (e is DeviceOfflineException or ObjectDisposedException)
                return (StatusCodes.Status503ServiceUnavailable, "Device offline", $"Device \"{id}\" went offline.");
        }
        return error is ForwarderError.RequestTimedOut
            ? (StatusCodes.Status504GatewayTimeout, "No answer", $"Device \"{id}\"'s page did not answer in time.")
            : (StatusCodes.Status502BadGateway, "Device page unavailable", $"Device \"{id}\"'s page could not be reached ({error}).");
    }

    private static Task ProblemAsync(HttpContext http, string? user, int status, string title, string message) =>
        Problem(http, user, status, title, message).ExecuteAsync(http);

    private static IResult Problem(HttpContext http, string? user, int status, string title, string message)
    {
        http.Response.Headers.CacheControl = "no-store";
        http.Response.Headers[TunnelEndpoint.ErrorHeader] = new string([.. message.Select(c => c is >= ' ' and <= '~' ? c : '?')]);
        return Results.Content(BrowserPages.DevicePageProblem(user, user is null ? "" : RelaySignIn.IssueToken(http), title, message), "text/html; charset=utf-8", statusCode: status);
    }

    [LoggerMessage(1, LogLevel.Information, "Device page of {Device}: stream {Stream} opened for {Actor} from {Source}")]
    internal static partial void Opened(ILogger logger, string device, uint stream, string actor, string source);

    [LoggerMessage(2, LogLevel.Warning, "Device page of {Device} for {Actor}: {Error} {Reason}")]
    private static partial void Failed(ILogger logger, string device, string actor, string error, string reason);

    /// <summary>Rewrites between the relay's <c>/devices/ID/ui/</c> and the device page's <c>/</c>.</summary>
    internal sealed class PrefixTransformer(string id) : HttpTransformer
    {
        private readonly string _prefix = Prefix(id);

        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            var request = httpContext.Request;
            // The path begins with the prefix (the route matched it); what follows is the page's own path.
            if (!request.Path.StartsWithSegments(_prefix, StringComparison.OrdinalIgnoreCase, out var rest) || !rest.HasValue) rest = "/";
            proxyRequest.RequestUri = RequestUtilities.MakeDestinationAddress(destinationPrefix, rest, request.QueryString);
            // The relay's Host: the page's Origin checks then compare the browser's Origin with the address it used.
            proxyRequest.Headers.Host = request.Host.Value;
            // Relay credentials stay at the relay; only the device's own cookies go back to it, under their own names.
            proxyRequest.Headers.Remove("Authorization");
            proxyRequest.Headers.Remove("Cookie");
            if (DeviceCookies(request.Headers.Cookie) is { Length: > 0 } cookies) proxyRequest.Headers.TryAddWithoutValidation("Cookie", cookies);
            foreach (var name in (string[])["X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Prefix", "Forwarded"])
                proxyRequest.Headers.Remove(name);
            proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Prefix", _prefix);
            proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Proto", request.Scheme);
            proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Host", request.Host.Value);
            if (httpContext.Connection.RemoteIpAddress is { } from) proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-For", from.ToString());
            // Who is asking, for the audit entry of a new tunnel stream (DevicePageClients' ConnectCallback).
            proxyRequest.Options.Set(DevicePageClients.Who, new DevicePageClients.Requester(RelayAccess.Actor(httpContext.User), httpContext.Connection.RemoteIpAddress?.ToString() ?? "unknown"));
        }

        public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            var copyBody = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
            var headers = httpContext.Response.Headers;
            if (headers.Location.Count > 0) headers.Location = RewriteLocation(headers.Location.ToString(), httpContext.Request);
            if (headers.SetCookie.Count > 0)
                headers.SetCookie = new StringValues([.. headers.SetCookie.Select(c => RewriteSetCookie(c ?? "", _prefix, httpContext.Request.IsHttps))]);
            return copyBody;
        }

        internal string RewriteLocation(string location, HttpRequest request)
        {
            // Path-absolute: under the prefix. Absolute on the relay's own host: the same. Anything else: as is.
            if (location.StartsWith('/') && !location.StartsWith("//", StringComparison.Ordinal) && !location.StartsWith("/\\", StringComparison.Ordinal))
                return _prefix + location;
            if (Uri.TryCreate(location, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
                && string.Equals(uri.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase))
                return $"{request.Scheme}://{request.Host.Value}{_prefix}{uri.PathAndQuery}{uri.Fragment}";
            return location;
        }
    }

    /// <summary>
    /// The browser's cookies meant for the device — those named <c>ui_NAME</c> — as a Cookie header with their
    /// device names; every other cookie (the relay's session) is left out.
    /// </summary>
    internal static string DeviceCookies(StringValues cookieHeaders)
    {
        var sb = new StringBuilder();
        foreach (var header in cookieHeaders)
        {
            foreach (var part in (header ?? "").Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (!part.StartsWith(CookiePrefix, StringComparison.Ordinal) || part.Length <= CookiePrefix.Length || part.IndexOf('=', StringComparison.Ordinal) <= CookiePrefix.Length) continue;
                if (sb.Length > 0) sb.Append("; ");
                sb.Append(part, CookiePrefix.Length, part.Length - CookiePrefix.Length);
            }
        }
        return sb.ToString();
    }

    /// <summary>
    /// A device's <c>Set-Cookie</c> as the browser should store it on the relay: named <c>ui_NAME</c>, its
    /// <c>Path</c> under the prefix (the prefix itself when it had none), no <c>Domain</c>, and <c>Secure</c>
    /// when the relay is reached over HTTPS.
    /// </summary>
    internal static string RewriteSetCookie(string setCookie, string prefix, bool https)
    {
        var parts = setCookie.Split(';', StringSplitOptions.TrimEntries);
        var sb = new StringBuilder(CookiePrefix).Append(parts[0]);
        var hasPath = false;
        var secure = false;
        foreach (var attribute in parts.Skip(1))
        {
            if (attribute.Length == 0) continue;
            var eq = attribute.IndexOf('=', StringComparison.Ordinal);
            var name = eq < 0 ? attribute : attribute[..eq].Trim();
            var value = eq < 0 ? "" : attribute[(eq + 1)..].Trim();
            if (name.Equals("domain", StringComparison.OrdinalIgnoreCase)) continue;
            if (name.Equals("path", StringComparison.OrdinalIgnoreCase))
            {
                hasPath = true;
                sb.Append("; path=").Append(prefix).Append(value.StartsWith('/') ? value : "/");
                continue;
            }
            if (name.Equals("secure", StringComparison.OrdinalIgnoreCase)) secure = true;
            sb.Append("; ").Append(attribute);
        }
        if (!hasPath) sb.Append("; path=").Append(prefix).Append('/');
        if (https && !secure) sb.Append("; secure");
        return sb.ToString();
    }
}

/// <summary>The device went offline between the check and the stream's opening.</summary>
public sealed class DeviceOfflineException(string message) : IOException(message);

/// <summary>
/// One <see cref="HttpMessageInvoker"/> per (device, admin), whose <see cref="SocketsHttpHandler.ConnectCallback"/>
/// opens a tunnel stream to the device's reserved page name instead of a socket. Per admin, so every pooled
/// connection (every tunnel stream) carries one admin's requests and is audited once as <c>ui.open</c>.
/// </summary>
public sealed class DevicePageClients(UplinkSessionRegistry sessions, IFleetStore store, TimeProvider time, ILoggerFactory logs) : IDisposable
{
    /// <summary>Any address: the connect callback, not DNS, decides where a connection goes.</summary>
    internal const string Destination = "http://device-page/";

    /// <summary>HTTP/1.1 to the page (it is plain HTTP/1.1 inside the tunnel); long enough for slow device pages.</summary>
    internal static readonly ForwarderRequestConfig RequestConfig = new()
    {
        ActivityTimeout = TimeSpan.FromSeconds(60),
        Version = HttpVersion.Version11,
        VersionPolicy = HttpVersionPolicy.RequestVersionExact,
    };

    internal sealed record Requester(string Actor, string Source);

    internal static readonly HttpRequestOptionsKey<Requester> Who = new("pinhole.device-page.requester");

    private readonly ConcurrentDictionary<(string Device, string Actor), HttpMessageInvoker> _clients = new();
    private readonly ILogger _logger = logs.CreateLogger("Pinhole.Relay.Tunnels.DevicePage");

    /// <summary>The invoker for this device and admin.</summary>
    public HttpMessageInvoker For(string device, string actor) => _clients.GetOrAdd((device, actor), key => new HttpMessageInvoker(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        EnableMultipleHttp2Connections = false,
        ActivityHeadersPropagator = null,
        ConnectTimeout = TimeSpan.FromSeconds(15),
        // Idle tunnel streams are given back soon (each holds a slot on the uplink), and before the page's own
        // 15 s keep-alive ends them from the other side.
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(10),
        MaxConnectionsPerServer = 6,
        ConnectCallback = (context, ct) => ConnectAsync(key.Device, context, ct),
    }, disposeHandler: true));

    private async ValueTask<Stream> ConnectAsync(string device, SocketsHttpConnectionContext context, CancellationToken ct)
    {
        if (!sessions.TryGet(device, out var session) || session.Tunnels is not { } tunnels)
            throw new DeviceOfflineException($"device \"{device}\" is offline");
        context.InitialRequestMessage.Options.TryGetValue(Who, out var who);
        var actor = who?.Actor ?? "unknown";
        var source = who?.Source ?? "unknown";
        TunnelStream stream;
        try
        {
            stream = await tunnels.OpenAsync(Pinhole.EdgeHost.Configuration.ExposeConfig.DevicePage, ct);
        }
        catch (TunnelResetException e)
        {
            store.Audit(new AuditEntry(time.GetUtcNow(), actor, source, "ui.refused", device, $"{e.Code}: {e.Message}"));
            throw;
        }
        store.Audit(new AuditEntry(time.GetUtcNow(), actor, source, "ui.open", device, $"device page, stream {stream.Id}"));
        DevicePageProxy.Opened(_logger, device, stream.Id, actor, source);
        return stream;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var client in _clients.Values) client.Dispose();
        _clients.Clear();
    }
}
