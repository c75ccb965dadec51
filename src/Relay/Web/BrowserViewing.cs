using System.Net.WebSockets;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Pinhole.Relay.Devices;
using Pinhole.Streaming;
using Pinhole.Relay.Viewers;
using Pinhole.Transport.Security;

namespace Pinhole.Relay.Web;

/// <summary>
/// Watching in a browser: <c>/login</c>, <c>/logout</c>, <c>/</c> (cameras and their state),
/// <c>/play/DEVICE/CAMERA</c> (the player page) and <c>/play/DEVICE/CAMERA/ws</c> (fMP4 over WebSocket),
/// plus the player's script and style under <c>/assets/</c>.
/// </summary>
public static class BrowserViewing
{
    private const int MaxLoginFormBytes = 8 * 1024;

    /// <summary>
    /// Registers sign-in (<see cref="RelaySignIn"/>), the login throttle and the options. Needs a
    /// <see cref="MediaStreamRegistry"/> and a <see cref="ViewerDirectory"/> in the container;
    /// uses the registered <see cref="TimeProvider"/> (the system clock when there is none).
    /// </summary>
    public static IServiceCollection AddBrowserViewing(this IServiceCollection services, Action<BrowserViewingOptions>? configure = null)
    {
        services.AddOptions<BrowserViewingOptions>();
        if (configure is not null) services.Configure(configure);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<DeviceCookies>();
        services.AddRelaySignIn();
        services.TryAddSingleton(sp => new LoginThrottle(sp.GetRequiredService<IOptions<BrowserViewingOptions>>().Value.LoginThrottle(), sp.GetRequiredService<TimeProvider>()));
        return services;
    }

