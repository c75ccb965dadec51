using System.Net;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Web;

namespace Pinhole.Relay.Telemetry;

/// <summary>
/// <c>/devices/ID/sensors</c>: a device's sensor dashboard for anyone logged in. Plain HTML; <c>sensors.js</c>
/// draws the charts with uPlot (vendored from npm at build time, served from the assembly) from
/// <c>/api/devices/ID/sensors</c>.
/// </summary>
internal static class TelemetryPages
{
    public static void Map(IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/devices/{id}/sensors", (HttpContext http, string id, DeviceRegistry devices) =>
        {
            Headers(http);
            if (!devices.Exists(id))
                return Results.Content(Layout("Not found", $"<h1>Not found</h1><p>There is no device {WebUtility.HtmlEncode(id)}.</p>", id), "text/html; charset=utf-8", statusCode: StatusCodes.Status404NotFound);
            var enc = WebUtility.HtmlEncode(id);
            return Results.Content(Layout($"Sensors of {id}", $"""
                <h1>Sensors of <span id="device-id">{enc}</span> <span id="status" class="state"></span></h1>
                <ul id="alerts" class="alerts"></ul>
                <div id="ranges" class="ranges" role="group" aria-label="range">
                  <button type="button" data-range="3600">1 h</button>
                  <button type="button" data-range="86400">24 h</button>
                  <button type="button" data-range="604800">7 d</button>
                  <button type="button" data-range="7776000">90 d</button>
                  <label>from <input type="datetime-local" id="from"></label>
                  <label>to <input type="datetime-local" id="to"></label>
                  <button type="button" id="apply">Show</button>
                  <a id="csv" href="#">CSV</a>
                </div>
                <p id="empty" class="muted" hidden>No readings stored for this device yet.</p>
                <div id="charts"></div>
                """, id), "text/html; charset=utf-8");
        }).RequireAccess(RelayAccess.ViewerPolicy, (http, _) =>
        {
            Headers(http);
            return Results.Redirect("/login?next=" + Uri.EscapeDataString(http.Request.Path.ToString()));
        });
        endpoints.MapGet("/assets/telemetry/{name}", (HttpContext http, string name) =>
        {
            var (resource, type) = name switch
            {
                "sensors.js" => ("sensors.js", "text/javascript; charset=utf-8"),
                "uPlot.iife.min.js" => ("vendor.uPlot.iife.min.js", "text/javascript; charset=utf-8"),
                "uPlot.min.css" => ("vendor.uPlot.min.css", "text/css; charset=utf-8"),
                _ => (null, null),
            };
            if (resource is null) return Results.NotFound();
            var stream = typeof(TelemetryPages).Assembly.GetManifestResourceStream("Pinhole.Relay.Web.wwwroot." + resource);
            if (stream is null) return Results.NotFound();
            http.Response.Headers.CacheControl = "no-cache";
            http.Response.Headers.XContentTypeOptions = "nosniff";
            return Results.Stream(stream, type);
        });
    }

    private static void Headers(HttpContext http)
    {
        var h = http.Response.Headers;
        h.CacheControl = "no-store";
        h.XContentTypeOptions = "nosniff";
        h.XFrameOptions = "DENY";
        h["Referrer-Policy"] = "same-origin";
        h.ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
    }

    private static string Layout(string title, string body, string device) => $"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{WebUtility.HtmlEncode(title)} · Pinhole</title>
        <link rel="stylesheet" href="/assets/pinhole.css"><link rel="stylesheet" href="/assets/telemetry/uPlot.min.css"></head>
        <body data-device="{WebUtility.HtmlEncode(device)}">
        <header><a href="/" class="brand">Pinhole</a> <span><a href="/">Cameras</a> · <a href="/fleet">Fleet</a></span></header>
        <main>{body}</main>
        <script src="/assets/telemetry/uPlot.iife.min.js"></script>
        <script src="/assets/telemetry/sensors.js"></script>
        </body></html>
        """;
}
