using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Mvc;
using Pinhole.Streaming;
using Pinhole.Relay.Viewers;
using Pinhole.Relay.Web;

namespace Pinhole.Relay.Fleet;

/// <summary>
/// The fleet API under <c>/api</c> (admins only: no credentials 401, a viewer 403) and the fleet pages
/// under <c>/fleet</c>. Every change is written to the audit log with the caller and its address.
/// </summary>
public static class FleetApi
{
    private const string Json = "application/json; charset=utf-8";
    private const int MaxConfigRequestBytes = 512 * 1024;

    /// <summary>Maps <c>/api/*</c> and the fleet pages.</summary>
    public static IEndpointRouteBuilder MapFleet(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api").RequireAccess(RelayAccess.AdminPolicy, (http, user) =>
        {
            http.Response.Headers.CacheControl = "no-store";
            if (user is not null) return Error(StatusCodes.Status403Forbidden, $"{user} is not an admin");
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return Error(StatusCodes.Status401Unauthorized, "log in, or send Authorization: Bearer TOKEN (pinhole-relay tokens add NAME)");
        }).AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            http.Response.Headers.CacheControl = "no-store";
            // A browser session rides on a cookie: a change must come from this site's own page, which alone knows
            // the antiforgery token. The Origin check stays as a second, cheap line (a browser always sends Origin on these).
            if (!RelayAccess.IsToken(http.User) && !HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method) && !SameOrigin(http))
                return Error(StatusCodes.Status403Forbidden, "changes with a session cookie must come from the relay's own page (Origin)");
            if (await RelaySignIn.WhyForgedAsync(http) is { } forged) return Error(StatusCodes.Status400BadRequest, forged);
            return await next(context);
        });

        api.MapGet("/devices", (FleetService fleet, MediaStreamRegistry streams, DeviceOwnershipService ownership) =>
        {
            // With several relays, a device whose uplink another relay holds is online there (its lease says so).
            var elsewhere = ownership.OwnersElsewhere();
            return Results.Text(new JsonArray([.. fleet.Devices.Describe().Select(d => (JsonNode)DeviceView(fleet, streams, d, ownership, elsewhere.GetValueOrDefault(d.Id)))]).ToJsonString(), Json);
        });
        api.MapGet("/devices/{id}", (string id, FleetService fleet, MediaStreamRegistry streams, DeviceOwnershipService ownership) =>
            fleet.Devices.Describe().FirstOrDefault(d => d.Id == id) is { } entry
                ? Results.Text(DeviceView(fleet, streams, entry, ownership, ownership.OwnerElsewhere(id)).ToJsonString(), Json) : NoDevice(id));
        api.MapPost("/devices", async (HttpContext http, FleetService fleet) =>
        {
            var body = await ReadJsonObjectAsync(http, 4096);
            if (body?["id"]?.GetValueKind() != System.Text.Json.JsonValueKind.String)
                return Error(StatusCodes.Status400BadRequest, "send {\"id\": \"DEVICE\"}");
            var id = body["id"]!.GetValue<string>();
            try
            {
                var token = fleet.AddDevice(id, Origin(http));
                return Results.Text(new JsonObject { ["id"] = id, ["token"] = token }.ToJsonString(), Json, statusCode: StatusCodes.Status201Created);
            }
            catch (InvalidOperationException e)
            {
                return Error(StatusCodes.Status409Conflict, e.Message);
            }
        });
        api.MapDelete("/devices/{id}", async (HttpContext http, string id, FleetService fleet) =>
            await fleet.RemoveDeviceAsync(id, Origin(http)) ? Results.NoContent()
                : fleet.Devices.Exists(id) ? Error(StatusCodes.Status409Conflict, $"device \"{id}\" is listed in relay.json; remove it there") : NoDevice(id));
        api.MapPost("/devices/{id}/rotate-token", async (HttpContext http, string id, FleetService fleet) =>
        {
            if (!fleet.Devices.Exists(id)) return NoDevice(id);
            var token = await fleet.RotateTokenAsync(id, Origin(http));
            return Results.Text(new JsonObject { ["id"] = id, ["token"] = token }.ToJsonString(), Json);
        });
        api.MapPost("/devices/{id}/revoke", async (HttpContext http, string id, FleetService fleet) =>
        {
            if (!fleet.Devices.Exists(id)) return NoDevice(id);
            await fleet.RevokeAsync(id, Origin(http));
            return Results.NoContent();
        });
        api.MapGet("/devices/{id}/config", (HttpContext http, string id, FleetService fleet) =>
        {
            if (!fleet.Devices.Exists(id)) return NoDevice(id);
            if (fleet.Store.GetLatestConfig(id) is not { } latest) return Error(StatusCodes.Status404NotFound, $"no desired configuration stored for \"{id}\"");
            http.Response.Headers["Pinhole-Config-Revision"] = latest.Revision.ToString(CultureInfo.InvariantCulture);
            return Results.Text(latest.Document, Json);
        });
        api.MapPut("/devices/{id}/config", async (HttpContext http, string id, FleetService fleet) =>
        {
            if (!fleet.Devices.Exists(id)) return NoDevice(id);
            var (text, problem) = await ReadBodyAsync(http, MaxConfigRequestBytes);
            if (text is null) return problem == BodyProblem.TooLarge
                ? Error(StatusCodes.Status413PayloadTooLarge, $"the document is larger than {MaxConfigRequestBytes} bytes")
                : Results.Text("the document is not UTF-8 text\n", "text/plain; charset=utf-8", statusCode: StatusCodes.Status400BadRequest);
            var result = await fleet.PutConfigAsync(id, text, Origin(http));
            if (!result.Stored)
                return Results.Text(string.Join('\n', result.Problems.Select(p => p.ToString())) + "\n", "text/plain; charset=utf-8", statusCode: StatusCodes.Status400BadRequest);
            http.Response.Headers["Pinhole-Config-Revision"] = result.Revision.ToString(CultureInfo.InvariantCulture);
            return Results.Text(new JsonObject { ["device"] = id, ["revision"] = result.Revision }.ToJsonString(), Json);
        });
        api.MapGet("/devices/{id}/config/history", (string id, FleetService fleet) =>
            fleet.Devices.Exists(id)
                ? Results.Text(new JsonArray([.. fleet.Store.ConfigHistory(id, 100).Select(r => (JsonNode)new JsonObject
                {
                    ["revision"] = r.Revision,
                    ["author"] = r.Author,
                    ["created"] = r.Created,
                    ["outcome"] = r.Outcome,
                    ["detail"] = r.Detail,
                    ["reported"] = r.Reported,
                    ["document"] = r.Document,
                })]).ToJsonString(), Json)
                : NoDevice(id));
        api.MapGet("/releases", (Updates.UpdateService updates) =>
            Results.Text(new JsonArray([.. updates.Releases.List().Select(r => (JsonNode)Updates.Rollouts.ReleaseView(r))]).ToJsonString(), Json));
        api.MapGet("/rollouts", (Updates.UpdateService updates) =>
            Results.Text(new JsonArray([.. updates.Store.List().Select(r => (JsonNode)Updates.Rollouts.View(r, updates))]).ToJsonString(), Json));
        api.MapPost("/rollouts", async (HttpContext http, Updates.UpdateService updates, FleetService fleet) =>
        {
            const string usage = "send {\"version\": \"V\", \"devices\": [\"a\", \"b\"] or \"all\": true, \"percent\": N, \"maxFailurePercent\": N, \"force\": false}";
            var body = await ReadJsonObjectAsync(http, 64 * 1024);
            if (body is null) return Error(StatusCodes.Status400BadRequest, usage);
            try
            {
                var version = body["version"]?.GetValue<string>();
                var all = body["all"]?.GetValue<bool>() ?? false;
                var devices = body["devices"] is JsonArray list ? list.Select(d => d!.GetValue<string>()).ToList() : null;
                if (version is null || all == (devices is not null)) return Error(StatusCodes.Status400BadRequest, usage);
                var (rollout, problem) = Updates.Rollouts.Start(updates.Store, updates.Releases, fleet.Devices, fleet.Store, version, devices,
                    body["percent"]?.GetValue<int>() ?? 100, body["maxFailurePercent"]?.GetValue<int>() ?? Updates.Rollouts.DefaultMaxFailurePercent,
                    body["force"]?.GetValue<bool>() ?? false, Origin(http), DateTimeOffset.UtcNow);
                if (rollout is null) return Error(problem!.StartsWith("no release", StringComparison.Ordinal) ? StatusCodes.Status404NotFound : StatusCodes.Status400BadRequest, problem);
                return Results.Text(Updates.Rollouts.View(rollout, updates).ToJsonString(), Json);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                return Error(StatusCodes.Status400BadRequest, usage);
            }
        });
        api.MapGet("/audit", (FleetService fleet, int? limit, string? target) =>
            Results.Text(new JsonArray([.. fleet.Store.ReadAudit(Math.Clamp(limit ?? 200, 1, 10_000), target).Select(a => (JsonNode)new JsonObject
            {
                ["id"] = a.Id,
                ["at"] = a.At,
                ["actor"] = a.Actor,
                ["from"] = a.Source,
                ["action"] = a.Action,
                ["target"] = a.Target,
                ["detail"] = a.Detail,
            })]).ToJsonString(), Json));
        api.MapFallback((HttpContext http) => Error(StatusCodes.Status404NotFound, $"no API at {http.Request.Path}"));

        FleetPages.Map(endpoints);
        return endpoints;
    }

    /// <summary>A link rate in bytes per second as whole kbit/s, the unit `devices list` prints.</summary>
    public static long Kbits(long bytesPerSecond) => (long)Math.Round(bytesPerSecond * 8 / 1000.0);

    private static ChangeOrigin Origin(HttpContext http) =>
        new(RelayAccess.Actor(http.User), http.Connection.RemoteIpAddress?.ToString() ?? "unknown");

    // elsewhere: the other relay holding the device's uplink (several relays on one database), else null.
    private static JsonObject DeviceView(FleetService fleet, MediaStreamRegistry streams, Devices.DeviceEntry entry, DeviceOwnershipService ownership, DeviceOwner? elsewhere)
    {
        var id = entry.Id;
        var record = fleet.Store.GetDeviceRecord(id);
        var desired = fleet.Store.GetLatestConfig(id);
        var live = fleet.Live(id);
        var updates = fleet.Updates;
        var status = live?.Status;
        JsonArray Pipelines(string prefix)
        {
            var list = new JsonArray();
            if (status?["pipelines"] is not JsonArray all) return list;
            foreach (var p in all.OfType<JsonObject>())
            {
                var name = p["name"]?.GetValueKind() == System.Text.Json.JsonValueKind.String ? p["name"]!.GetValue<string>() : "";
                if (!name.StartsWith(prefix, StringComparison.Ordinal)) continue;
                var item = (JsonObject)p.DeepClone();
                item["name"] = name[prefix.Length..];
                if (prefix == "camera/") item["streaming"] = streams.TryGet(id, name[prefix.Length..], out var s) && s.IsOnline;
                list.Add(item);
            }
            return list;
        }
        var lastError = record?.ReportedOutcome is "rejected" or "reverted" ? record.ReportedDetail : null;
        if (live is not null) elsewhere = null;
        var view = new JsonObject
        {
            ["id"] = id,
            ["source"] = entry.Source,
            ["revoked"] = entry.Revoked is not null,
            ["online"] = live is not null || elsewhere is not null,
            ["lastSeen"] = live is not null || elsewhere is not null ? DateTimeOffset.UtcNow : record?.LastSeen,
            ["remoteAddress"] = live?.Session.RemoteAddress ?? record?.Remote,
            ["agent"] = live?.Session.Agent ?? record?.Agent,
            ["transport"] = live?.Session.TransportName,
            ["configSupported"] = live is null ? null : (live.Session.Capabilities & Transport.Uplink.UplinkCapabilities.Data) != 0,
            ["connectedAt"] = live?.Session.ConnectedAt,
            // The device reports its uptime when its status changes; count on from when that arrived.
            ["uptimeSeconds"] = status?["uptimeSeconds"] is JsonValue up && up.TryGetValue<double>(out var seconds) && live?.StatusAt is { } at
                ? Math.Round(seconds + (DateTimeOffset.UtcNow - at).TotalSeconds, 1) : null,
            ["runningRevision"] = status?["revision"]?.DeepClone(),
            // The uplink rate the device measured (docs/fleet.md): while it is online, else the last one heard.
            ["linkBytesPerSecond"] = record?.LinkBytesPerSecond,
            ["linkRateAt"] = record?.LinkRateAt,
            ["cameras"] = Pipelines("camera/"),
            ["sensors"] = Pipelines("sensor/"),
            ["desiredRevision"] = desired?.Revision,
            ["reportedRevision"] = record?.ReportedRevision,
            ["reportedOutcome"] = record?.ReportedOutcome,
            ["reportedAt"] = record?.ReportedAt,
            ["lastError"] = lastError,
            ["version"] = AgentVersion(live?.Session.Agent ?? record?.Agent),
            ["architecture"] = AgentArchitecture(live?.Session.Agent ?? record?.Agent),
            ["update"] = updates?.Store.Get(id) is { } u ? Updates.Rollouts.DeviceView(id, u) : null,
        };
        // Several relays (docs/scale-out.md): which relay holds the uplink, by its public URL. The session details
        // above (transport, connectedAt, pipelines) are that relay's to tell: GET /api/devices/ID is redirected there.
        if (ownership.Enabled)
            view["relay"] = live is not null ? ownership.Me.PublicUrl : elsewhere?.PublicUrl;
        return view;
    }

    private enum BodyProblem { None, TooLarge, NotUtf8 }

    // The limit is checked while reading, so a client that lies about (or leaves out) Content-Length cannot make the relay buffer more.
    private static async Task<(string? Text, BodyProblem Problem)> ReadBodyAsync(HttpContext http, int limit)
    {
        if (http.Request.ContentLength > limit) return (null, BodyProblem.TooLarge);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int n;
        while ((n = await http.Request.Body.ReadAsync(chunk, http.RequestAborted)) > 0)
        {
            if (buffer.Length + n > limit) return (null, BodyProblem.TooLarge);
            buffer.Write(chunk, 0, n);
        }
        try
        {
            return (new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(buffer.GetBuffer(), 0, (int)buffer.Length), BodyProblem.None);
        }
        catch (DecoderFallbackException)
        {
            return (null, BodyProblem.NotUtf8);
        }
    }

    private static async Task<JsonObject?> ReadJsonObjectAsync(HttpContext http, int limit)
    {
        var (text, _) = await ReadBodyAsync(http, limit);
        if (text is null) return null;
        try
        {
            return JsonNode.Parse(text) as JsonObject;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static IResult NoDevice(string id) => Error(StatusCodes.Status404NotFound, $"no device \"{id}\"");

    private static IResult Error(int status, string message) =>
        Results.Text(new JsonObject { ["error"] = message }.ToJsonString(), Json, statusCode: status);

    /// <summary>The version in an agent string (<c>pinhole-edge/2.1.0 (linux-arm64)</c> and <c>pinhole-edge/2.1.0</c> give <c>2.1.0</c>), or null.</summary>
    public static string? AgentVersion(string? agent)
    {
        if (agent is null) return null;
        var space = agent.IndexOf(' ', StringComparison.Ordinal);
        var product = space >= 0 ? agent[..space] : agent;
        var slash = product.LastIndexOf('/');
        return slash >= 0 && slash < product.Length - 1 ? product[(slash + 1)..] : null;
    }

    /// <summary>
    /// The architecture in an agent string (<c>pinhole-edge/2.1.0 (linux-arm64)</c> gives <c>linux-arm64</c>), or null
    /// when it names none (an edge older than this relay sends only <c>pinhole-edge/2.1.0</c>).
    /// </summary>
    public static string? AgentArchitecture(string? agent)
    {
        if (agent is null || !agent.EndsWith(')')) return null;
        var open = agent.LastIndexOf(" (", StringComparison.Ordinal);
        if (open < 0) return null;
        var arch = agent[(open + 2)..^1];
        return arch.Length is >= 1 and <= 32 && arch.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_') ? arch : null;
    }

    private static bool SameOrigin(HttpContext http)
    {
        var origin = http.Request.Headers.Origin.ToString();
        if (!Uri.TryCreate(origin, UriKind.Absolute, out var o)) return false;
        return Uri.TryCreate($"{http.Request.Scheme}://{http.Request.Host}", UriKind.Absolute, out var self)
            && string.Equals(o.Scheme, self.Scheme, StringComparison.OrdinalIgnoreCase)
            && string.Equals(o.Host, self.Host, StringComparison.OrdinalIgnoreCase)
            && o.Port == self.Port;
    }
}
