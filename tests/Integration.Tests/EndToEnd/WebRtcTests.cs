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

    /// <summary>Opens <paramref name="count"/> WHEP viewers in the current page (each with its own muted video element).</summary>
    internal static string OpenViewers(Chromium browser, int count) => browser.Driver.ExecuteAsyncScript($$"""
        const done = arguments[arguments.length - 1];
        (async () => {
          window.viewers = [];
          for (let i = 0; i < {{count}}; i++) {
            const pc = new RTCPeerConnection();
            pc.addTransceiver('video', { direction: 'recvonly' });
            const v = document.createElement('video');
            v.muted = true; v.autoplay = true; v.playsInline = true; v.width = 80; v.height = 45;
            document.body.appendChild(v);
            pc.ontrack = (e) => { v.srcObject = new MediaStream([e.track]); v.play().catch(() => {}); };
            await pc.setLocalDescription(await pc.createOffer());
            const r = await fetch('/whep/{{EndToEnd.Device}}/{{EndToEnd.CameraName}}', { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
            if (r.status !== 201) { done('viewer ' + i + ': ' + r.status + ' ' + await r.text()); return; }
            await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
            window.viewers.push(pc);
          }
          done('ok');
        })().catch((e) => done('error ' + e));
        """) as string ?? "no answer";

    /// <summary>framesDecoded of every viewer opened by <see cref="OpenViewers"/>.</summary>
    internal static long[] ViewerFrames(Chromium browser) =>
        browser.Driver.ExecuteAsyncScript("""
            const done = arguments[arguments.length - 1];
            Promise.all(window.viewers.map((pc) => pc.getStats().then((report) => {
              let n = 0; report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded || 0; }); return n;
            }))).then(done, () => done([]));
            """) is IReadOnlyCollection<object> values ? values.Select(v => Convert.ToInt64(v, CultureInfo.InvariantCulture)).ToArray() : [];

    /// <summary>CPU seconds (user + system) a process has used, from /proc/PID/stat.</summary>
    internal static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // Fields 14 and 15 (utime, stime) are 11 and 12 after the command name; clock ticks are 100 a second on Linux.
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    [RequiresFact(Needs.Chromium | Needs.RtspCamera)]
    public async Task Twenty_WebRTC_viewers_of_one_camera_all_decode_and_the_relay_CPU_per_viewer_is_recorded()
    {
        const int Viewers = 20;
        var port = FreePort.GetTcpAndUdp();
        await using var stack = await EndToEndStack.StartAsync(output,
            new RtspCameraOptions { Video = CameraVideo.H264, Width = 640, Height = 360, Gop = 25 },
            configure: s =>
            {
                s.RelayExtra["webrtc"] = WebRtcConfig(port);
                s.RelayExtra["limits"] = new { viewersPerUser = 32 };
            });
        using var browser = Chromium.Start();
        await LogInAsync(browser, new Uri(stack.HttpUri, $"/play/{EndToEnd.Device}/{EndToEnd.CameraName}"));
        await browser.WaitForAsync("window.pinhole && window.pinhole.transport === 'webrtc'", TimeSpan.FromSeconds(20));
        // A page of the relay's without a player or a refresh (the device list refreshes itself): only the viewers opened below.
        browser.Navigate(new Uri(stack.HttpUri, "/login"));
        var relayPid = stack.Relay!.Id;

        // The player's own viewer has left (DELETE on pagehide); let the relay settle, then measure it with the camera flowing in and nobody watching.
        await Task.Delay(5_000);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var idleStart = CpuSeconds(relayPid);
        await Task.Delay(10_000);
        var idle = (CpuSeconds(relayPid) - idleStart) / clock.Elapsed.TotalSeconds;

        Assert.Equal("ok", OpenViewers(browser, Viewers));
        await browser.WaitForAsync($"window.viewers.filter((pc) => pc.connectionState === 'connected').length === {Viewers}", TimeSpan.FromSeconds(30));
        await Task.Delay(2000);
        var before = ViewerFrames(browser);
        clock.Restart();
        var cpuStart = CpuSeconds(relayPid);
        await Task.Delay(10_000);
        var busy = (CpuSeconds(relayPid) - cpuStart) / clock.Elapsed.TotalSeconds;
        var after = ViewerFrames(browser);
        var decoded = after.Zip(before, (a, b) => a - b).ToArray();
        var perViewer = (busy - idle) / Viewers;
        output.WriteLine($"{Viewers} viewers: frames decoded in 10 s each: {string.Join(",", decoded)}; relay CPU {idle * 100:0.0}% of a core with the camera in and no viewers, {busy * 100:0.0}% with {Viewers} viewers: {perViewer * 100:0.00}% of a core per viewer");
        Assert.Equal(Viewers, decoded.Length);
        Assert.All(decoded, d => Assert.True(d > 100, $"a viewer decoded only {d} frames in 10 s: {string.Join(",", decoded)}"));
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
