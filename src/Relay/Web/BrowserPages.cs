using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using Pinhole.Streaming;
using Pinhole.Transport.Fmp4;
using Pinhole.Transport.Media;

namespace Pinhole.Relay.Web;

/// <summary>The HTML of the browser pages. Every value from outside is HTML-encoded; scripts are files
/// (the pages send a Content-Security-Policy without inline scripts).</summary>
internal static class BrowserPages
{
    private static readonly HtmlEncoder Html = HtmlEncoder.Default;

    public static string Login(string? next, string? error)
    {
        var action = "/login" + (next is null ? "" : "?next=" + Uri.EscapeDataString(next));
        var message = error is null ? "" : $"<p class=\"error\" role=\"alert\">{Html.Encode(error)}</p>";
        return Layout("Log in", user: null, csrf: "", $"""
            <form class="login" method="post" action="{Html.Encode(action)}">
              <h1>Pinhole</h1>
              {message}
              <label>User <input name="user" autocomplete="username" required autofocus maxlength="128"></label>
              <label>Password <input name="password" type="password" autocomplete="current-password" required maxlength="256"></label>
              <button type="submit">Log in</button>
            </form>
            """);
    }

    /// <summary>
    /// After a login when several relays serve the fleet: goes on to <paramref name="next"/> (a local path) by a
    /// fresh navigation. <paramref name="next"/> may redirect to another relay, and browsers refuse a redirect out
    /// of the origin in the chain of a form POST (CSP <c>form-action 'self'</c>); a meta refresh starts a new one.
    /// </summary>
    public static string Continue(string next) => Layout("Logged in", user: null, csrf: "", $"""
        <meta http-equiv="refresh" content="0;url={Html.Encode(next)}">
        <div class="login"><h1>Pinhole</h1><p>Logged in. <a href="{Html.Encode(next)}">Continue</a></p></div>
        """);

    /// <summary>What <c>GET /logout</c> shows when it cannot tell the request came from this site: a button that posts.</summary>
    public static string ConfirmLogout(string csrf) => Layout("Log out", user: null, csrf, $"""
        <form class="login" method="post" action="/logout">
          <input type="hidden" name="csrf" value="{Html.Encode(csrf)}">
          <h1>Pinhole</h1>
          <p>Log out of Pinhole?</p>
          <button type="submit">Log out</button>
        </form>
        """);

    public static string DeviceList(string user, string csrf, IReadOnlyList<MediaStream> streams, IReadOnlyList<string> devicesWithoutCameras,
        Func<string, IReadOnlyList<string>>? raisedAlerts = null)
    {
        // With a telemetry history: each device links to its sensor dashboard and shows its raised alerts.
        string Sensors(string device)
        {
            if (raisedAlerts is null) return "<td></td>";
            var alerts = raisedAlerts(device);
            var badges = string.Concat(alerts.Select(a => $" <span class=\"alert\" data-alert=\"{Html.Encode(a)}\">alert: {Html.Encode(a)}</span>"));
            return $"<td><a class=\"sensors-link\" href=\"/devices/{Html.Encode(Uri.EscapeDataString(device))}/sensors\">sensors</a>{badges}</td>";
        }
        var rows = new StringBuilder();
        foreach (var s in streams)
        {
            var tracks = s.Tracks;
            var video = tracks?.FirstOrDefault(t => t.IsVideo);
            var codecs = tracks is null ? "—" : string.Join(" + ", tracks.Select(CodecName));
            var resolution = video is { Width: > 0, Height: > 0 } ? $"{video.Width}×{video.Height}" : "—";
            var state = s.IsOnline ? "online" : "offline";
            rows.Append(CultureInfo.InvariantCulture, $"""
                <tr data-device="{Html.Encode(s.DeviceId)}" data-camera="{Html.Encode(s.Camera)}" data-state="{state}">
                  <td>{Html.Encode(s.DeviceId)}</td><td>{Html.Encode(s.Camera)}</td>
                  <td><span class="state {state}">{state}</span></td>
                  <td>{Html.Encode(codecs)}</td><td>{resolution}</td>
                  <td class="num">{s.ViewerCount}</td><td class="num">{FormatBitrate(s.IsOnline ? s.BitsPerSecond : 0)}</td>
                  <td><a href="{Html.Encode(PlayPath(s.DeviceId, s.Camera))}">watch</a></td>{Sensors(s.DeviceId)}
                </tr>
                """);
        }
        foreach (var d in devicesWithoutCameras)
        {
            rows.Append(CultureInfo.InvariantCulture, $"""
                <tr data-device="{Html.Encode(d)}" data-state="offline">
                  <td>{Html.Encode(d)}</td><td>—</td><td><span class="state offline">offline</span></td>
                  <td colspan="5" class="muted">no camera announced yet</td>{Sensors(d)}
                </tr>
                """);
        }
        var table = rows.Length == 0
            ? "<p class=\"empty\">No cameras yet. A device's cameras appear here once it connects.</p>"
            : $"""
              <table class="devices">
                <thead><tr><th>Device</th><th>Camera</th><th>State</th><th>Codec</th><th>Resolution</th><th>Viewers</th><th>Bitrate</th><th></th><th></th></tr></thead>
                <tbody>{rows}</tbody>
              </table>
              """;
        return Layout("Cameras", user, csrf, $"<h1>Cameras</h1>{table}", refreshSeconds: 10);
    }

