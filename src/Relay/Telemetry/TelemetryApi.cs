using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Mvc;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Web;

namespace Pinhole.Relay.Telemetry;

/// <summary>
/// The telemetry history over HTTP, for anyone logged in (viewers and admins) and API tokens:
/// <c>GET /api/devices/ID/sensors</c> (latest value, unit, last seen, status, raised alerts) and
/// <c>GET /api/devices/ID/sensors/NAME/history?from=&amp;to=&amp;points=N[&amp;format=csv]</c>.
/// </summary>
public static class TelemetryApi
{
    private const string Json = "application/json; charset=utf-8";

    /// <summary>Most points a downsampled answer may be asked for.</summary>
    public const int MaxPoints = 20_000;

    /// <summary>Maps the API and the dashboard page.</summary>
    public static IEndpointRouteBuilder MapTelemetry(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api/devices/{id}/sensors").RequireAccess(RelayAccess.ViewerPolicy, (http, _) =>
        {
            http.Response.Headers.CacheControl = "no-store";
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return Error(StatusCodes.Status401Unauthorized, "log in, or send Authorization: Bearer TOKEN (pinhole-relay tokens add NAME)");
        }).AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            http.Response.Headers.CacheControl = "no-store";
            var id = (string)http.Request.RouteValues["id"]!;
            if (!http.RequestServices.GetRequiredService<DeviceRegistry>().Exists(id)) return Error(StatusCodes.Status404NotFound, $"no device \"{id}\"");
            if (http.RequestServices.GetService<ITelemetryStore>() is null)
                return Error(StatusCodes.Status404NotFound, "telemetry history is off: add \"telemetry\": { \"mqtt\": \"ws://BROKER/mqtt\" } to relay.json");
            return await next(context);
        });
        api.MapGet("", (string id, [FromServices] ITelemetryStore store, [FromServices] AlertEngine alerts) => Results.Text(SensorsView(id, store, alerts).ToJsonString(), Json));
        api.MapGet("/{name}/history", (HttpContext http, string id, string name, string? from, string? to, string? points, string? format, [FromServices] ITelemetryStore store, [FromServices] TimeProvider time) =>
        {
            var now = time.GetUtcNow();
            if (!TryTime(to, now, out var end)) return Error(StatusCodes.Status400BadRequest, "to: an ISO 8601 time (2026-11-21T12:00:00Z) or Unix milliseconds");
            if (!TryTime(from, end - TimeSpan.FromDays(1), out var start)) return Error(StatusCodes.Status400BadRequest, "from: an ISO 8601 time (2026-11-21T12:00:00Z) or Unix milliseconds");
            if (end <= start) return Error(StatusCodes.Status400BadRequest, "from must be before to");
            int? n = null;
            if (points is not null)
            {
                if (!int.TryParse(points, NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p is < 2 or > MaxPoints)
                    return Error(StatusCodes.Status400BadRequest, $"points: a whole number from 2 to {MaxPoints}");
                n = p;
            }
            var result = store.History(id, name, start, end, n, now);
            if (result is null)
                return Error(StatusCodes.Status400BadRequest, "more than 100000 readings in this range: ask for points=N (downsampled) or a shorter range");
            var unit = store.Sensors(id).FirstOrDefault(s => s.Name == name)?.Unit ?? "";
            var csv = string.Equals(format, "csv", StringComparison.OrdinalIgnoreCase);
            if (!csv && format is not null && !string.Equals(format, "json", StringComparison.OrdinalIgnoreCase))
                return Error(StatusCodes.Status400BadRequest, "format: json (default) or csv");
            if (csv)
            {
                http.Response.Headers.ContentDisposition = $"attachment; filename=\"{id}-{name}.csv\"";
                return Results.Text(Csv(result), "text/csv; charset=utf-8");
            }
            return Results.Text(HistoryView(id, name, unit, start, end, result).ToJsonString(), Json);
        });
        TelemetryPages.Map(endpoints);
        return endpoints;
    }

    private static JsonObject SensorsView(string id, ITelemetryStore store, AlertEngine alerts)
    {
        var status = store.GetStatus(id);
        var raised = alerts.Active(id);
        return new JsonObject
        {
            ["device"] = id,
            ["status"] = status?.Status,
            ["statusAt"] = status is null ? null : Iso(status.At),
            ["sensors"] = new JsonArray([.. store.Sensors(id).Select(s => (JsonNode)new JsonObject
            {
                ["name"] = s.Name,
                ["value"] = s.Value,
                ["unit"] = s.Unit,
                ["ts"] = Iso(s.Timestamp),
                ["seq"] = s.Seq,
                ["lastSeen"] = Iso(s.LastSeen),
                ["alert"] = raised.FirstOrDefault(a => a.Sensor == s.Name) is { } a ? AlertView(a) : null,
            })]),
            ["alerts"] = new JsonArray([.. raised.Select(a => (JsonNode)AlertView(a))]),
        };
    }

    private static JsonObject AlertView(AlertChange a) => new()
    {
        ["sensor"] = a.Sensor,
        ["state"] = "raised",
        ["value"] = a.Value,
        ["ts"] = Iso(a.Timestamp),
        ["rule"] = a.Rule,
    };

    private static JsonObject HistoryView(string id, string name, string unit, DateTimeOffset from, DateTimeOffset to, HistoryResult result) => new()
    {
        ["device"] = id,
        ["sensor"] = name,
        ["unit"] = unit,
        ["from"] = Iso(from),
        ["to"] = Iso(to),
        ["tier"] = result.Tier switch { HistoryTier.Raw => "raw", HistoryTier.Minute => "1m", _ => "1h" },
        ["bucketMs"] = (long)result.Bucket.TotalMilliseconds,
        ["points"] = new JsonArray([.. result.Points.Select(p => (JsonNode)(p.Seq is { } seq
            ? new JsonObject { ["ts"] = Iso(p.Time), ["value"] = p.Avg, ["seq"] = seq }
            : new JsonObject { ["ts"] = Iso(p.Time), ["min"] = p.Min, ["max"] = p.Max, ["avg"] = p.Avg, ["count"] = p.Count }))]),
    };

    private static string Csv(HistoryResult result)
    {
        var sb = new StringBuilder();
        var raw = result.Bucket == TimeSpan.Zero;
        sb.Append(raw ? "ts,value,seq\n" : "ts,min,max,avg,count\n");
        foreach (var p in result.Points)
        {
            if (raw) sb.Append(CultureInfo.InvariantCulture, $"{Iso(p.Time)},{p.Avg:R},{p.Seq}\n");
            else sb.Append(CultureInfo.InvariantCulture, $"{Iso(p.Time)},{p.Min:R},{p.Max:R},{p.Avg:R},{p.Count}\n");
        }
        return sb.ToString();
    }

    internal static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static bool TryTime(string? text, DateTimeOffset fallback, out DateTimeOffset value)
    {
        value = fallback;
        if (string.IsNullOrEmpty(text)) return true;
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var ms) && ms is > -62135596800000 and < 253402300799999)
        {
            value = DateTimeOffset.FromUnixTimeMilliseconds(ms);
            return true;
        }
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out value);
    }

    private static IResult Error(int status, string message) =>
        Results.Text(new JsonObject { ["error"] = message }.ToJsonString(), Json, statusCode: status);
}
