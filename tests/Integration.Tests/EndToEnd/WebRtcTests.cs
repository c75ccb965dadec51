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
}
