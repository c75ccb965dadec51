using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pinhole.Relay.Security;
using Pinhole.Streaming;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Uplink;

/// <summary>HTTP fallback sessions whose downstream GET waits for its upstream POST.</summary>
internal sealed class HttpUplinkSessions
{
    private readonly ConcurrentDictionary<string, Waiting> _waiting = new(StringComparer.Ordinal);

    internal sealed record Upstream(HttpContext Context, TaskCompletionSource Done);

    private sealed record Waiting(string DeviceId, TaskCompletionSource<Upstream> Joined);

    /// <summary>Issues a session id for <paramref name="deviceId"/>'s GET; the task completes when its POST arrives.</summary>
    public (string Id, Task<Upstream> Joined) Open(string deviceId)
    {
        // 144 random bits, URL-safe: the POST must name it, and only the same (authenticated) device may.
        var id = Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', '-').Replace('/', '_');
        var joined = new TaskCompletionSource<Upstream>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[id] = new Waiting(deviceId, joined);
        return (id, joined.Task);
    }

    /// <summary>Hands the POST to the GET waiting under <paramref name="id"/>; false when there is none for this device.</summary>
    public bool TryJoin(string id, string deviceId, Upstream upstream)
    {
        if (!_waiting.TryGetValue(id, out var waiting) || waiting.DeviceId != deviceId) return false;
        if (!_waiting.TryRemove(new KeyValuePair<string, Waiting>(id, waiting))) return false;
        return waiting.Joined.TrySetResult(upstream);
    }

    /// <summary>Forgets <paramref name="id"/> (the GET gave up or ended).</summary>
    public void Close(string id) => _waiting.TryRemove(id, out _);
}

/// <summary>
/// The relay's end of the uplink's HTTP fallback (docs/uplink-protocol.md §1a), for networks whose proxies strip
/// <c>Upgrade</c>: the device's authenticated GET gets a session id and a streaming response (relay → device), its
/// authenticated POST naming that id streams a chunked body (device → relay). Together they run the same
/// <see cref="RelayUplinkSession"/> as a WebSocket does, through <see cref="UplinkHttpWebSocket"/>.
/// </summary>
internal static class HttpUplink
{
    /// <summary>How long a GET waits for its POST.</summary>
    public static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(10);

    public static async Task RunDownstreamAsync(HttpContext context, string deviceId, HttpUplinkSessions pending, UplinkEndpointOptions options,
        UplinkSessionRegistry sessions, ILogger logger, UplinkMetrics metrics, string? remote, RefusalLog refusals)
    {
        var sp = context.RequestServices;
        var (id, joined) = pending.Open(deviceId);
        try
        {
            // A long-lived stream: no minimum rate (the protocol's heartbeats find dead links), no buffering.
            if (context.Features.Get<IHttpMinResponseDataRateFeature>() is { } rate) rate.MinDataRate = null;
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = "application/octet-stream";
            context.Response.Headers.CacheControl = "no-store";
            context.Response.Headers["X-Accel-Buffering"] = "no"; // nginx: do not buffer this response
            context.Response.Headers[UplinkProtocol.SessionHeader] = id;
            await context.Response.StartAsync(context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);

            HttpUplinkSessions.Upstream up;
            using (var wait = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted))
            {
                wait.CancelAfter(JoinTimeout);
                try
                {
                    up = await joined.WaitAsync(wait.Token);
                }
                catch (OperationCanceledException)
                {
                    if (!context.RequestAborted.IsCancellationRequested)
                        UplinkLog.Refused(logger, remote, UplinkReason.Timeout.ToToken(), $"HTTP uplink of '{deviceId}': no POST joined the stream within {JoinTimeout.TotalSeconds:0} s");
                    return;
                }
            }
            try
            {
                var socket = new UplinkHttpWebSocket(up.Context.Request.Body, context.Response.Body, () => context.Response.CompleteAsync(),
                    () => { context.Abort(); up.Context.Abort(); });
                using var either = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, up.Context.RequestAborted);
                var session = new RelayUplinkSession(deviceId, remote, socket, options, sp.GetRequiredService<MediaStreamRegistry>(), sessions,
                    metrics, sp.GetService<TimeProvider>() ?? TimeProvider.System, logger, sp.GetService<IUplinkSessionObserver>(), refusals,
                    UplinkTransport.Http);
                await session.RunAsync(either.Token);
            }
            finally
            {
                up.Done.TrySetResult();
            }
        }
        finally
        {
            pending.Close(id);
        }
    }

    public static async Task JoinUpstreamAsync(HttpContext context, string deviceId, HttpUplinkSessions pending, ILogger logger, UplinkMetrics metrics, string? remote)
    {
        // The body is the whole session: no size cap (each message is still limited) and no minimum rate.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = null;
        if (context.Features.Get<IHttpMinRequestBodyDataRateFeature>() is { } rate) rate.MinDataRate = null;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var id = context.Request.Headers[UplinkProtocol.SessionHeader].ToString();
        if (!pending.TryJoin(id, deviceId, new HttpUplinkSessions.Upstream(context, done)))
        {
            await UplinkEndpoint.RefuseAsync(context, StatusCodes.Status400BadRequest, UplinkReason.BadRequest,
                $"no HTTP uplink stream of this device waits under that {UplinkProtocol.SessionHeader}; open the GET first", logger, metrics, remote);
            return;
        }
        try
        {
            await done.Task.WaitAsync(context.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        context.Response.StatusCode = StatusCodes.Status204NoContent;
    }
}
