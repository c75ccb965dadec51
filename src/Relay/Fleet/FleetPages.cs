using System.Net;
using Pinhole.Relay.Web;

namespace Pinhole.Relay.Fleet;

/// <summary>
/// The fleet pages for admins: <c>/fleet</c> (devices with their state and update, releases, rollouts
/// with a form to start one, the audit log) and
/// <c>/fleet/devices/ID</c> (state, config editor with the relay's validation inline, revision
/// history). Plain HTML; <c>fleet.js</c> (embedded, same origin) draws them from <c>/api</c>.
/// </summary>
internal static class FleetPages
{
    public static void Map(IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/fleet", (HttpContext http) => Page(http, "Fleet", """
            <h1>Fleet</h1>
            <section><h2>Devices</h2>
              <table id="devices"><thead><tr><th>device</th><th>state</th><th>last seen</th><th>agent</th><th>link</th><th>update</th><th>cameras</th><th>sensors</th><th>desired</th><th>reported</th><th>last error</th></tr></thead><tbody></tbody></table>
              <form id="add-device"><label>New device id <input name="id" required maxlength="64" pattern="[A-Za-z0-9_-]+"></label> <button type="submit">Add</button> <output id="add-result"></output></form>
            </section>
            <section><h2>Updates</h2>
              <h3>Releases</h3>
              <table id="releases"><thead><tr><th>version</th><th>architecture</th><th>packed</th><th>size</th><th>files</th><th>sha-256</th></tr></thead><tbody></tbody></table>
              <p class="muted">Add one with <code>pinhole-relay releases add FILE</code> (bundles from <code>./build.sh bundle</code>).</p>
              <h3>Start a rollout</h3>
              <form id="start-rollout">
                <label>Version <select name="version"></select></label>
                <label>Devices <input name="devices" placeholder="gw1,gw2"></label>
                <label><input type="checkbox" name="all"> all devices</label>
                <label>Percent <input name="percent" type="number" min="1" max="100" value="100" required></label>
                <label>Halt above <input name="maxFailurePercent" type="number" min="0" max="100" value="20" required> % failures</label>
                <label><input type="checkbox" name="force"> force (allow a downgrade)</label>
                <button type="submit">Start rollout</button> <output id="rollout-result"></output>
              </form>
              <h3>Rollouts</h3>
              <div id="rollouts"><p class="muted">none yet</p></div>
            </section>
            <section><h2>Audit log</h2>
              <table id="audit"><thead><tr><th>when</th><th>who</th><th>from</th><th>what</th><th>target</th><th>detail</th></tr></thead><tbody></tbody></table>
            </section>
            """, device: null)).RequireAccess(RelayAccess.AdminPolicy, Refuse);
        endpoints.MapGet("/fleet/devices/{id}", (HttpContext http, string id) => Page(http, "Device " + id, $"""
            <p><a href="/fleet">← Fleet</a></p>
            <h1>Device <span id="device-id">{WebUtility.HtmlEncode(id)}</span></h1>
            <section><h2>State</h2><dl id="state"></dl>
              <p><button id="rotate" type="button">Rotate token</button> <button id="revoke" type="button">Revoke token</button> <output id="token-result"></output></p>
            </section>
            <section><h2>Desired configuration</h2>
              <p class="muted">cameras, sensors, mqtt and (guarded) relays of edge.json; validated like <code>pinhole-edge check-config</code>.</p>
              <textarea id="config" rows="18" cols="100" spellcheck="false"></textarea>
              <p><button id="save" type="button">Save and push</button> <output id="save-result"></output></p>
              <ul id="problems" class="problems"></ul>
            </section>
            <section><h2>Revisions</h2>
              <table id="history"><thead><tr><th>revision</th><th>by</th><th>when</th><th>outcome</th><th>detail</th></tr></thead><tbody></tbody></table>
            </section>
            <section><h2>Audit log</h2>
              <table id="audit"><thead><tr><th>when</th><th>who</th><th>from</th><th>what</th><th>target</th><th>detail</th></tr></thead><tbody></tbody></table>
            </section>
            """, device: id)).RequireAccess(RelayAccess.AdminPolicy, Refuse);
        endpoints.MapGet("/fleet/fleet.js", (HttpContext http) =>
        {
            var stream = typeof(FleetPages).Assembly.GetManifestResourceStream("Pinhole.Relay.Web.wwwroot.fleet.js");
            if (stream is null) return Results.NotFound();
            http.Response.Headers.CacheControl = "no-cache";
            http.Response.Headers.XContentTypeOptions = "nosniff";
            return Results.Stream(stream, "text/javascript; charset=utf-8");
        });
    }

    private static IResult Page(HttpContext http, string title, string body, string? device)
    {
        Headers(http);
        return Results.Content(Layout(title, body, device, RelaySignIn.IssueToken(http)), "text/html; charset=utf-8");
    }

    // Not logged in: to the login and back; logged in as a viewer: a page saying so.
    private static IResult Refuse(HttpContext http, string? user)
    {
        Headers(http);
        return user is null
            ? Results.Redirect("/login?next=" + Uri.EscapeDataString(http.Request.Path.ToString()))
            : Results.Content(Layout("Not allowed", "<h1>Not allowed</h1><p>The fleet pages are for admins.</p>", null, ""), "text/html; charset=utf-8", statusCode: StatusCodes.Status403Forbidden);
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

    private static string Layout(string title, string body, string? device, string csrf) => $"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{WebUtility.HtmlEncode(title)} · Pinhole</title><link rel="stylesheet" href="/assets/pinhole.css">
        <meta name="csrf-token" content="{WebUtility.HtmlEncode(csrf)}"></head>
        <body data-page="{(device is null ? "fleet" : "device")}" data-device="{WebUtility.HtmlEncode(device ?? "")}">
        <header><a href="/">Cameras</a> · <a href="/fleet">Fleet</a> · <a href="/logout">Log out</a></header>
        <main>{body}</main>
        <script src="/fleet/fleet.js"></script>
        </body></html>
        """;
}
