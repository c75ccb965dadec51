using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Streaming;
using Pinhole.Relay.Web;
using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Relay.WebRtc;

/// <summary>
/// WHEP (draft-ietf-wish-whep): <c>POST /whep/DEVICE/CAMERA</c> with an SDP offer answers 201 with
/// the SDP answer and the session's URL in Location; <c>DELETE</c> on that URL ends it; <c>PATCH</c>
/// (trickle ICE) is accepted and ignored, since an ICE-lite relay learns the browser's addresses
/// from its checks. A viewer's session cookie (same Origin) or an API token is required.
/// </summary>
public static class WhepEndpoint
{
    private const int MaxOfferBytes = 32 * 1024;

    /// <summary>Registers the WebRTC server when relay.json has <c>webrtc</c>.</summary>
    public static IServiceCollection AddWebRtc(this IServiceCollection services, RelayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.WebRtc is null) return services;
        services.AddSingleton<WebRtcServer>();
        services.AddHostedService(sp => sp.GetRequiredService<WebRtcServer>());
        return services;
    }

    /// <summary>Maps the WHEP endpoints (they answer 404 when WebRTC is off).</summary>
    public static IEndpointRouteBuilder MapWhep(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapPost("/whep/{device}/{camera}", OfferAsync);
        endpoints.MapDelete("/whep/{device}/{camera}/{id}", Delete);
        endpoints.MapMethods("/whep/{device}/{camera}/{id}", ["PATCH"], Patch);
        endpoints.MapGet("/whep/{device}/{camera}/{id}", Status);
        return endpoints;
    }

    // Not an endpoint policy: with "anonymousViewing" and no viewers, anyone may watch.
    private static async Task<(string? User, IResult? Refusal)> CallerAsync(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<IOptions<BrowserViewingOptions>>().Value;
        var caller = await RelayAccess.AuthenticateAsync(context).ConfigureAwait(false);
        if (caller is null)
        {
            var config = context.RequestServices.GetRequiredService<RelayConfig>();
            if (config.Viewers.Count == 0 && config.AnonymousViewing) return ("anonymous", null);
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"pinhole\"";
            return (null, Text(StatusCodes.Status401Unauthorized, "log in (session cookie) or send Authorization: Bearer TOKEN"));
        }
        // A cookie rides along with any site's request: only the relay's own pages may use it here.
        if (!RelayAccess.IsToken(caller) && !BrowserViewing.IsSameOrigin(context, options))
            return (null, Text(StatusCodes.Status403Forbidden, "a WHEP offer with a session cookie must come from the relay's own page (Origin)"));
        return (caller.Identity!.Name, null);
    }

    private static async Task<IResult> OfferAsync(HttpContext context, string device, string camera, [FromServices] MediaStreamRegistry registry,
        [FromServices] ILoggerFactory loggers, [FromServices] TimeProvider time, [FromServices] RelayConfig config)
    {
        var log = loggers.CreateLogger("Pinhole.Relay.WebRtc.Whep");
        NoStore(context);
        if (context.RequestServices.GetService<WebRtcServer>() is not { } server)
            return Text(StatusCodes.Status404NotFound, "WebRTC is off on this relay (relay.json \"webrtc\")");
        var (user, refusal) = await CallerAsync(context).ConfigureAwait(false);
        if (user is null) return refusal!;
        if (!(context.Request.ContentType ?? "").StartsWith("application/sdp", StringComparison.OrdinalIgnoreCase))
            return Text(StatusCodes.Status415UnsupportedMediaType, "send the offer as Content-Type: application/sdp");
        if (context.Request.ContentLength is > MaxOfferBytes)
            return Text(StatusCodes.Status413PayloadTooLarge, $"an offer is at most {MaxOfferBytes} bytes");
        string text;
        try
        {
            text = await ReadBodyAsync(context.Request, MaxOfferBytes, context.RequestAborted).ConfigureAwait(false);
        }
        catch (InvalidDataException e)
        {
            return Text(StatusCodes.Status413PayloadTooLarge, e.Message);
        }
        if (!registry.TryGet(device, camera, out var stream))
            return Text(StatusCodes.Status404NotFound, $"there is no camera {device}/{camera}");
        if (stream.Tracks is not { } tracks)
            return Text(StatusCodes.Status503ServiceUnavailable, "the camera has not started yet; try again");
        if (WhyNotWebRtc(tracks) is { } why)
        {
            WebRtcLog.Refused(log, user, device, camera, why);
            return Text(StatusCodes.Status409Conflict, why);
        }
        WebRtcOffer offer;
        IReadOnlyList<AnsweredMedia> media;
        try
        {
            offer = WebRtcSdp.ParseOffer(text);
            media = WebRtcSdp.Choose(offer, tracks, () => BitConverter.ToUInt32(RandomNumberGenerator.GetBytes(4)));
        }
        catch (Exception e) when (e is WebRtcOfferException or MediaFormatException)
        {
            WebRtcLog.Refused(log, user, device, camera, e.Message);
            return Text(StatusCodes.Status400BadRequest, e.Message);
        }
        var subscription = stream.Subscribe(user == "anonymous" ? null : user);
        if (subscription is null)
        {
            context.RequestServices.GetService<Security.RefusalLog>()?.Refused("viewer-limit", context.Connection.RemoteIpAddress?.ToString() ?? "unknown",
                $"viewer limit reached for {device}/{camera} (per stream, per user or in total)");
            return Text(StatusCodes.Status503ServiceUnavailable, "viewer limit reached");
        }
        var peer = new WebRtcPeer(server, user, offer, media, subscription, server.Identity, time, log);
        server.Add(peer);
        var answer = WebRtcSdp.BuildAnswer(offer, media, peer.LocalUfrag, peer.LocalPassword, server.Identity.Fingerprint,
            server.Candidates(udp: true), server.Candidates(udp: false), BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)) >> 2);
        WebRtcLog.Offered(log, peer.Id, user, device, camera);
        var location = $"/whep/{Uri.EscapeDataString(device)}/{Uri.EscapeDataString(camera)}/{peer.Id}";
        context.Response.Headers.Location = location;
        context.Response.Headers.ETag = "\"" + peer.Id + "\"";
        foreach (var ice in IceServers.ForViewer(config.IceServers, user, time.GetUtcNow()))
        {
            // WHEP §4.4: ICE servers as Link headers, for clients other than the relay's player.
            foreach (var url in ice!["urls"]!.AsArray())
            {
                var link = new StringBuilder($"<{url}>; rel=\"ice-server\"");
                if (ice["username"] is { } u) link.Append(CultureInfo.InvariantCulture, $"; username=\"{u}\"; credential=\"{ice["credential"]}\"; credential-type=\"password\"");
                context.Response.Headers.Append("Link", link.ToString());
            }
        }
        return Results.Text(answer, "application/sdp", Encoding.UTF8, StatusCodes.Status201Created);
    }

    /// <summary>Why a camera's tracks cannot go over WebRTC (then the player uses MSE), or null.</summary>
    public static string? WhyNotWebRtc(IReadOnlyList<TrackInfo> tracks)
    {
        ArgumentNullException.ThrowIfNull(tracks);
        var video = tracks.FirstOrDefault(t => t.IsVideo);
        if (video is null || video.Codec != MediaCodec.H264) return "WebRTC playback needs H.264 video; this camera sends " + (video?.Codec.ToString() ?? "no video");
        foreach (var ps in video.ParameterSets)
        {
            if (ps.Length < 4 || (ps.Span[0] & 0x1F) != 7) continue;
            try
            {
                if (H264Sps.Parse(ps.Span).ReorderDepth is > 0)
                    return "the camera sends B-frames (H.264 with frame reordering), which WebRTC cannot carry; play it over MSE";
            }
            catch (MediaFormatException)
            {
            }
        }
        return null;
    }

    private static async Task<IResult> Delete(HttpContext context, string device, string camera, string id)
    {
        if (context.RequestServices.GetService<WebRtcServer>() is not { } server) return Results.NotFound();
        var (user, refusal) = await CallerAsync(context).ConfigureAwait(false);
        if (user is null) return refusal!;
        if (!server.TryGet(id, out var peer) || peer.Stream.DeviceId != device || peer.Stream.Camera != camera) return Results.NotFound();
        if (peer.User != user) return Text(StatusCodes.Status403Forbidden, "this session belongs to another viewer");
        peer.Close("the viewer ended it (WHEP DELETE)");
        return Results.Ok();
    }

    private static async Task<IResult> Patch(HttpContext context, string device, string camera, string id)
    {
        if (context.RequestServices.GetService<WebRtcServer>() is not { } server) return Results.NotFound();
        var (user, refusal) = await CallerAsync(context).ConfigureAwait(false);
        if (user is null) return refusal!;
        if (!server.TryGet(id, out var peer) || peer.User != user) return Results.NotFound();
        // ICE-lite: the relay learns the browser's candidates from its checks; trickled ones change nothing.
        return Results.NoContent();
    }

    private static async Task<IResult> Status(HttpContext context, string device, string camera, string id)
    {
        if (context.RequestServices.GetService<WebRtcServer>() is not { } server) return Results.NotFound();
        var (user, refusal) = await CallerAsync(context).ConfigureAwait(false);
        if (user is null) return refusal!;
        if (!server.TryGet(id, out var peer) || peer.User != user) return Results.NotFound();
        return Results.Json(new
        {
            state = peer.State.ToString().ToLowerInvariant(),
            path = peer.Path?.ToString(),
            packets = Interlocked.Read(ref peer.PacketsSent),
            retransmitted = Interlocked.Read(ref peer.Retransmitted),
            nacks = Interlocked.Read(ref peer.NacksReceived),
            keyframeRequests = Interlocked.Read(ref peer.KeyframeRequests),
        });
    }

    private static async Task<string> ReadBodyAsync(HttpRequest request, int limit, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[4096];
        while (true)
        {
            var n = await request.Body.ReadAsync(chunk, ct).ConfigureAwait(false);
            if (n == 0) break;
            if (buffer.Length + n > limit) throw new InvalidDataException($"an offer is at most {limit} bytes");
            buffer.Write(chunk, 0, n);
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private static void NoStore(HttpContext context) => context.Response.Headers.CacheControl = "no-store";

    private static IResult Text(int status, string message) => Results.Text(message + "\n", "text/plain; charset=utf-8", Encoding.UTF8, status);
}