    /// <summary>
    /// Maps the browser endpoints. When <paramref name="endpoints"/> is also the application builder
    /// (a <c>WebApplication</c>), the WebSocket middleware is added too (adding it twice is harmless).
    /// </summary>
    public static IEndpointRouteBuilder MapBrowserViewing(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        if (endpoints is IApplicationBuilder app)
            app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(15) });

        endpoints.MapGet("/login", LoginForm);
        endpoints.MapPost("/login", LoginSubmit);
        endpoints.MapMethods("/logout", ["GET", "POST"], Logout);
        endpoints.MapGet("/", DeviceList);
        endpoints.MapGet("/play/{device}/{camera}", PlayerPage);
        endpoints.Map("/play/{device}/{camera}/ws", PlayerSocket);
        endpoints.MapGet("/play/{device}/{camera}/stream", PlayerStream);
        endpoints.MapGet("/assets/{name}", Asset);
        return endpoints;
    }

    /// <summary>The logged-in user of a request, or null.</summary>
    public static string? CurrentUser(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.User.Identity is { IsAuthenticated: true, AuthenticationType: RelaySignIn.Scheme, Name: { } user } ? user : null;
    }

    private static IResult LoginForm(HttpContext context, string? next)
    {
        NoStore(context);
        return Page(BrowserPages.Login(LocalPath(next), error: null));
    }

    private static async Task<IResult> LoginSubmit(HttpContext context, string? next, [FromServices] ViewerDirectory viewers,
        [FromServices] DeviceCookies devices, [FromServices] LoginThrottle throttle, [FromServices] IOptions<BrowserViewingOptions> options, [FromServices] ILoggerFactory loggers)
    {
        NoStore(context);
        var log = loggers.CreateLogger(typeof(BrowserViewing).FullName!);
        var request = context.Request;
        next = LocalPath(next);
        if (!SameOrigin(context, options.Value, allowMissing: true)) return Results.StatusCode(StatusCodes.Status403Forbidden);
        if (request.ContentLength is null or > MaxLoginFormBytes || !request.HasFormContentType)
            return Page(BrowserPages.Login(next, "Log in with the form."), StatusCodes.Status400BadRequest);

        IFormCollection form;
        try
        {
            form = await request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or BadHttpRequestException)
        {
            return Page(BrowserPages.Login(next, "Log in with the form."), StatusCodes.Status400BadRequest);
        }
        var user = form["user"].ToString();
        var password = form["password"].ToString();
        var client = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        if (user.Length is 0 or > 128 || password.Length is 0 or > 256)
            return Page(BrowserPages.Login(next, "Enter your user name and password."), StatusCodes.Status400BadRequest);

        // A browser that logged in as this user before is not held by guesses at the user from elsewhere.
        var device = devices.DeviceOf(request.Cookies[RelaySignIn.DeviceCookieName], user);
        var wait = throttle.RetryAfter(client, user, device);
        if (wait > TimeSpan.Zero)
        {
            BrowserLog.LoginLocked(log, user, client, wait);
            context.RequestServices.GetService<Security.RefusalLog>()?.Refused("login-throttled", client, $"too many failed logins; next attempt admitted in {Math.Ceiling(wait.TotalSeconds)} s");
            return Locked(context, next, wait);
        }
        // PBKDF2 is deliberately slow; keep it off the request thread's fast path.
        var ok = await Task.Run(() => viewers.Verify(user, password), context.RequestAborted).ConfigureAwait(false);
        if (!ok)
        {
            var lockout = throttle.Failed(client, user, device);
            BrowserLog.LoginFailed(log, user, client, lockout);
            return lockout > TimeSpan.Zero
                ? Locked(context, next, lockout)
                : Page(BrowserPages.Login(next, "Wrong user name or password."), StatusCodes.Status401Unauthorized);
        }
        throttle.Succeeded(client, user, device);
        if (device is null)
        {
            var (deviceCookie, deviceExpires) = devices.Create(user);
            context.Response.Cookies.Append(RelaySignIn.DeviceCookieName, deviceCookie, new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Secure = request.IsHttps,
                Path = "/login",
                Expires = deviceExpires,
                IsEssential = true,
            });
        }
        await RelaySignIn.SignInAsync(context, user).ConfigureAwait(false);
        BrowserLog.LoggedIn(log, user, client);
        // Several relays (docs/scale-out.md): next may be a page another relay serves, reached by a 302 that the
        // browser would refuse at the end of this form POST (CSP form-action 'self'); a meta refresh navigates anew.
        if (context.RequestServices.GetService<Fleet.DeviceOwnershipService>() is { Enabled: true })
            return Page(BrowserPages.Continue(next ?? "/"));
        return Results.Redirect(next ?? "/", permanent: false, preserveMethod: false);
    }

    private static async Task<IResult> Logout(HttpContext context, [FromServices] IOptions<BrowserViewingOptions> options)
    {
        NoStore(context);
        if (HttpMethods.IsPost(context.Request.Method) && !SameOrigin(context, options.Value, allowMissing: true))
            return Results.StatusCode(StatusCodes.Status403Forbidden);
        // Logged in: the post must carry the logout form's antiforgery token (another site's form cannot know it).
        if (CurrentUser(context) is not null && await RelaySignIn.WhyForgedAsync(context).ConfigureAwait(false) is { } forged)
            return Results.Text(forged + "\n", "text/plain; charset=utf-8", statusCode: StatusCodes.Status400BadRequest);
        // A GET changes nothing unless the browser says it came from this site or from the user
        // (Fetch Metadata); a link or image on another site only gets a confirmation page.
        if (HttpMethods.IsGet(context.Request.Method) && context.Request.Headers["Sec-Fetch-Site"].ToString() is not ("same-origin" or "none"))
            return Page(BrowserPages.ConfirmLogout(RelaySignIn.IssueToken(context)));
        // Ends the session in the store (on every relay) and deletes the cookie.
        await context.SignOutAsync(RelaySignIn.Scheme).ConfigureAwait(false);
        return Results.Redirect("/login");
    }

    private static IResult DeviceList(HttpContext context, [FromServices] MediaStreamRegistry registry)
    {
        NoStore(context);
        if (CurrentUser(context) is not { } user) return ToLogin(context);
        var streams = registry.All;
        // Devices that are allowed but have not announced a camera (never connected, or no cameras) are listed too.
        var known = context.RequestServices.GetService<DeviceRegistry>()?.List() ?? [];
        var silent = known.Where(d => !streams.Any(s => s.DeviceId == d)).Order(StringComparer.Ordinal).ToList();
        var alerts = context.RequestServices.GetService<Pinhole.Relay.Telemetry.ITelemetryStore>() is null ? null
            : context.RequestServices.GetService<Pinhole.Relay.Telemetry.AlertEngine>() is { } engine
                ? (Func<string, IReadOnlyList<string>>)(d => [.. engine.Active(d).Select(a => a.Sensor)]) : null;
        return Page(BrowserPages.DeviceList(user, RelaySignIn.IssueToken(context), streams, silent, alerts));
    }

    private static IResult PlayerPage(HttpContext context, string device, string camera, [FromServices] MediaStreamRegistry registry, [FromServices] IOptions<BrowserViewingOptions> options)
    {
        NoStore(context);
        if (CurrentUser(context) is not { } user) return ToLogin(context);
        if (!registry.TryGet(device, camera, out var stream))
            return Page(BrowserPages.NotFound(user, RelaySignIn.IssueToken(context), $"There is no camera {device}/{camera}."), StatusCodes.Status404NotFound);
        var rtsp = RtspUrl(context, options.Value, device, camera);
        if (stream.Tracks is { } tracks && PlayerFeed.WhyUnplayable(tracks) is not null)
        {
            var shown = tracks.FirstOrDefault(t => t.IsVideo) ?? tracks[0];
            return Page(BrowserPages.Unplayable(user, RelaySignIn.IssueToken(context), device, camera, BrowserPages.CodecName(shown), rtsp));
        }
        string? whep = null, ice = null, audio = null;
        if (context.RequestServices.GetService<WebRtc.WebRtcServer>() is not null
            && (stream.Tracks is not { } known || WebRtc.WhepEndpoint.WhyNotWebRtc(known) is null))
        {
            whep = "/whep/" + Uri.EscapeDataString(device) + "/" + Uri.EscapeDataString(camera);
            var config = context.RequestServices.GetRequiredService<Configuration.RelayConfig>();
            ice = WebRtc.IceServers.ForViewer(config.IceServers, user, context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow()).ToJsonString();
            audio = stream.Tracks?.FirstOrDefault(t => !t.IsVideo)?.Codec switch
            {
                Transport.Media.MediaCodec.PcmAlaw or Transport.Media.MediaCodec.PcmMulaw => "g711",
                Transport.Media.MediaCodec.Aac => "aac",
                _ => "",
            };
        }
        return Page(BrowserPages.Player(user, RelaySignIn.IssueToken(context), device, camera, BrowserPages.PlayPath(device, camera) + "/ws", rtsp, whep, ice, audio));
    }

    private static async Task PlayerSocket(HttpContext context, string device, string camera, [FromServices] MediaStreamRegistry registry,
        [FromServices] IOptions<BrowserViewingOptions> options, [FromServices] ILoggerFactory loggers)
    {
        var log = loggers.CreateLogger(typeof(BrowserViewing).FullName!);
        if (Admit(context, device, camera, registry, options.Value, log, webSocket: true) is not var (user, subscription)) return;
        using var _ = subscription;
        using var socket = await context.WebSockets.AcceptWebSocketAsync().ConfigureAwait(false);
        BrowserLog.ViewerStarted(log, user, device, camera);
        var feed = new PlayerFeed(RtspUrl(context, options.Value, device, camera));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var receiving = DrainIncomingAsync(socket, stop);
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var evt = await subscription.ReadAsync(stop.Token).ConfigureAwait(false);
                foreach (var m in feed.Handle(evt))
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
                    timeout.CancelAfter(options.Value.SendTimeout);
                    await socket.SendAsync(m.Payload, m.IsText ? WebSocketMessageType.Text : WebSocketMessageType.Binary, true, timeout.Token).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or ObjectDisposedException or IOException)
        {
            // The viewer left, stopped reading, or the relay is stopping.
        }
        catch (Exception e)
        {
            BrowserLog.ViewerFailed(log, e, device, camera);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                try
                {
                    using var closing = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, closing.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or WebSocketException) { }
            }
            socket.Abort();
            await receiving.ConfigureAwait(false);
            BrowserLog.ViewerStopped(log, user, device, camera, feed.Fragments, subscription.DroppedFrames);
        }
    }

    // What the WebSocket and the HTTP stream both check before a viewer gets frames: the Origin (a page
    // on another site must not ride the viewer's cookie), the session, the camera, the viewer limits.
    // Null after answering the refusal.
    private static (string User, MediaSubscription Subscription)? Admit(HttpContext context, string device, string camera,
        MediaStreamRegistry registry, BrowserViewingOptions options, ILogger log, bool webSocket)
    {
        var client = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        var response = context.Response;
        if (!SameOrigin(context, options, allowMissing: true))
        {
            BrowserLog.SocketRefused(log, client, "foreign Origin " + context.Request.Headers.Origin);
            response.StatusCode = StatusCodes.Status403Forbidden;
            return null;
        }
        if (CurrentUser(context) is not { } user)
        {
            BrowserLog.SocketRefused(log, client, "not logged in");
            response.StatusCode = StatusCodes.Status401Unauthorized;
            return null;
        }
        if (webSocket && !context.WebSockets.IsWebSocketRequest)
        {
            response.StatusCode = StatusCodes.Status400BadRequest;
            return null;
        }
        if (!registry.TryGet(device, camera, out var stream))
        {
            response.StatusCode = StatusCodes.Status404NotFound;
            return null;
        }
        var subscription = stream.Subscribe(user);
        if (subscription is null)
        {
            context.RequestServices.GetService<Security.RefusalLog>()?.Refused("viewer-limit", client, $"viewer limit reached for {device}/{camera} (per stream, per user or in total)");
            response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return null;
        }
        return (user, subscription);
    }

    /// <summary>
    /// <c>GET /play/DEVICE/CAMERA/stream</c>: the player's messages over one long chunked HTTP response, for
    /// networks whose proxies strip WebSocket <c>Upgrade</c> (docs/browser.md). Each message is a record:
    /// one byte of kind (0 a JSON control message, 1 an fMP4 segment), four bytes of big-endian length, the payload.
    /// </summary>
    private static async Task PlayerStream(HttpContext context, string device, string camera, [FromServices] MediaStreamRegistry registry,
        [FromServices] IOptions<BrowserViewingOptions> options, [FromServices] ILoggerFactory loggers)
    {
        var log = loggers.CreateLogger(typeof(BrowserViewing).FullName!);
        NoStore(context);
        if (Admit(context, device, camera, registry, options.Value, log, webSocket: false) is not var (user, subscription)) return;
        using var _ = subscription;
        var response = context.Response;
        response.ContentType = "application/octet-stream";
        response.Headers["X-Accel-Buffering"] = "no"; // nginx: pass each record on at once
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
        BrowserLog.ViewerStarted(log, user, device, camera);
        var feed = new PlayerFeed(RtspUrl(context, options.Value, device, camera));
        var header = new byte[5];
        var stop = context.RequestAborted;
        try
        {
            await response.StartAsync(stop).ConfigureAwait(false);
            while (!stop.IsCancellationRequested)
            {
                var evt = await subscription.ReadAsync(stop).ConfigureAwait(false);
                foreach (var m in feed.Handle(evt))
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
                    timeout.CancelAfter(options.Value.SendTimeout);
                    header[0] = m.IsText ? (byte)0 : (byte)1;
                    System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), m.Payload.Length);
                    await response.Body.WriteAsync(header, timeout.Token).ConfigureAwait(false);
                    await response.Body.WriteAsync(m.Payload, timeout.Token).ConfigureAwait(false);
                    await response.Body.FlushAsync(timeout.Token).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The viewer left, stopped reading, or the relay is stopping.
        }
        catch (Exception e)
        {
            BrowserLog.ViewerFailed(log, e, device, camera);
        }
        finally
        {
            BrowserLog.ViewerStopped(log, user, device, camera, feed.Fragments, subscription.DroppedFrames);
        }
    }

    // The player sends nothing that matters; reading is what notices the close handshake.
    private static async Task DrainIncomingAsync(WebSocket socket, CancellationTokenSource stop)
    {
        var buffer = new byte[1024];
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var r = await socket.ReceiveAsync(buffer, stop.Token).ConfigureAwait(false);
                if (r.MessageType == WebSocketMessageType.Close) break;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or ObjectDisposedException) { }
        finally
        {
            try { await stop.CancelAsync().ConfigureAwait(false); } catch (ObjectDisposedException) { }
        }
    }

    private static IResult Asset(HttpContext context, string name)
    {
        var (resource, type) = name switch
        {
            "player.js" => ("player.js", "text/javascript; charset=utf-8"),
            "pinhole.css" => ("pinhole.css", "text/css; charset=utf-8"),
            _ => (null, null),
        };
        if (resource is null) return Results.NotFound();
        var stream = typeof(BrowserViewing).Assembly.GetManifestResourceStream("Pinhole.Relay.Web.wwwroot." + resource);
        if (stream is null) return Results.NotFound();
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers.XContentTypeOptions = "nosniff";
        return Results.Stream(stream, type);
    }

    private static IResult Page(string html, int status = StatusCodes.Status200OK) =>
        new HtmlResult(html, status);

    private static IResult Locked(HttpContext context, string? next, TimeSpan wait)
    {
        var seconds = (int)Math.Ceiling(wait.TotalSeconds);
        context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Page(BrowserPages.Login(next, $"Too many failed logins. Try again in {seconds} s."), StatusCodes.Status429TooManyRequests);
    }

    private static IResult ToLogin(HttpContext context)
    {
        var here = context.Request.Path.ToString() + context.Request.QueryString;
        return Results.Redirect("/login?next=" + Uri.EscapeDataString(here));
    }

    private static void NoStore(HttpContext context)
    {
        var h = context.Response.Headers;
        h.CacheControl = "no-store";
        h.XContentTypeOptions = "nosniff";
        h.XFrameOptions = "DENY";
        h["Referrer-Policy"] = "same-origin";
        // The stream plays from a blob: URL (MediaSource).
        // The WebSocket origin is also named explicitly for browsers whose 'self' does not cover ws:/wss:.
        var socketOrigin = $"{(context.Request.IsHttps ? "wss" : "ws")}://{context.Request.Host}";
        h.ContentSecurityPolicy = $"default-src 'self'; script-src 'self'; style-src 'self'; media-src 'self' blob:; connect-src 'self' {socketOrigin}; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
    }

    // Only paths on this site: "/x" but not "//evil.example" or "/\evil.example" (browsers read both as another host).
    private static string? LocalPath(string? next) =>
        next is { Length: > 0 and < 2048 } && next[0] == '/' && (next.Length == 1 || (next[1] != '/' && next[1] != '\\')) && !next.Any(char.IsControl)
            ? next : null;

    /// <summary>True when the request's Origin is the relay itself or one of <see cref="BrowserViewingOptions.AllowedOrigins"/> (a missing Origin passes: not a browser).</summary>
    internal static bool IsSameOrigin(HttpContext context, BrowserViewingOptions options) => SameOrigin(context, options, allowMissing: true);

    private static bool SameOrigin(HttpContext context, BrowserViewingOptions options, bool allowMissing)
    {
        var origin = context.Request.Headers.Origin.ToString();
        if (string.IsNullOrEmpty(origin)) return allowMissing; // not a browser: no ambient cookie to abuse
        if (!Uri.TryCreate(origin, UriKind.Absolute, out var o)) return false;
        var request = context.Request;
        if (Uri.TryCreate($"{request.Scheme}://{request.Host}", UriKind.Absolute, out var self)
            && string.Equals(o.Scheme, self.Scheme, StringComparison.OrdinalIgnoreCase)
            && string.Equals(o.Host, self.Host, StringComparison.OrdinalIgnoreCase)
            && o.Port == self.Port)
            return true;
        return options.AllowedOrigins.Any(a => Uri.TryCreate(a, UriKind.Absolute, out var allowed)
            && string.Equals(allowed.Scheme, o.Scheme, StringComparison.OrdinalIgnoreCase)
            && string.Equals(allowed.Host, o.Host, StringComparison.OrdinalIgnoreCase)
            && allowed.Port == o.Port);
    }

    private static string RtspUrl(HttpContext context, BrowserViewingOptions options, string device, string camera)
    {
        var host = context.Request.Host.Host;
        if (host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[')) host = $"[{host}]";
        return $"rtsp://{host}:{options.RtspPort}/{Uri.EscapeDataString(device)}/{Uri.EscapeDataString(camera)}";
    }

    private sealed class HtmlResult(string html, int status) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = status;
            httpContext.Response.ContentType = "text/html; charset=utf-8";
            return httpContext.Response.WriteAsync(html, httpContext.RequestAborted);
        }
    }
}
