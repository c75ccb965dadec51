using System.Globalization;
using OpenQA.Selenium;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 17 end to end: headless Chromium plays the real GStreamer camera through a real edge and a
/// real relay over WebRTC (WHEP, ICE-lite, DTLS-SRTP), and the player falls back to MSE when WebRTC
/// cannot connect.
/// </summary>
[Collection(EndToEnd.Collection)]
public class WebRtcTests(ITestOutputHelper output)
{
    /// <summary>The inbound video stats of the page's RTCPeerConnection: [framesDecoded, packetsLost, framesDropped, freezeCount].</summary>
    internal const string InboundVideo = """
        const done = arguments[arguments.length - 1];
        const pc = window.pinhole && window.pinhole.pc;
        if (!pc) { done(null); return; }
        pc.getStats().then((report) => {
          let r = null;
          report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') r = [s.framesDecoded || 0, s.packetsLost || 0, s.framesDropped || 0, s.freezeCount || 0, s.nackCount || 0]; });
          done(r);
        }, () => done(null));
        """;

    internal static long[] Stats(Chromium browser) =>
        browser.Driver.ExecuteAsyncScript(InboundVideo) is IReadOnlyCollection<object> values
            ? values.Select(v => Convert.ToInt64(v, CultureInfo.InvariantCulture)).ToArray()
            : throw new InvalidOperationException("the page has no RTCPeerConnection stats");

    internal static async Task LogInAsync(Chromium browser, Uri page)
    {
        browser.Navigate(page);
        browser.Driver.FindElement(By.Name("user")).SendKeys(EndToEnd.ViewerUser);
        browser.Driver.FindElement(By.Name("password")).SendKeys(EndToEnd.ViewerPassword);
        browser.Driver.FindElement(By.CssSelector("button[type=submit]")).Click();
        await browser.WaitForAsync("document.getElementById('video') !== null", TimeSpan.FromSeconds(15));
    }

    internal static object WebRtcConfig(int port, bool tcp = true) => new { udp = $"127.0.0.1:{port}", tcp };

    /// <summary>Watches for <paramref name="seconds"/> s and returns the framesDecoded samples (one a second) and the last stats.</summary>
    internal static async Task<(List<long> Frames, long[] Last)> WatchAsync(Chromium browser, int seconds)
    {
        var frames = new List<long>();
        long[] last = [];
        for (var i = 0; i <= seconds; i++)
        {
            if (i > 0) await Task.Delay(1000);
            last = Stats(browser);
            frames.Add(last[0]);
        }
        return (frames, last);
    }

    [RequiresFact(Needs.Chromium | Needs.RtspCamera)]
    public async Task Chromium_plays_the_real_camera_over_WebRTC_through_the_edge_and_relay()
    {
        var port = FreePort.GetTcpAndUdp();
        await using var stack = await EndToEndStack.StartAsync(output,
            new RtspCameraOptions { Video = CameraVideo.H264, Audio = CameraAudio.Aac, Width = 640, Height = 360, Gop = 25 },
            configure: s => s.RelayExtra["webrtc"] = WebRtcConfig(port));
        using var browser = Chromium.Start();
        var play = new Uri(stack.HttpUri, $"/play/{EndToEnd.Device}/{EndToEnd.CameraName}");
        await LogInAsync(browser, play);

        await browser.WaitForAsync("window.pinhole && window.pinhole.transport === 'webrtc'", TimeSpan.FromSeconds(20));
        Assert.Equal("connected", browser.Execute<string>("return window.pinhole.pc.connectionState;"));
        var firstFrameMs = browser.Execute<double>("return window.pinhole.webrtcFirstFrameMs;");

        var (frames, last) = await WatchAsync(browser, 10);
        var decoded = frames[^1] - frames[0];
        var latency = browser.Execute<string>("return document.getElementById('latency').textContent;");
        output.WriteLine($"WebRTC: first frame {firstFrameMs:0} ms after the offer; decoded {decoded} frames in 10 s ({string.Join(",", frames)}); lost {last[1]}, dropped {last[2]}, freezes {last[3]}, nacks {last[4]}; shown '{latency}'");
        browser.SaveScreenshot("e2e-webrtc-player");
        Assert.True(decoded > 200, $"decoded {decoded} frames in 10 s: {string.Join(",", frames)}\n{stack.Logs}");
        Assert.All(frames.Zip(frames.Skip(1)), p => Assert.True(p.Second > p.First, $"frames stalled: {string.Join(",", frames)}"));
        Assert.StartsWith("WebRTC", latency, StringComparison.Ordinal);
        Assert.Equal("live", browser.Execute<string>("return document.getElementById('state').dataset.state;"));
        // The camera's audio is AAC: the page says WebRTC plays its video only.
        Assert.Contains("AAC", browser.Execute<string>("return document.getElementById('message').textContent;"), StringComparison.Ordinal);
    }

