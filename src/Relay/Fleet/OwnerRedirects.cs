namespace Pinhole.Relay.Fleet;

/// <summary>
/// With several relays (docs/scale-out.md): HTTP requests that need a device's live uplink — the browser player
/// and its feeds, WHEP, tunnels, the device page, the fleet API's live view of one device — are redirected to
/// the public URL of the relay that holds that uplink when it is another relay. GET and HEAD get 302 (a browser
/// follows it and loads the player from the owner, whose WebSocket then opens there); other methods 307, which
/// keeps the method and body.
/// </summary>
public static class OwnerRedirects
{
    /// <summary>Adds the redirect in front of the endpoints (only when there is a shared database) and points the RTSP server at the owner too.</summary>
    public static void UseOwnerRedirects(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var ownership = app.Services.GetRequiredService<DeviceOwnershipService>();
        if (!ownership.Enabled) return;
        if (app.Services.GetService<Pinhole.Streaming.Rtsp.RtspServer>() is { } rtsp) rtsp.RedirectBase = ownership.RtspBaseElsewhere;
        app.Use(async (context, next) =>
        {
            if (DeviceOf(context.Request) is { } device && ownership.HttpBaseElsewhere(device) is { } owner)
            {
                var target = owner + context.Request.PathBase + context.Request.Path + context.Request.QueryString;
                var keepMethod = !HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method);
                context.Response.Redirect(target, permanent: false, preserveMethod: keepMethod);
                return;
            }
            await next(context).ConfigureAwait(false);
        });
    }

    /// <summary>The device a request is about when it needs that device's live uplink, else null.</summary>
    public static string? DeviceOf(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var segments = (request.Path.Value ?? "").Split('/', StringSplitOptions.RemoveEmptyEntries);
        return segments switch
        {
            ["play", var device, _, ..] => device,
            ["whep", var device, _, ..] => device,
            ["devices", var device, "tunnels" or "ui", ..] => device,
            ["api", "devices", var device] when HttpMethods.IsGet(request.Method) => device,
            _ => null,
        };
    }
}
