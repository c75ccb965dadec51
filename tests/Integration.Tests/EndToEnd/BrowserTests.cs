using System.Globalization;
using OpenQA.Selenium;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 4 end to end: headless Chromium plays the real GStreamer camera through a real edge process
/// and a real relay process (the page-driving code follows Relay.Tests' BrowserPlaybackTests, whose
/// swappable <c>Camera()</c> feed is replaced here by the whole edge path).
/// </summary>
[Collection(EndToEnd.Collection)]
public class BrowserTests(ITestOutputHelper output)
{
    private const string Frames = "return document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames;";
    private const string Latency = "const v = document.getElementById('video'); return v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 99;";

    /// <summary>Opens the camera's stream WebSocket from the current page; 'opened' or 'refused:N' (N messages received).</summary>
    private static string TryStreamSocket(Chromium browser) => browser.Driver.ExecuteAsyncScript($$"""
        const done = arguments[arguments.length - 1];
        const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/play/{{EndToEnd.Device}}/{{EndToEnd.CameraName}}/ws');
        ws.binaryType = 'arraybuffer';
        let got = 0;
        ws.onopen = () => { done('opened'); ws.close(); };
        ws.onmessage = () => got++;
        ws.onclose = () => done('refused:' + got);
        """) as string ?? "no answer";

    [RequiresFact(Needs.Chromium | Needs.RtspCamera)]
    public async Task Chromium_plays_the_real_camera_live_refuses_without_login_and_recovers_when_the_edge_restarts()
    {
        await using var stack = await EndToEndStack.StartAsync(output,
            new RtspCameraOptions { Video = CameraVideo.H264, Audio = CameraAudio.Aac, Width = 640, Height = 360, Gop = 25 });
        using var browser = Chromium.Start();
        var play = new Uri(stack.HttpUri, $"/play/{EndToEnd.Device}/{EndToEnd.CameraName}");

        // Without login: the player page sends us to the form, and its stream WebSocket is refused.
        browser.Navigate(play);
        Assert.Contains("/login?next=", browser.Driver.Url, StringComparison.Ordinal);
        Assert.Equal("refused:0", TryStreamSocket(browser));

        // Log in through the form; the form brings us back to the player.
        browser.Driver.FindElement(By.Name("user")).SendKeys(EndToEnd.ViewerUser);
        browser.Driver.FindElement(By.Name("password")).SendKeys(EndToEnd.ViewerPassword);
        browser.Driver.FindElement(By.CssSelector("button[type=submit]")).Click();
        await browser.WaitForAsync("document.getElementById('video') !== null", TimeSpan.FromSeconds(10));
        Assert.EndsWith($"/play/{EndToEnd.Device}/{EndToEnd.CameraName}", browser.Driver.Url, StringComparison.Ordinal);
        // The same socket is accepted once logged in: the refusal above was about the login.
        Assert.Equal("opened", TryStreamSocket(browser));
        browser.Execute("window.samePage = 'yes'; return 0;");
        await browser.WaitForAsync("window.pinhole && window.pinhole.state === 'live'", TimeSpan.FromSeconds(30));

        // 20 s of watching: frames keep being decoded and the picture stays near the live edge.
        var frames = new List<long>();
        var latencies = new List<double>();
        for (var i = 0; i <= 20; i++)
        {
            if (i > 0) await Task.Delay(1000);
            frames.Add(browser.Execute<long>(Frames));
            latencies.Add(browser.Execute<double>(Latency));
        }
        var decoded = frames[^1] - frames[0];
        var shown = string.Join(", ", latencies.Select(l => l.ToString("0.00", CultureInfo.InvariantCulture)));
        output.WriteLine($"decoded {decoded} frames in 20 s; latency samples {shown}; frames {string.Join(",", frames)}");
        browser.SaveScreenshot("e2e-browser-player");
        Assert.True(decoded > 20 * 25 * 0.8, $"decoded {decoded} frames in 20 s; samples {string.Join(",", frames)}\n{stack.Logs}");
        Assert.All(frames.Zip(frames.Skip(1)), p => Assert.True(p.Second > p.First, $"frames stalled: {string.Join(",", frames)}"));
        Assert.True(latencies.Max() < 1.5, $"live latency went to {latencies.Max():0.00} s: {shown}");

        // The edge process dies: the page says offline without reloading.
        await stack.KillEdgeAsync();
        await browser.WaitForAsync("document.getElementById('state').dataset.state === 'offline'", TimeSpan.FromSeconds(15));
        var initsBefore = browser.Execute<long>("return window.pinhole.inits;");

        // It is started again: the same page re-initialises and plays.
        await stack.StartEdgeAsync();
        await browser.WaitForAsync($"window.pinhole.inits > {initsBefore} && window.pinhole.state === 'live'", TimeSpan.FromSeconds(30));
        var framesAtReturn = browser.Execute<long>(Frames);
        await browser.WaitForAsync($"document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > {framesAtReturn + 50}", TimeSpan.FromSeconds(10));
        var lagAfter = browser.Execute<double>(Latency);
        output.WriteLine($"after the edge restarted: inits {browser.Execute<long>("return window.pinhole.inits;")}, {browser.Execute<long>(Frames)} frames in the new MediaSource, {lagAfter:0.00} s behind");
        Assert.Equal("yes", browser.Execute<string>("return window.samePage;"));
        Assert.True(lagAfter < 1.5, $"{lagAfter:0.00} s behind after the edge came back");
        browser.SaveScreenshot("e2e-browser-player-after-edge-restart");
    }
}