    [RequiresFact(Needs.Chromium | Needs.RtspCamera)]
    public async Task The_player_falls_back_to_MSE_within_3_s_when_WebRTC_cannot_connect()
    {
        var port = FreePort.GetTcpAndUdp();
        // The answer names 127.0.0.2, where nothing listens: every check and TCP connect fails (on loopback).
        await using var stack = await EndToEndStack.StartAsync(output,
            new RtspCameraOptions { Video = CameraVideo.H264, Width = 640, Height = 360, Gop = 25 },
            configure: s => s.RelayExtra["webrtc"] = new { udp = $"127.0.0.1:{port}", publicAddresses = new[] { "127.0.0.2" } });
        using var browser = Chromium.Start();
        var play = new Uri(stack.HttpUri, $"/play/{EndToEnd.Device}/{EndToEnd.CameraName}");
        await LogInAsync(browser, play);
        var loaded = browser.Execute<double>("return performance.now();");

        await browser.WaitForAsync("window.pinhole && window.pinhole.transport === 'mse'", TimeSpan.FromSeconds(10));
        var fellBackAfter = browser.Execute<double>("return performance.now();") - loaded;
        var reason = browser.Execute<string>("return window.pinhole.fallbackReason;");
        await browser.WaitForAsync("window.pinhole.state === 'live'", TimeSpan.FromSeconds(30));
        var before = browser.Execute<long>("return document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames;");
        await Task.Delay(5000);
        var after = browser.Execute<long>("return document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames;");
        var latency = browser.Execute<string>("return document.getElementById('latency').textContent;");
        output.WriteLine($"fell back to MSE ({reason}) about {fellBackAfter:0} ms after the page was read; {after - before} frames in 5 s; shown '{latency}'");
        Assert.Equal("not connected within 3 s", reason);
        Assert.True(after - before > 50, $"MSE decoded {after - before} frames in 5 s\n{stack.Logs}");
        Assert.StartsWith("MSE", latency, StringComparison.Ordinal);
    }

    [RequiresFact(Needs.Chromium | Needs.RtspCamera)]
    public async Task A_camera_with_B_frames_is_refused_over_WHEP_and_plays_over_MSE()
    {
        var port = FreePort.GetTcpAndUdp();
        await using var stack = await EndToEndStack.StartAsync(output,
            new RtspCameraOptions { Video = CameraVideo.H264, Width = 640, Height = 360, Gop = 25, BFrames = 2 },
            configure: s => s.RelayExtra["webrtc"] = WebRtcConfig(port));
        using var browser = Chromium.Start();
        var play = new Uri(stack.HttpUri, $"/play/{EndToEnd.Device}/{EndToEnd.CameraName}");
        await LogInAsync(browser, play);
        // The page knew the tracks already: it goes to MSE without offering, or the WHEP answer says 409.
        await browser.WaitForAsync("window.pinhole && window.pinhole.transport === 'mse'", TimeSpan.FromSeconds(10));
        await browser.WaitForAsync("window.pinhole.state === 'live'", TimeSpan.FromSeconds(30));
        var status = browser.Driver.ExecuteAsyncScript($$"""
            const done = arguments[arguments.length - 1];
            const pc = new RTCPeerConnection();
            pc.addTransceiver('video', { direction: 'recvonly' });
            pc.createOffer().then((o) => pc.setLocalDescription(o)).then(() => fetch('/whep/{{EndToEnd.Device}}/{{EndToEnd.CameraName}}', {
              method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp }))
              .then(async (r) => done(r.status + ' ' + (await r.text())), (e) => done('error ' + e));
            """) as string;
        output.WriteLine($"WHEP for a B-frame camera: {status}");
        Assert.StartsWith("409 ", status, StringComparison.Ordinal);
        Assert.Contains("B-frames", status, StringComparison.Ordinal);
    }

