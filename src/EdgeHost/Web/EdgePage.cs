using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.Metrics;

namespace Pinhole.EdgeHost.Web;

/// <summary>
/// The LAN page: <c>/</c> (login form, or the status view and config editor), <c>/login</c>,
/// <c>/logout</c>, <c>/api/status</c>, <c>/api/config</c>, plus the public <c>/healthz</c> and <c>/metrics</c>.
/// The API needs the <see cref="PageSignIn.PolicyName"/> policy (the session cookie); every change also needs an
/// antiforgery token (header <c>X-CSRF-Token</c> or form field <c>csrf</c>); see <see cref="PageSignIn"/>.
/// </summary>
internal static class EdgePage
{
    private const string JsonType = "application/json; charset=utf-8";

    public static void Map(WebApplication app)
    {
        var assets = PageAssets.Load(Path.Combine(AppContext.BaseDirectory, "wwwroot"));
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(15) });

        app.UseAuthentication();
        app.Use(async (context, next) =>
        {
            var headers = context.Response.Headers;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers.CacheControl = "no-store";
            // same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on form posts, defeating the Origin check.
            headers["Referrer-Policy"] = "same-origin";
            headers.ContentSecurityPolicy = "default-src 'self'; frame-ancestors 'none'; form-action 'self'";
            // Without a session a client gets no keep-alive: idle connections must not crowd out the owner.
            if (!SignedIn(context)) headers.Connection = "close";
            try
            {
                await next(context);
            }
            catch (BadHttpRequestException e) when (!context.Response.HasStarted)
            {
                context.Response.StatusCode = e.StatusCode;
                await context.Response.WriteAsync(e.Message);
            }
        });

        app.UseAuthorization();

        app.MapGet("/healthz", (PipelineSupervisor supervisor) =>
        {
            var pipelines = supervisor.Snapshot();
            var unhealthy = pipelines.Where(p => !p.Healthy).ToList();
            var body = new JsonObject
            {
                ["status"] = unhealthy.Count == 0 ? "ok" : "unhealthy",
                ["pipelines"] = pipelines.Count,
            };
            if (unhealthy.Count > 0)
            {
                body["reason"] = $"{unhealthy.Count} of {pipelines.Count} pipelines unhealthy";
                body["unhealthy"] = new JsonArray([.. unhealthy.Select(p => (JsonNode)new JsonObject
                {
                    ["name"] = p.Name,
                    ["state"] = p.StateName,
                    ["reason"] = p.UnhealthyReason,
                })]);
            }
            return Results.Text(body.ToJsonString(), JsonType, statusCode: unhealthy.Count == 0 ? 200 : 503);
        });

        // Prometheus text format, from OpenTelemetry's exporter (src/Metrics, shared with the relay); open like /healthz.
        app.UsePrometheusExport();

        app.MapGet("/app.js", () => Results.Text(assets.AppJs, "text/javascript; charset=utf-8"));
        app.MapGet("/app.css", () => Results.Text(assets.AppCss, "text/css; charset=utf-8"));

        app.MapGet("/", (HttpContext context) => SignedIn(context)
            ? Results.Text(assets.Index.Replace("{{csrf}}", WebUtility.HtmlEncode(PageSignIn.IssueToken(context)), StringComparison.Ordinal), "text/html; charset=utf-8")
            : LoginPage(assets, "", HttpStatusCode.OK));

        app.MapPost("/login", async (HttpContext context, PageAuthenticator auth) =>
        {
            if (!SameOrigin(context.Request))
                return LoginPage(assets, "This form must be sent from the device's own page.", HttpStatusCode.Forbidden);
            if (!context.Request.HasFormContentType)
                return LoginPage(assets, "Send the login form.", HttpStatusCode.BadRequest);
            var form = await context.Request.ReadFormAsync();
            var client = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
            switch (auth.TryLogin(client, form["password"].ToString(), out var retryAfter))
            {
                case LoginOutcome.Success:
                    await PageSignIn.SignInAsync(context);
                    return Results.Redirect("/", permanent: false);
                case LoginOutcome.LockedOut:
                    context.Response.Headers.RetryAfter = Seconds(retryAfter);
                    return LoginPage(assets, $"Too many wrong passwords. Try again in {Seconds(retryAfter)} s.", HttpStatusCode.TooManyRequests);
                case LoginOutcome.NoPasswordConfigured:
                    return LoginPage(assets, "No password is set: add web.password to edge.json and restart.", HttpStatusCode.ServiceUnavailable);
                default:
                    return retryAfter > TimeSpan.Zero
                        ? LoginPage(assets, $"Wrong password. Too many wrong passwords: try again in {Seconds(retryAfter)} s.", HttpStatusCode.Unauthorized)
                        : LoginPage(assets, "Wrong password.", HttpStatusCode.Unauthorized);
            }
        });

        app.MapPost("/logout", async (HttpContext context) =>
        {
            if (SignedIn(context) && context.Request.HasFormContentType)
            {
                if (!await PageSignIn.HasValidTokenAsync(context))
                    return Results.Text("missing or wrong CSRF token", statusCode: 403);
                await context.SignOutAsync(); // removes the session from the store, and the cookie
                return Results.Redirect("/", permanent: false);
            }
            context.Response.Cookies.Delete(PageSignIn.CookieName);
            return Results.Redirect("/", permanent: false);
        });

        app.MapGet("/api/status", (HttpContext context, PipelineSupervisor supervisor, EdgeConfigStore store, TimeProvider time) =>
            Results.Text(StatusJson(context, supervisor, store, time), JsonType))
            .RequireAuthorization(PageSignIn.PolicyName);

        // Live status: the same JSON as /api/status, pushed once a second over a WebSocket (the page
        // falls back to polling without it). Relative to the page, so it also works under the relay's
        // /devices/ID/ui/ prefix (docs/tunnels.md, "The device page").
        app.Map("/api/status/live", async (HttpContext context, PageTicketStore sessions, PipelineSupervisor supervisor, EdgeConfigStore store, TimeProvider time) =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
                return Problem(HttpStatusCode.BadRequest, "this is a WebSocket endpoint; GET /api/status for one snapshot");
            // A browser always sends Origin on a WebSocket; another site's page must not read the status with the cookie.
            if (context.Request.Headers.Origin.Count == 0 || !SameOrigin(context.Request))
                return Problem(HttpStatusCode.Forbidden, "the live status must be opened from the device's own page (Origin)");
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            await PushStatusAsync(socket, context, sessions, supervisor, store, time);
            return Results.Empty;
        }).RequireAuthorization(PageSignIn.PolicyName);

        MapConfig(app);
    }

    private static async Task PushStatusAsync(System.Net.WebSockets.WebSocket socket, HttpContext context, PageTicketStore sessions,
        PipelineSupervisor supervisor, EdgeConfigStore store, TimeProvider time)
    {
        var aborted = context.RequestAborted;
        // The client sends nothing; reading notices its close (and discards anything else).
        var closed = Task.Run(async () =>
        {
            var sink = new byte[512];
            try
            {
                while (true)
                {
                    var r = await socket.ReceiveAsync(sink, aborted);
                    if (r.MessageType == System.Net.WebSockets.WebSocketMessageType.Close) return;
                }
            }
            catch (Exception e) when (e is System.Net.WebSockets.WebSocketException or OperationCanceledException)
            {
            }
        }, CancellationToken.None);
        try
        {
            while (!closed.IsCompleted && !aborted.IsCancellationRequested)
            {
                // A session that ended (logout, expiry) ends the feed too.
                if (!sessions.IsLive(context.User))
                {
                    await socket.CloseOutputAsync(System.Net.WebSockets.WebSocketCloseStatus.PolicyViolation, "login required", aborted);
                    return;
                }
                var json = System.Text.Encoding.UTF8.GetBytes(StatusJson(context, supervisor, store, time));
                await socket.SendAsync(json, System.Net.WebSockets.WebSocketMessageType.Text, true, aborted);
                await Task.WhenAny(closed, Task.Delay(TimeSpan.FromSeconds(1), time, aborted));
            }
            if (socket.State == System.Net.WebSockets.WebSocketState.CloseReceived)
                await socket.CloseOutputAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "bye", aborted);
        }
        catch (Exception e) when (e is System.Net.WebSockets.WebSocketException or OperationCanceledException or IOException)
        {
        }
    }

    private static string StatusJson(HttpContext context, PipelineSupervisor supervisor, EdgeConfigStore store, TimeProvider time)
    {
        {
            var pipelines = supervisor.Snapshot();
            var now = time.GetUtcNow();
            var body = new JsonObject
            {
                ["deviceId"] = store.Current.DeviceId,
                ["summary"] = PipelineSupervisor.Summarize(pipelines),
                ["healthy"] = pipelines.All(p => p.Healthy),
                ["managed"] = context.RequestServices.GetService<Fleet.FleetAgent>()?.State is { Revision: > 0 } m ? new JsonObject
                {
                    ["revision"] = m.Revision,
                    ["outcome"] = m.Outcome,
                    ["detail"] = m.Detail,
                    ["at"] = m.At,
                } : null,
                ["pipelines"] = new JsonArray([.. pipelines.Select(p => (JsonNode)new JsonObject
                {
                    ["name"] = p.Name,
                    ["state"] = p.StateName,
                    ["healthy"] = p.Healthy,
                    ["starts"] = p.Starts,
                    ["restarts"] = p.Restarts,
                    ["status"] = p.Status,
                    ["lastError"] = p.LastError,
                    ["heartbeatAgeSeconds"] = p.LastHeartbeat is { } h ? Math.Round((now - h).TotalSeconds, 1) : null,
                    ["nextStartInSeconds"] = p.NextStartAt is { } n ? Math.Max(0, Math.Round((n - now).TotalSeconds, 1)) : null,
                })]),
            };
            return body.ToJsonString();
        }
    }

    private static void MapConfig(WebApplication app)
    {
        app.MapGet("/api/config", (EdgeConfigStore store) => Results.Text(store.ReadEditableSections().ToJsonString(), JsonType))
            .RequireAuthorization(PageSignIn.PolicyName);

        app.MapPost("/api/config", async (HttpContext context, EdgeConfigStore store) =>
        {
            if (!SameOrigin(context.Request) || context.Request.Headers[PageSignIn.TokenHeader].Count == 0 || !await PageSignIn.HasValidTokenAsync(context))
                return Problem(HttpStatusCode.Forbidden, "missing or wrong CSRF token; reload the page");
            if (context.Request.ContentType?.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) != true)
                return Problem(HttpStatusCode.UnsupportedMediaType, "send the config as application/json");

            if (await ReadSectionsAsync(context.Request) is not { } sections)
                return Problem(HttpStatusCode.BadRequest, context.Items[BodyProblem] as string ?? "bad request body");

            var result = await store.SavePageSectionsAsync(sections);
            if (!result.Saved)
            {
                var refused = new JsonObject
                {
                    ["saved"] = false,
                    ["problems"] = new JsonArray([.. result.Problems.Select(p => (JsonNode)new JsonObject { ["path"] = p.Path, ["message"] = p.Message })]),
                };
                return Results.Text(refused.ToJsonString(), JsonType, statusCode: 400);
            }
            var applied = result.Applied!;
            var ok = new JsonObject
            {
                ["saved"] = true,
                ["started"] = Names(applied.Started),
                ["restarted"] = Names(applied.Restarted),
                ["stopped"] = Names(applied.Stopped),
                ["unchanged"] = Names(applied.Unchanged),
            };
            return Results.Text(ok.ToJsonString(), JsonType);
        }).RequireAuthorization(PageSignIn.PolicyName);
    }

    private const string BodyProblem = "pinhole.body-problem";

    // Every way a body can be bad is a 400 with a reason: not UTF-8, not JSON, duplicate keys, not an object.
    private static async Task<JsonObject?> ReadSectionsAsync(HttpRequest request)
    {
        string? problem;
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, request.HttpContext.RequestAborted); // Kestrel caps the size (413 beyond)
        var bytes = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            problem = "the body is not valid UTF-8";
        }
        else
        {
            try
            {
                var node = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false, MaxDepth = 32 });
                if (node is JsonObject o) return o;
                problem = "expected a JSON object with relays, cameras, sensors and mqtt";
            }
            catch (JsonException e)
            {
                problem = $"invalid JSON: {e.Message}";
            }
        }
        request.HttpContext.Items[BodyProblem] = problem;
        return null;
    }

    private static JsonArray Names(IReadOnlyList<string> names) => new([.. names.Select(n => (JsonNode)JsonValue.Create(n))]);

    private static bool SignedIn(HttpContext context) => context.User.Identity?.IsAuthenticated == true;

    /// <summary>
    /// Browsers send Origin on POSTs; when it is there it must name this host. (The cookie is
    /// SameSite=Strict and changes need the antiforgery token too; this also covers the login form.)
    /// </summary>
    private static bool SameOrigin(HttpRequest request)
    {
        var origin = request.Headers.Origin.ToString();
        if (origin.Length == 0) return true;
        return Uri.TryCreate(origin, UriKind.Absolute, out var uri) &&
               string.Equals(uri.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase);
    }

    private static string Seconds(TimeSpan t) => Math.Ceiling(t.TotalSeconds).ToString(CultureInfo.InvariantCulture);

    private static IResult Problem(HttpStatusCode status, string message) =>
        Results.Text(new JsonObject
        {
            ["saved"] = false,
            ["problems"] = new JsonArray(new JsonObject { ["path"] = "", ["message"] = message }),
        }.ToJsonString(), JsonType, statusCode: (int)status);

    private static IResult LoginPage(PageAssets assets, string message, HttpStatusCode status) =>
        Results.Text(assets.Login.Replace("{{message}}", WebUtility.HtmlEncode(message), StringComparison.Ordinal),
            "text/html; charset=utf-8", statusCode: (int)status);

    /// <summary>The page files, read once. Plain HTML/CSS/JS, no build step.</summary>
    private sealed record PageAssets(string Index, string Login, string AppJs, string AppCss)
    {
        public static PageAssets Load(string directory) => new(
            Read(directory, "index.html"), Read(directory, "login.html"), Read(directory, "app.js"), Read(directory, "app.css"));

        private static string Read(string directory, string name)
        {
            var path = Path.Combine(directory, name);
            return File.Exists(path) ? File.ReadAllText(path) : $"<!-- {name} is missing from {directory} -->";
        }
    }
}
