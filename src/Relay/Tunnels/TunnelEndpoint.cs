using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net.WebSockets;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Uplink;
using Pinhole.Relay.Web;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Tunnels;

/// <summary>
/// <c>/devices/ID/tunnels/NAME</c> (docs/tunnels.md): a WebSocket carrying raw bytes to and from the
/// device's exposed service NAME, for admins only. Binary messages are bytes; the client's close is
/// its half-close, and the relay closes once the service's side has ended. Every opening is audited
/// (who, device, name, when) and again when it ends (bytes each way, how long, why).
/// </summary>
public static partial class TunnelEndpoint
{
    private const int BufferSize = 64 * 1024;

    /// <summary>Maps the endpoint.</summary>
    public static IEndpointRouteBuilder MapTunnels(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.Map("/devices/{id}/tunnels/{name}", HandleAsync).RequireAccess(RelayAccess.AdminPolicy, (http, user) =>
        {
            http.Response.Headers.CacheControl = "no-store";
            if (user is not null) return Refusal(http, StatusCodes.Status403Forbidden, $"{user} is not an admin");
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return Refusal(http, StatusCodes.Status401Unauthorized, "tunnels are for admins: send Authorization: Bearer TOKEN (pinhole-relay tokens add NAME) or log in");
        });
        return endpoints;
    }

    private static async Task<IResult> HandleAsync(HttpContext http, string id, string name, DeviceRegistry devices, UplinkSessionRegistry sessions,
        IFleetStore store, TunnelMetrics metrics, TimeProvider time, ILoggerFactory logs)
    {
        http.Response.Headers.CacheControl = "no-store";
        IResult Text(int status, string message) => Refusal(http, status, message);
        var actor = RelayAccess.Actor(http.User);
        // A browser session rides on a cookie: a page of another site must not open tunnels with it.
        if (!RelayAccess.IsToken(http.User) && http.Request.Headers.Origin.Count > 0 && !SameOrigin(http))
            return Text(StatusCodes.Status403Forbidden, "a tunnel with a session cookie must come from the relay's own page (Origin)");
        if (!devices.Exists(id)) return Text(StatusCodes.Status404NotFound, $"no device \"{id}\"");
        if (!UplinkProtocol.IsValidCameraName(name)) return Text(StatusCodes.Status400BadRequest, $"\"{name}\" is not a tunnel name (1-64 of A-Z a-z 0-9 . _ -)");
        if (name == Pinhole.EdgeHost.Configuration.ExposeConfig.DevicePage)
            return Text(StatusCodes.Status400BadRequest, $"\"{name}\" is the device's own page: open /devices/{id}/ui/ instead");
        if (!http.WebSockets.IsWebSocketRequest) return Text(StatusCodes.Status400BadRequest, "this is a WebSocket endpoint (or use: pinhole-relay tunnel ID NAME --listen HOST:PORT)");
        TimeSpan? limit = null;
        if (http.Request.Query.TryGetValue("limit", out var limitText))
        {
            if (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || seconds <= 0)
                return Text(StatusCodes.Status400BadRequest, "limit must be a positive number of seconds");
            limit = TimeSpan.FromSeconds(seconds);
        }
        if (!sessions.TryGet(id, out var session)) return Text(StatusCodes.Status503ServiceUnavailable, $"device \"{id}\" is offline");
        if (session.Tunnels is not { } tunnels)
            return Text(StatusCodes.Status501NotImplemented, $"device \"{id}\" does not support tunnels (its pinhole-edge is older; update it)");

        var logger = logs.CreateLogger("Pinhole.Relay.Tunnels");
        var source = http.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        var target = $"{id}/{name}";
        TunnelStream stream;
        try
        {
            stream = await tunnels.OpenAsync(name, http.RequestAborted);
        }
        catch (TunnelResetException e)
        {
            store.Audit(new AuditEntry(time.GetUtcNow(), actor, source, "tunnel.refused", target, $"{e.Code}: {e.Message}"));
            Refused(logger, id, name, actor, e.Message);
            return e.Code switch
            {
                TunnelResetCode.NotExposed => Text(StatusCodes.Status404NotFound, $"device \"{id}\" refused: {e.Message}"),
                TunnelResetCode.Limit => Text(StatusCodes.Status429TooManyRequests, $"device \"{id}\": {e.Message}"),
                TunnelResetCode.Timeout => Text(StatusCodes.Status504GatewayTimeout, $"device \"{id}\": {e.Message}"),
                _ => Text(StatusCodes.Status502BadGateway, $"device \"{id}\": {e.Message}"),
            };
        }
        catch (ObjectDisposedException)
        {
            return Text(StatusCodes.Status503ServiceUnavailable, $"device \"{id}\" went offline");
        }

        var opened = time.GetTimestamp();
        store.Audit(new AuditEntry(time.GetUtcNow(), actor, source, "tunnel.open", target,
            limit is null ? $"stream {stream.Id}" : $"stream {stream.Id}, limit {limit.Value.TotalSeconds:0} s"));
        Opened(logger, id, name, actor, source);
        var device = new KeyValuePair<string, object?>("device", id);
        metrics.Open.Record(tunnels.Count, device);
        metrics.Opens.Add(1, device);
        string ending;
        using (stream)
        {
            using var socket = await http.WebSockets.AcceptWebSocketAsync();
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
            if (limit is { } l) cts.CancelAfter(l);
            ending = await BridgeAsync(socket, stream, cts.Token, http.RequestAborted);
        }
        metrics.Open.Record(tunnels.Count, device);
        var lasted = time.GetElapsedTime(opened);
        store.Audit(new AuditEntry(time.GetUtcNow(), actor, source, "tunnel.close", target,
            $"stream {stream.Id}: {stream.BytesOut} bytes to the device, {stream.BytesIn} from it, {lasted.TotalSeconds:0.0} s; {ending}"));
        metrics.Bytes.Add(stream.BytesOut, device, new KeyValuePair<string, object?>("direction", "to-device"));
        metrics.Bytes.Add(stream.BytesIn, device, new KeyValuePair<string, object?>("direction", "from-device"));
        return Results.Empty;
    }