    [RequiresCoturnFact]
    public async Task Chromium_plays_over_WebRTC_through_coturn_with_credentials_minted_per_viewer()
    {
        const string Secret = "coturn-test-secret-0123456789";
        await using var turn = await Coturn.StartAsync(Secret, line => { try { output.WriteLine("coturn " + line); } catch (InvalidOperationException) { } });
        var port = FreePort.GetTcpAndUdp();
        await using var stack = await EndToEndStack.StartAsync(output,
            new RtspCameraOptions { Video = CameraVideo.H264, Width = 640, Height = 360, Gop = 25 },
            configure: s =>
            {
                s.RelayExtra["webrtc"] = WebRtcConfig(port);
                s.RelayExtra["iceServers"] = new[] { new { urls = new[] { $"turn:127.0.0.1:{turn.Port}?transport=udp" }, secret = Secret, ttl = 600 } };
            });
        using var browser = Chromium.Start();
        // ?ice=relay: iceTransportPolicy "relay", so only TURN candidates may carry the media.
        var play = new Uri(stack.HttpUri, $"/play/{EndToEnd.Device}/{EndToEnd.CameraName}?ice=relay");
        await LogInAsync(browser, play);
        var ice = browser.Execute<string>("return document.getElementById('player').dataset.ice;");
        Assert.Contains(":viewer\"", ice, StringComparison.Ordinal); // the minted user name is EXPIRY:USER

        await browser.WaitForAsync("window.pinhole && window.pinhole.transport === 'webrtc'", TimeSpan.FromSeconds(20));
        var local = browser.Driver.ExecuteAsyncScript("""
            const done = arguments[arguments.length - 1];
            window.pinhole.pc.getStats().then((report) => {
              let selected = null; const pairs = {}; const candidates = {};
              report.forEach((s) => {
                if (s.type === 'transport') selected = s.selectedCandidatePairId;
                if (s.type === 'candidate-pair') pairs[s.id] = s;
                if (s.type === 'local-candidate') candidates[s.id] = s.candidateType + ' ' + s.protocol;
              });
              const pair = selected && pairs[selected];
              done(pair ? candidates[pair.localCandidateId] : 'no selected pair');
            });
            """) as string;
        var (frames, last) = await WatchAsync(browser, 10);
        var decoded = frames[^1] - frames[0];
        output.WriteLine($"via TURN: local candidate {local}; decoded {decoded} frames in 10 s ({string.Join(",", frames)}); lost {last[1]}");
        Assert.StartsWith("relay ", local, StringComparison.Ordinal);
        Assert.True(decoded > 200, $"decoded {decoded} frames in 10 s through TURN: {string.Join(",", frames)}\n{stack.Logs}\n--- coturn ---\n{turn.Log}");
        Assert.Matches(@"ALLOCATE processed, success", turn.Log);
    }
}

/// <summary>A fact that needs Chromium, the test camera and Debian's coturn.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class RequiresCoturnFactAttribute : FactAttribute
{
    public RequiresCoturnFactAttribute()
    {
        Skip = Requirements.SkipReason(Needs.Chromium | Needs.RtspCamera) ?? Coturn.SkipReason;
    }
}