    public static string Player(string user, string csrf, string device, string camera, string wsPath, string rtspUrl, string? whepPath = null, string? iceServersJson = null, string? audio = null)
    {
        var title = $"{device} / {camera}";
        // WebRTC first when the relay offers it (data-whep); the ICE servers carry this viewer's minted TURN credentials.
        var webrtc = whepPath is null ? "" : $" data-whep=\"{Html.Encode(whepPath)}\" data-ice=\"{Html.Encode(iceServersJson ?? "[]")}\" data-audio=\"{Html.Encode(audio ?? "")}\"";
        return Layout(title, user, csrf, $"""
            <h1>{Html.Encode(title)}</h1>
            <div class="player" id="player" data-ws="{Html.Encode(wsPath)}" data-rtsp="{Html.Encode(rtspUrl)}"{webrtc}>
              <video id="video" muted autoplay playsinline disablepictureinpicture></video>
              <div class="bar">
                <span id="state" class="state connecting" data-state="connecting">connecting</span>
                <span id="latency" class="latency"></span>
                <button type="button" id="unmute" hidden>Unmute</button>
              </div>
              <p id="message" class="message" hidden></p>
            </div>
            <script src="/assets/player.js" defer></script>
            """);
    }

    public static string Unplayable(string user, string csrf, string device, string camera, string codec, string rtspUrl)
    {
        var title = $"{device} / {camera}";
        return Layout(title, user, csrf, $"""
            <h1>{Html.Encode(title)}</h1>
            <div class="message unsupported" id="unsupported">
              <p>This camera sends <strong>{Html.Encode(codec)}</strong>, which browsers cannot play reliably.</p>
              <p>Watch it with VLC, ffplay or your NVR at <code id="rtsp-url">{Html.Encode(rtspUrl)}</code>
                 (log in with your viewer user name and password).</p>
            </div>
            """);
    }

    public static string NotFound(string? user, string csrf, string what) =>
        Layout("Not found", user, csrf, $"<h1>Not found</h1><p>{Html.Encode(what)}</p><p><a href=\"/\">All cameras</a></p>");

    /// <summary>Why the device page (<c>/devices/ID/ui/</c>) cannot be shown: offline, older software, no answer.</summary>
    public static string DevicePageProblem(string? user, string csrf, string title, string message) =>
        Layout(title, user, csrf, $"<h1>{Html.Encode(title)}</h1><p>{Html.Encode(message)}</p><p><a href=\"/\">All devices</a></p>");

    public static string PlayPath(string device, string camera) =>
        $"/play/{Uri.EscapeDataString(device)}/{Uri.EscapeDataString(camera)}";

    public static string CodecName(TrackInfo t) => t.Codec switch
    {
        MediaCodec.H264 => "H.264",
        MediaCodec.H265 => "H.265",
        MediaCodec.Aac => "AAC",
        MediaCodec.PcmAlaw => "G.711 A-law",
        MediaCodec.PcmMulaw => "G.711 µ-law",
        _ => t.Codec.ToString(),
    } + (Fmp4Muxer.CanMux(t) && CodecStrings.For(t) is { } s ? $" ({s})" : "");

    private static string FormatBitrate(long bps) => bps switch
    {
        0 => "—",
        < 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{bps / 1000.0:0} kbit/s"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bps / 1_000_000.0:0.0} Mbit/s"),
    };

    private static string Layout(string title, string? user, string csrf, string body, int refreshSeconds = 0)
    {
        var refresh = refreshSeconds > 0 ? $"<meta http-equiv=\"refresh\" content=\"{refreshSeconds}\">" : "";
        var header = user is null ? "" : $"""
            <header><a href="/" class="brand">Pinhole</a>
              <span class="user">{Html.Encode(user)} · <form class="logout" method="post" action="/logout"><input type="hidden" name="csrf" value="{Html.Encode(csrf)}"><button type="submit">log out</button></form></span></header>
            """;
        return $"""
            <!doctype html>
            <html lang="en">
            <head>
              <meta charset="utf-8">
              <meta name="viewport" content="width=device-width, initial-scale=1">
              {refresh}
              <title>{Html.Encode(title)} · Pinhole</title>
              <link rel="stylesheet" href="/assets/pinhole.css">
            </head>
            <body>
            {header}
            <main>
            {body}
            </main>
            </body>
            </html>
            """;
    }
}