    // Both directions until both ended; returns how it ended, for the audit log.
    private static async Task<string> BridgeAsync(WebSocket socket, TunnelStream stream, CancellationToken ct, CancellationToken aborted)
    {
        string? ending = null;
        var toDevice = Task.Run(async () =>
        {
            var buffer = new byte[BufferSize];
            try
            {
                while (true)
                {
                    var r = await socket.ReceiveAsync(buffer, ct);
                    if (r.MessageType == WebSocketMessageType.Close)
                    {
                        await stream.CompleteWritesAsync(ct);
                        return;
                    }
                    if (r.Count > 0) await stream.WriteAsync(buffer.AsMemory(0, r.Count), ct);
                }
            }
            catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
            {
                ending ??= "time limit reached";
                stream.Reset(TunnelResetCode.Timeout, "the tunnel's time limit was reached");
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
                ending ??= "the client went away";
                stream.Reset(TunnelResetCode.Cancelled, "the client went away");
            }
            catch (IOException e)
            {
                ending ??= e.Message;
            }
        }, CancellationToken.None);
        var fromDevice = Task.Run(async () =>
        {
            var buffer = new byte[BufferSize];
            try
            {
                while (true)
                {
                    var n = await stream.ReadAsync(buffer, ct);
                    if (n == 0)
                    {
                        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "end of stream", ct);
                        return;
                    }
                    await socket.SendAsync(buffer.AsMemory(0, n), WebSocketMessageType.Binary, true, ct);
                }
            }
            catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
            {
                ending ??= "time limit reached";
                stream.Reset(TunnelResetCode.Timeout, "the tunnel's time limit was reached");
                await CloseQuietlyAsync(socket, WebSocketCloseStatus.PolicyViolation, "time limit reached");
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
                ending ??= "the client went away";
                stream.Reset(TunnelResetCode.Cancelled, "the client went away");
            }
            catch (IOException e)
            {
                // The device's end reset the stream: tell the client why, then stop.
                ending ??= e.Message;
                await CloseQuietlyAsync(socket, WebSocketCloseStatus.InternalServerError, e.Message.Length > 120 ? e.Message[..120] : e.Message);
                socket.Abort();
            }
        }, CancellationToken.None);
        await Task.WhenAll(toDevice, fromDevice);
        return ending ?? "closed";
    }

    private static async Task CloseQuietlyAsync(WebSocket socket, WebSocketCloseStatus status, string reason)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived) await socket.CloseOutputAsync(status, reason, cts.Token);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException or ObjectDisposedException)
        {
        }
    }

    private static IResult Refusal(HttpContext http, int status, string message)
    {
        // WebSocket clients see the status and headers of a refused upgrade, not its body.
        http.Response.Headers[ErrorHeader] = new string([.. message.Select(c => c is >= ' ' and <= '~' ? c : '?')]);
        return Results.Text(message + "\n", "text/plain; charset=utf-8", statusCode: status);
    }

    /// <summary>Response header of a refused tunnel carrying the reason (WebSocket clients do not get the body).</summary>
    public const string ErrorHeader = "Pinhole-Error";

    private static bool SameOrigin(HttpContext http) =>
        Uri.TryCreate(http.Request.Headers.Origin.ToString(), UriKind.Absolute, out var o)
        && string.Equals(o.Scheme, http.Request.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(o.Authority, http.Request.Host.Value, StringComparison.OrdinalIgnoreCase);

    [LoggerMessage(1, LogLevel.Information, "Tunnel {Device}/{Name} opened by {Actor} from {Source}")]
    private static partial void Opened(ILogger logger, string device, string name, string actor, string source);

    [LoggerMessage(2, LogLevel.Warning, "Tunnel {Device}/{Name} for {Actor} refused: {Reason}")]
    private static partial void Refused(ILogger logger, string device, string name, string actor, string reason);
}

/// <summary>The relay's tunnel instruments (docs/telemetry.md), created once per meter.</summary>
public sealed class TunnelMetrics(Meter meter)
{
    /// <summary>Tunnel streams open on a device's uplink now (label device).</summary>
    public Gauge<int> Open { get; } = meter.CreateGauge<int>("pinhole_tunnel_streams_open", description: "Tunnel streams open on the device's uplink now.");

    /// <summary>Tunnel WebSockets opened (label device).</summary>
    public Counter<long> Opens { get; } = meter.CreateCounter<long>("pinhole_tunnel_opens_total", description: "Tunnel WebSockets opened.");

    /// <summary>Bytes carried by tunnels (labels device, direction).</summary>
    public Counter<long> Bytes { get; } = meter.CreateCounter<long>("pinhole_tunnel_bytes_total", description: "Bytes carried by tunnels.");
}
